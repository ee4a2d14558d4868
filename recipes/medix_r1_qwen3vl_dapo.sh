#!/usr/bin/env bash
# MediX-R1 with DAPO on Qwen3-VL: SIZE=2b | 8b | 30b [8b]. Clip 0.2 / 0.28, no KL, dynamic sampling
# as released: a group is kept only if its mean score is strictly between 0.01 and 0.99, and the run
# stops (as the release's does) once a step has dropped more groups than the release's 20
# generation batches of 128 prompts allow (max_filtered_groups 2048; medix_verl/verl/trainer.py).
# verl 0.9.1 refills prompt by prompt under filter_groups, so there is no data.gen_batch_size.
# GROUP_FILTER=verl gives verl's own rule instead (keep groups whose scores are not all equal).
# SIZE=30b is the release's Qwen3-VL-30B-A3B-Thinking with rollout tensor parallel 8: it needs all
# 8 GPUs of each training node (judge on another node: JUDGE=server).
RECIPE=medix_r1_qwen3vl_${SIZE:-8b}_dapo
ARGS=()
case "${SIZE:-8b}" in
  2b) MODEL=${MODEL:-Qwen/Qwen3-VL-2B-Instruct} ;;
  8b) MODEL=${MODEL:-Qwen/Qwen3-VL-8B-Instruct} ;;
  30b)
    MODEL=${MODEL:-Qwen/Qwen3-VL-30B-A3B-Thinking}
    ARGS+=(actor_rollout_ref.rollout.tensor_model_parallel_size=8) ;;
  *) echo "SIZE must be 2b, 8b or 30b" >&2; exit 2 ;;
esac
ARGS+=(
  actor_rollout_ref.actor.policy_loss.loss_mode=vanilla
  actor_rollout_ref.actor.loss_agg_mode=token-mean
  actor_rollout_ref.actor.clip_ratio_low=0.2
  actor_rollout_ref.actor.clip_ratio_high=0.28
  actor_rollout_ref.actor.use_kl_loss=false
  algorithm.filter_groups.enable=true
  algorithm.filter_groups.metric=score
  "trainer.v1.medix.group_filter.rule=${GROUP_FILTER:-mean_band}"
  trainer.v1.medix.group_filter.low=0.01
  trainer.v1.medix.group_filter.high=0.99
  trainer.v1.medix.group_filter.max_filtered_groups=2048
)
source "$(dirname "$0")/_common.sh"
