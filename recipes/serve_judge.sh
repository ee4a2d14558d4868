#!/usr/bin/env bash
# The release's judge server: Qwen/Qwen3-4B-Instruct-2507 on two GPUs, OpenAI-compatible.
#   CUDA_VISIBLE_DEVICES=6,7 bash recipes/serve_judge.sh                 # loopback: training on this node
#   JUDGE_HOST=0.0.0.0 MEDIX_JUDGE_API_KEY=... bash recipes/serve_judge.sh  # for trainers on other nodes
#   CUDA_VISIBLE_DEVICES=4,5,6,7 JUDGE_DP=2 bash recipes/serve_judge.sh  # 4 + 4 on one node: two TP-2 copies
#   JUDGE_HOST=0.0.0.0 MEDIX_JUDGE_API_KEY=... bash recipes/serve_judge.sh --replicas 4   # a judge node:
#       four servers of TP 2 on its 8 GPUs, ports JUDGE_PORT..JUDGE_PORT+3; prints the JUDGE_URL list
#       to give the trainers (the reward sends each request to the least loaded replica, and a
#       replica that fails is taken out while the others answer)
# Environment: JUDGE_MODEL [Qwen/Qwen3-4B-Instruct-2507], JUDGE_TP [2], JUDGE_DP [1], JUDGE_PORT [8085],
#              JUDGE_HOST [127.0.0.1], MAX_MODEL_LEN [2048],
#              MEDIX_JUDGE_API_KEY (required beyond loopback; the reward sends it, from the same
#              variable, to the judge and to nothing else)
# Options: --replicas N (default 1: one server, in the foreground); anything else goes to vllm serve.
set -euo pipefail
REPLICAS=1
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) REPLICAS=${2:-}; shift 2 || { echo "serve_judge.sh: --replicas needs a number" >&2; exit 2; } ;;
    --replicas=*) REPLICAS=${1#--replicas=}; shift ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
case "$REPLICAS" in ''|*[!0-9]*|0) echo "serve_judge.sh: --replicas must be a number >= 1, got '$REPLICAS'" >&2; exit 2 ;; esac
HOST=${JUDGE_HOST:-127.0.0.1}
MODEL=${JUDGE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}
TP=${JUDGE_TP:-2}
DP=${JUDGE_DP:-1}
PORT=${JUDGE_PORT:-8085}
KEY_ARGS=()
case "$HOST" in
  127.*|localhost|::1) ADVERTISE=127.0.0.1 ;;
  *)
    if [ -z "${MEDIX_JUDGE_API_KEY:-}" ]; then
      echo "serve_judge.sh: JUDGE_HOST=$HOST exposes the judge beyond this machine: set MEDIX_JUDGE_API_KEY" \
        "(here and on every training node) so only the reward can use it" >&2
      exit 2
    fi
    ADVERTISE=$HOST
    [ "$HOST" = 0.0.0.0 ] && ADVERTISE=$( (hostname -I 2>/dev/null | awk '{print $1}') || true)
    [ -n "$ADVERTISE" ] || ADVERTISE=$(hostname)
    ;;
esac
[ -n "${MEDIX_JUDGE_API_KEY:-}" ] && KEY_ARGS=(--api-key "$MEDIX_JUDGE_API_KEY")
command -v vllm >/dev/null || { echo "vllm is not installed (pip install -e '.[gpu]')" >&2; exit 2; }
serve() {  # serve PORT: one vLLM server, in place of the (sub)shell that calls it
  exec vllm serve "$MODEL" --served-model-name "$MODEL" \
    --tensor-parallel-size "$TP" --data-parallel-size "$DP" --max-model-len "${MAX_MODEL_LEN:-2048}" \
    --host "$HOST" --port "$1" "${KEY_ARGS[@]}" "${EXTRA[@]}"
}
if [ "$REPLICAS" = 1 ]; then
  echo "JUDGE_URL=http://$ADVERTISE:$PORT/v1" >&2
  serve "$PORT"
fi

# several replicas: each gets its own TP x DP GPUs out of CUDA_VISIBLE_DEVICES (or 0..N-1)
PER=$((TP * DP))
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  IFS=, read -r -a GPUS <<<"$CUDA_VISIBLE_DEVICES"
else
  mapfile -t GPUS < <(seq 0 $((REPLICAS * PER - 1)))
fi
if [ "${#GPUS[@]}" -lt $((REPLICAS * PER)) ]; then
  echo "serve_judge.sh: $REPLICAS replicas x $PER GPUs (JUDGE_TP=$TP x JUDGE_DP=$DP) need $((REPLICAS * PER))" \
    "GPUs, CUDA_VISIBLE_DEVICES has ${#GPUS[@]}" >&2
  exit 2
fi
PIDS=()
URLS=()
stop_all() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'stop_all; exit 143' TERM INT
for i in $(seq 0 $((REPLICAS - 1))); do
  devices=$(IFS=,; echo "${GPUS[*]:$((i * PER)):$PER}")
  port=$((PORT + i))
  CUDA_VISIBLE_DEVICES=$devices serve "$port" > "${JUDGE_LOG_DIR:-.}/judge_replica_$i.log" 2>&1 &
  PIDS+=($!)
  URLS+=("http://$ADVERTISE:$port/v1")
  echo "replica $i: GPUs $devices, port $port, log ${JUDGE_LOG_DIR:-.}/judge_replica_$i.log" >&2
done
echo "JUDGE_URL=$(IFS=,; echo "${URLS[*]}")"
# one replica that stops is logged; the others go on serving (the reward takes it out of its pool)
for i in "${!PIDS[@]}"; do
  ( wait "${PIDS[$i]}" || true; echo "serve_judge.sh: replica $i (${URLS[$i]}) stopped" >&2 ) &
done
wait "${PIDS[@]}" 2>/dev/null || true
