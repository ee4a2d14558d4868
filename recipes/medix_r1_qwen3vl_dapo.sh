#!/usr/bin/env bash
# MediX-R1 with DAPO on Qwen3-VL: SIZE=2b | 8b | 30b (Qwen3-VL-30B-A3B) [8b]. Clip 0.2 / 0.28,
# no KL, generation batches of 128 prompts, dynamic sampling as released: a group is kept only if
# its mean score is strictly between 0.01 and 0.99, for up to 20 generation batches a step
# (medix_verl/verl/trainer.py). GROUP_FILTER=verl gives verl's own rule instead (keep groups whose
# scores are not all equal).
RECIPE=medix_r1_qwen3vl_${SIZE:-8b}_dapo
case "${SIZE:-8b}" in
  2b) MODEL=${MODEL:-Qwen/Qwen3-VL-2B-Instruct} ;;
  8b) MODEL=${MODEL:-Qwen/Qwen3-VL-8B-Instruct} ;;
  30b) MODEL=${MODEL:-Qwen/Qwen3-VL-30B-A3B-Instruct} ;;
  *) echo "SIZE must be 2b, 8b or 30b" >&2; exit 2 ;;
esac
ARGS=(
  actor_rollout_ref.actor.policy_loss.loss_mode=vanilla
  actor_rollout_ref.actor.loss_agg_mode=token-mean
  actor_rollout_ref.actor.clip_ratio_low=0.2
  actor_rollout_ref.actor.clip_ratio_high=0.28
  actor_rollout_ref.actor.use_kl_loss=false
  data.gen_batch_size=128
  algorithm.filter_groups.enable=true
  algorithm.filter_groups.metric=score
  "trainer.v1.medix.group_filter.rule=${GROUP_FILTER:-mean_band}"
  trainer.v1.medix.group_filter.low=0.01
  trainer.v1.medix.group_filter.high=0.99
  trainer.v1.medix.group_filter.max_tries=20
)
source "$(dirname "$0")/_common.sh"
