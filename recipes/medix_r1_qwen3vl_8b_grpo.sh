#!/usr/bin/env bash
# MediX-R1 on Qwen3-VL-8B-Instruct, the GRPO variant: KL loss (low_var_kl, 0.01), clip 0.2 / 0.3,
# token-mean loss. Shared settings: medix_verl/verl/config/medix_r1.yaml.
RECIPE=medix_r1_qwen3vl_8b_grpo
MODEL=${MODEL:-Qwen/Qwen3-VL-8B-Instruct}
ARGS=(
  actor_rollout_ref.actor.policy_loss.loss_mode=vanilla
  actor_rollout_ref.actor.loss_agg_mode=token-mean
  actor_rollout_ref.actor.clip_ratio_low=0.2
  actor_rollout_ref.actor.clip_ratio_high=0.3
  actor_rollout_ref.actor.use_kl_loss=true
  actor_rollout_ref.actor.kl_loss_type=low_var_kl
  actor_rollout_ref.actor.kl_loss_coef=0.01
)
source "$(dirname "$0")/_common.sh"
