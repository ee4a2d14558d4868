#!/usr/bin/env bash
# Rehearse a GPU recipe on CPU ranks: one real step of verl's main_ppo with the recipe's composed
# config on as many CPU ranks as the layout has training GPUs, swapping only what a CPU cannot hold
# (listed in the output). Same environment as the recipe (GPUS_PER_NODE, NNODES, JUDGE, SIZE, ...).
#
#   bash recipes/rehearse.sh recipes/medix_r1_qwen_7b.sh [--scale auto] [--workdir runs/rehearse] [-- overrides...]
#
# --scale N divides the train batch and the mini-batch by N (refused if that changes whether the
# mini-batch splits over the ranks); auto picks the smallest such batch. Exit 0: the step ran;
# 1: it failed (where and why is printed); 2: the preflight refused the layout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" -m medix_verl.devkit.rehearse "$@"
