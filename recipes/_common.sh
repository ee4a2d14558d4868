# Shared by the training recipes: defaults, judge placement, preflight, GPU check, DRY_RUN. Source
# it after setting RECIPE, MODEL and ARGS (the recipe's overrides).
#
# Environment (defaults in brackets):
#   MODEL        policy model (hub id or local folder) [set by each recipe]
#   DATA_DIR     folder with train.parquet and test.parquet from data_prep.medix_rl_data [data/medix]
#   TRAIN_FILES / VAL_FILES   override the two files
#   NNODES [1]   GPUS_PER_NODE [8]: the GPUs of each node this run may use
#   JUDGE        server: a vLLM judge you started (recipes/serve_judge.sh), at JUDGE_URL; all
#                        GPUS_PER_NODE train. On the same node give the judge its own GPUs and
#                        leave the rest to training (4 + 4: README, "GPU layouts")
#                verl:   verl starts the judge in its own resource pool of JUDGE_GPUS GPUs on the
#                        first node; GPUS_PER_NODE - JUDGE_GPUS train on every node
#                [server]
#   JUDGE_URL    [$MEDIX_JUDGE_URL, else http://127.0.0.1:8085/v1]; replicas of one judge as a comma
#                list (recipes/serve_judge.sh --replicas N prints it): least loaded, failover
#   JUDGE_MODEL  [Qwen/Qwen3-4B-Instruct-2507]   JUDGE_GPUS [4]   JUDGE_TP [2]
#   JUDGE_NODES  JUDGE=verl: nodes the judge's pool spans, JUDGE_GPUS on each [1]
#                (replicas = JUDGE_GPUS x JUDGE_NODES / JUDGE_TP, behind verl's least-loaded router)
#   JUDGE_MAX_MODEL_LEN  the verl-managed judge's context [2048, as recipes/serve_judge.sh]
#   EMBED_MODEL  [abhinand/MedEmbed-large-v0.1]   PRESET [paper]
#   ADV          gdpo: verl's GDPO over the preset's parts with its weights (opt-in; not the paper's
#                setting, which adds the parts before GRPO's group normalisation) [unset: the recipe's]
#   EXPERIMENT   experiment name [recipe name]
#   CKPT_DIR     checkpoints, one folder per run name [$PWD/checkpoints/$EXPERIMENT]; a run started
#                again with the same EXPERIMENT resumes from its latest checkpoint (resume_mode=auto).
#                With NNODES > 1 every node must mount it (the preflight checks the filesystem).
#                $CKPT_DIR/STOP_REQUESTED asks the trainer to save after the current step and stop.
#   RESUME_MODE  auto: resume from CKPT_DIR if it has a checkpoint; disable: start over [auto]
#   DRY_RUN=1    compose the full config against the installed verl, print it as YAML and the
#                preflight's report (stderr), exit (2 on unknown or ignored keys and on layouts
#                verl would reject at run time); needs no GPU
#   MEDIX_PREFLIGHT=0   skip the preflight (only to rehearse a failure on purpose)
#   MEDIX_PRINT_OVERRIDES=1   print the overrides this recipe would pass to verl, one per line
set -euo pipefail

DATA_DIR=${DATA_DIR:-data/medix}
TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/train.parquet}
VAL_FILES=${VAL_FILES:-$DATA_DIR/test.parquet}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
JUDGE=${JUDGE:-server}
JUDGE_URL=${JUDGE_URL:-${MEDIX_JUDGE_URL:-http://127.0.0.1:8085/v1}}
JUDGE_MODEL=${JUDGE_MODEL:-Qwen/Qwen3-4B-Instruct-2507}
JUDGE_GPUS=${JUDGE_GPUS:-4}
JUDGE_TP=${JUDGE_TP:-2}
EMBED_MODEL=${EMBED_MODEL:-abhinand/MedEmbed-large-v0.1}
PRESET=${PRESET:-paper}
EXPERIMENT=${EXPERIMENT:-$RECIPE}
CKPT_DIR=${CKPT_DIR:-checkpoints/$EXPERIMENT}
case "$CKPT_DIR" in /*) ;; *) CKPT_DIR=$PWD/$CKPT_DIR ;; esac  # one folder, whatever the working dir
RESUME_MODE=${RESUME_MODE:-auto}
PY=${PYTHON:-python3}

KW=reward.custom_reward_function.reward_kwargs
ARGS+=(
  "actor_rollout_ref.model.path=$MODEL"
  "data.train_files=$TRAIN_FILES"
  "data.val_files=$VAL_FILES"
  "trainer.nnodes=$NNODES"
  "trainer.experiment_name=$EXPERIMENT"
  "trainer.default_local_dir=$CKPT_DIR"
  "trainer.resume_mode=$RESUME_MODE"
  "$KW.preset=$PRESET"
  "$KW.embed_model=$EMBED_MODEL"
)
case "$JUDGE" in
  server)
    # the judge runs outside verl (recipes/serve_judge.sh), on another node or on GPUs of this one
    # that training does not use (CUDA_VISIBLE_DEVICES)
    # quoted: a comma list of replicas is one string to hydra, not a sweep
    ARGS+=("$KW.judge_url='$JUDGE_URL'" "$KW.judge_model=$JUDGE_MODEL" "trainer.n_gpus_per_node=$GPUS_PER_NODE")
    ;;
  verl)
    # verl starts the judge (vLLM) in its own resource pool and passes its router's address to the
    # reward, which then asks for the model verl serves (model_path). The pool holds nothing else,
    # so the judge never sleeps (verl would put it to sleep at start-up and, in this mode, never
    # wake it: verl/experimental/reward_loop/reward_model.py)
    ARGS+=(
      "$KW.judge_url=null"
      "$KW.judge_model=null"
      "trainer.n_gpus_per_node=$((GPUS_PER_NODE - JUDGE_GPUS))"
      "reward.reward_model.enable=true"
      "reward.reward_model.enable_resource_pool=true"
      "reward.reward_model.n_gpus_per_node=$JUDGE_GPUS"
      "reward.reward_model.nnodes=${JUDGE_NODES:-1}"
      "reward.reward_model.model_path=$JUDGE_MODEL"
      "reward.reward_model.rollout.name=vllm"
      "reward.reward_model.rollout.tensor_model_parallel_size=$JUDGE_TP"
      "reward.reward_model.rollout.free_cache_engine=false"
      "reward.reward_model.rollout.max_model_len=${JUDGE_MAX_MODEL_LEN:-2048}"
      "reward.reward_model.rollout.prompt_length=$((${JUDGE_MAX_MODEL_LEN:-2048} - 8))"
      "reward.reward_model.rollout.response_length=8"
    )
    ;;
  *) echo "JUDGE must be 'server' or 'verl', got '$JUDGE'" >&2; exit 2 ;;
esac

# ADV=gdpo (opt-in, not the paper's setting): verl's GDPO with the preset's parts and weights
case "${ADV:-}" in
  "") ;;
  gdpo)
    GDPO_ARGS=$("$PY" -m medix_verl.verl.gdpo "$PRESET") || exit 2
    while IFS= read -r line; do ARGS+=("$line"); done <<< "$GDPO_ARGS"
    ;;
  *) echo "ADV must be gdpo (or unset: the recipe's estimator), got '$ADV'" >&2; exit 2 ;;
esac

if [ "${MEDIX_PRINT_OVERRIDES:-0}" = 1 ]; then  # the recipe's overrides, one per line (tests)
  printf '%s\n' "${ARGS[@]}" "$@"; exit 0
fi

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
