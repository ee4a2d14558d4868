#!/usr/bin/env bash
# The release's judge server: Qwen/Qwen3-4B-Instruct-2507 on two GPUs, OpenAI-compatible.
#   CUDA_VISIBLE_DEVICES=6,7 bash recipes/serve_judge.sh      # then MEDIX_JUDGE_URL=http://HOST:8085/v1
# Environment: JUDGE_MODEL [Qwen/Qwen3-4B-Instruct-2507], JUDGE_TP [2], JUDGE_PORT [8085],
#              JUDGE_HOST [0.0.0.0: reachable from other nodes], MAX_MODEL_LEN [2048]
set -euo pipefail
command -v vllm >/dev/null || { echo "vllm is not installed (pip install -e '.[gpu]')" >&2; exit 2; }
exec vllm serve "${JUDGE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}" \
  --served-model-name "${JUDGE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}" \
  --tensor-parallel-size "${JUDGE_TP:-2}" --max-model-len "${MAX_MODEL_LEN:-2048}" \
  --host "${JUDGE_HOST:-0.0.0.0}" --port "${JUDGE_PORT:-8085}" "$@"
