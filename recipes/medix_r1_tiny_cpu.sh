#!/usr/bin/env bash
# MediX-R1 end to end on a CPU-only machine, in minutes, with nothing to download: a tiny
# Qwen2.5-VL (real Qwen vocabulary, random weights warm-started on the output format), synthetic
# MediX data with real images through data_prep, the composite reward with SmolLM2-135M-Instruct
# as a local judge and MiniLM as embedder, and real GRPO steps of verl's main_ppo on the CPU
# backend (VERL_PLATFORM=cpu). Prints every step's reward parts; checks that the steps ran, the
# parts were logged and the weights changed (exit 1 otherwise).
#
#   bash recipes/medix_r1_tiny_cpu.sh [--workdir runs/tiny_cpu] [--steps 2] [--judge-url URL] [-- overrides...]
#
# Sets up .venv (bash .ci/setup, without the vLLM venv) if it is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$ROOT/.venv/bin/python" ] || ! "$ROOT/.venv/bin/python" -c "import medix_verl, verl" >/dev/null 2>&1; then
  echo "setting up $ROOT/.venv (once, a few minutes)"
  MEDIX_SKIP_VLLM=1 bash "$ROOT/.ci/setup"
fi
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m medix_verl.devkit.tiny_run "$@"
