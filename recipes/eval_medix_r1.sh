#!/usr/bin/env bash
# Evaluate a model the way MediX-R1 does, on one GPU node: vLLM serves the evaluated model and the
# judge (Qwen/Qwen3-14B, thinking off), then `medix-verl eval` runs the chosen tasks.
#
#   MODEL=/ckpt/medix_r1_8b_hf DATA_DIR=data/eval OUT=eval_out/medix_r1_8b bash recipes/eval_medix_r1.sh
#
# Environment (defaults in brackets):
#   MODEL          model to evaluate: hub id or local HF folder (required)
#   MODEL_NAME     served name [basename of MODEL]
#   JUDGE_MODEL    [Qwen/Qwen3-14B]
#   DATA_DIR       folder of <task>.parquet from `python -m data_prep.eval_sets` [data/eval]
#   OUT            output folder [eval_out/<MODEL_NAME>]
#   TASKS          all | text | image | T1,T2 [all]
#   MODEL_GPUS     CUDA devices for the model [0,1,2,3];  MODEL_TP tensor parallel [4]
#   JUDGE_GPUS     CUDA devices for the judge [4,5,6,7];  JUDGE_TP [4]
#   MODEL_PORT [8100]  JUDGE_PORT [8101]  MAX_MODEL_LEN [8192]  CONCURRENCY [64]
#   MODEL_URL / JUDGE_URL  use servers that are already running instead of starting them
set -euo pipefail
: "${MODEL:?set MODEL to the model to evaluate}"
MODEL_NAME=${MODEL_NAME:-$(basename "$MODEL")}
JUDGE_MODEL=${JUDGE_MODEL:-Qwen/Qwen3-14B}
DATA_DIR=${DATA_DIR:-data/eval}
OUT=${OUT:-eval_out/$MODEL_NAME}
TASKS=${TASKS:-all}
MODEL_GPUS=${MODEL_GPUS:-0,1,2,3}; MODEL_TP=${MODEL_TP:-4}
JUDGE_GPUS=${JUDGE_GPUS:-4,5,6,7}; JUDGE_TP=${JUDGE_TP:-4}
MODEL_PORT=${MODEL_PORT:-8100}; JUDGE_PORT=${JUDGE_PORT:-8101}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-8192}; CONCURRENCY=${CONCURRENCY:-64}

command -v medix-verl >/dev/null || { echo "medix-verl is not installed (pip install -e .)" >&2; exit 2; }
[ -d "$DATA_DIR" ] || { echo "no $DATA_DIR: prepare the tasks with python -m data_prep.eval_sets" >&2; exit 2; }

pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

serve() {  # serve NAME MODEL GPUS TP PORT LOG [extra vllm args...]
  local name=$1 model=$2 gpus=$3 tp=$4 port=$5 log=$6; shift 6
  command -v vllm >/dev/null || { echo "vllm is not installed (pip install -e '.[gpu]')" >&2; exit 2; }
  CUDA_VISIBLE_DEVICES=$gpus vllm serve "$model" --served-model-name "$name" --host 127.0.0.1 --port "$port" \
    --tensor-parallel-size "$tp" --max-model-len "$MAX_MODEL_LEN" "$@" >"$log" 2>&1 &
  pids+=($!)
}

wait_ready() {  # wait_ready URL LOG
  for _ in $(seq 1 180); do
    curl -sf "$1/models" >/dev/null 2>&1 && return 0
    sleep 5
  done
  echo "server at $1 not ready after 15 minutes; see $2" >&2; exit 3
}

mkdir -p "$OUT"
if [ -z "${MODEL_URL:-}" ]; then
  serve "$MODEL_NAME" "$MODEL" "$MODEL_GPUS" "$MODEL_TP" "$MODEL_PORT" "$OUT/model_server.log" --limit-mm-per-prompt '{"image": 4}'
  MODEL_URL=http://127.0.0.1:$MODEL_PORT/v1
fi
if [ -z "${JUDGE_URL:-}" ]; then
  serve "$JUDGE_MODEL" "$JUDGE_MODEL" "$JUDGE_GPUS" "$JUDGE_TP" "$JUDGE_PORT" "$OUT/judge_server.log"
  JUDGE_URL=http://127.0.0.1:$JUDGE_PORT/v1
fi
wait_ready "$MODEL_URL" "$OUT/model_server.log"
wait_ready "$JUDGE_URL" "$OUT/judge_server.log"

medix-verl eval --tasks "$TASKS" --data-dir "$DATA_DIR" --model-url "$MODEL_URL" --model "$MODEL_NAME" \
  --judge-url "$JUDGE_URL" --judge-model "$JUDGE_MODEL" --output "$OUT" --max-concurrency "$CONCURRENCY" "$@"
