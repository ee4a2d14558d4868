#!/usr/bin/env bash
# MediX-R1 on Qwen2.5-VL-7B-Instruct as released: GSPO (sequence-level ratio), sequence-mean
# loss, clip 3e-4 / 4e-4, no KL. Shared settings: medix_verl/verl/config/medix_r1.yaml.
#   MEDIX_JUDGE_URL=http://127.0.0.1:8085/v1 bash recipes/medix_r1_qwen_7b.sh [extra overrides]
RECIPE=medix_r1_qwen_7b
MODEL=${MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}
ARGS=(
  actor_rollout_ref.actor.policy_loss.loss_mode=gspo
  actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean
  actor_rollout_ref.actor.clip_ratio_low=3e-4
  actor_rollout_ref.actor.clip_ratio_high=4e-4
  actor_rollout_ref.actor.use_kl_loss=false
)
source "$(dirname "$0")/_common.sh"
