#!/usr/bin/env bash
# The release's judge server: Qwen/Qwen3-4B-Instruct-2507 on two GPUs, OpenAI-compatible.
#   CUDA_VISIBLE_DEVICES=6,7 bash recipes/serve_judge.sh                 # loopback: training on this node
#   JUDGE_HOST=0.0.0.0 MEDIX_JUDGE_API_KEY=... bash recipes/serve_judge.sh  # for trainers on other nodes
#   CUDA_VISIBLE_DEVICES=4,5,6,7 JUDGE_DP=2 bash recipes/serve_judge.sh  # 4 + 4 on one node: two TP-2 copies
# Environment: JUDGE_MODEL [Qwen/Qwen3-4B-Instruct-2507], JUDGE_TP [2], JUDGE_DP [1], JUDGE_PORT [8085],
#              JUDGE_HOST [127.0.0.1], MAX_MODEL_LEN [2048],
#              MEDIX_JUDGE_API_KEY (required beyond loopback; the reward sends it, from the same
#              variable, to the judge and to nothing else)
set -euo pipefail
HOST=${JUDGE_HOST:-127.0.0.1}
KEY_ARGS=()
case "$HOST" in
  127.*|localhost|::1) ;;
  *)
    if [ -z "${MEDIX_JUDGE_API_KEY:-}" ]; then
      echo "serve_judge.sh: JUDGE_HOST=$HOST exposes the judge beyond this machine: set MEDIX_JUDGE_API_KEY" \
        "(here and on every training node) so only the reward can use it" >&2
      exit 2
    fi ;;
esac
[ -n "${MEDIX_JUDGE_API_KEY:-}" ] && KEY_ARGS=(--api-key "$MEDIX_JUDGE_API_KEY")
command -v vllm >/dev/null || { echo "vllm is not installed (pip install -e '.[gpu]')" >&2; exit 2; }
exec vllm serve "${JUDGE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}" \
  --served-model-name "${JUDGE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}" \
  --tensor-parallel-size "${JUDGE_TP:-2}" --data-parallel-size "${JUDGE_DP:-1}" --max-model-len "${MAX_MODEL_LEN:-2048}" \
  --host "$HOST" --port "${JUDGE_PORT:-8085}" "${KEY_ARGS[@]}" "$@"
