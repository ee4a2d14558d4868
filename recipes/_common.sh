# Shared by the training recipes: defaults, judge placement, GPU check, DRY_RUN. Source it after
# setting ARGS (the recipe's overrides) and NGPUS_NEEDED.
#
# Environment (defaults in brackets):
#   MODEL        policy model (hub id or local folder) [set by each recipe]
#   DATA_DIR     folder with train.parquet and test.parquet from data_prep.medix_rl_data [data/medix]
#   TRAIN_FILES / VAL_FILES   override the two files
#   NNODES [1]   GPUS_PER_NODE [8]
#   JUDGE        server: a vLLM judge you started (recipes/serve_judge.sh), at JUDGE_URL
#                verl:   the judge managed by verl in its own resource pool of JUDGE_GPUS GPUs
#                [server]
#   JUDGE_URL    [$MEDIX_JUDGE_URL, else http://127.0.0.1:8085/v1]
#   JUDGE_MODEL  [Qwen/Qwen3-4B-Instruct-2507]   JUDGE_GPUS [2]
#   EMBED_MODEL  [abhinand/MedEmbed-large-v0.1]   PRESET [paper]
#   EXPERIMENT   experiment name [recipe name]    CKPT_DIR [checkpoints/$EXPERIMENT]
#   DRY_RUN=1    compose the full config against the installed verl, print it as YAML, exit
#                (non-zero on unknown or ignored keys); needs no GPU
set -euo pipefail

DATA_DIR=${DATA_DIR:-data/medix}
TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/train.parquet}
VAL_FILES=${VAL_FILES:-$DATA_DIR/test.parquet}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
JUDGE=${JUDGE:-server}
JUDGE_URL=${JUDGE_URL:-${MEDIX_JUDGE_URL:-http://127.0.0.1:8085/v1}}
JUDGE_MODEL=${JUDGE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}
JUDGE_GPUS=${JUDGE_GPUS:-2}
EMBED_MODEL=${EMBED_MODEL:-abhinand/MedEmbed-large-v0.1}
PRESET=${PRESET:-paper}
EXPERIMENT=${EXPERIMENT:-$RECIPE}
CKPT_DIR=${CKPT_DIR:-checkpoints/$EXPERIMENT}
PY=${PYTHON:-python3}

KW=reward.custom_reward_function.reward_kwargs
ARGS+=(
  "actor_rollout_ref.model.path=$MODEL"
  "data.train_files=$TRAIN_FILES"
  "data.val_files=$VAL_FILES"
  "trainer.nnodes=$NNODES"
  "trainer.experiment_name=$EXPERIMENT"
  "trainer.default_local_dir=$CKPT_DIR"
  "$KW.preset=$PRESET"
  "$KW.embed_model=$EMBED_MODEL"
  "$KW.judge_model=$JUDGE_MODEL"
)
case "$JUDGE" in
  server)
    # the judge runs outside verl (recipes/serve_judge.sh): on one 8-GPU node give it 2 GPUs
    # (CUDA_VISIBLE_DEVICES=6,7) and train on the other 6 (GPUS_PER_NODE=6)
    ARGS+=("$KW.judge_url=$JUDGE_URL" "trainer.n_gpus_per_node=$GPUS_PER_NODE")
    ;;
  verl)
    # verl starts the judge (vLLM) in its own resource pool and passes its router address to the reward
    ARGS+=(
      "$KW.judge_url=null"
      "trainer.n_gpus_per_node=$((GPUS_PER_NODE - JUDGE_GPUS))"
      "reward.reward_model.enable=true"
      "reward.reward_model.enable_resource_pool=true"
      "reward.reward_model.n_gpus_per_node=$JUDGE_GPUS"
      "reward.reward_model.nnodes=1"
      "reward.reward_model.model_path=$JUDGE_MODEL"
      "reward.reward_model.rollout.name=vllm"
      "reward.reward_model.rollout.tensor_model_parallel_size=$JUDGE_GPUS"
      "reward.reward_model.rollout.max_model_len=2048"
      "reward.reward_model.rollout.prompt_length=1536"
      "reward.reward_model.rollout.response_length=8"
    )
    ;;
  *) echo "JUDGE must be 'server' or 'verl', got '$JUDGE'" >&2; exit 2 ;;
esac

CONFIG_DIR=$("$PY" -c 'from medix_verl.verl.compose import CONFIG_DIR; print(CONFIG_DIR)') || {
  echo "medix-verl is not installed in $PY (pip install -e .)" >&2; exit 2; }

if [ "${DRY_RUN:-0}" = 1 ]; then
  exec "$PY" -m medix_verl.verl.compose "${ARGS[@]}" "$@"
fi

# a real run: check the GPUs first, with a message instead of a stack trace later
need=$GPUS_PER_NODE
have=$( (command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -c '^GPU') || echo 0)
if [ "$have" -lt "$need" ]; then
  echo "$RECIPE needs $need GPUs per node (GPUS_PER_NODE), this machine has $have." >&2
  echo "Use DRY_RUN=1 to check the config on this machine." >&2
  exit 3
fi
"$PY" -m medix_verl.verl.compose "${ARGS[@]}" "$@" >/dev/null
exec "$PY" -m verl.trainer.main_ppo --config-path="$CONFIG_DIR" --config-name=medix_r1 "${ARGS[@]}" "$@"
