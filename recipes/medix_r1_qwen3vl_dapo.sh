#!/usr/bin/env bash
# MediX-R1 with DAPO on Qwen3-VL: SIZE=2b | 8b | 30b [8b]. Clip 0.2 / 0.28, no KL, dynamic sampling
# as released: a group is kept only if its mean score is strictly between 0.01 and 0.99, and the run
# stops (as the release's does) once a step has dropped more groups than the release's 20
# generation batches of 128 prompts allow (max_filtered_groups 2048; medix_verl/integration/trainer.py).
# verl 0.9.1 refills prompt by prompt under filter_groups, so there is no data.gen_batch_size.
# GROUP_FILTER=verl gives verl's own rule instead (keep groups whose scores are not all equal).
# SIZE=30b is the release's Qwen3-VL-30B-A3B-Thinking with rollout tensor parallel 8: it needs all
# 8 GPUs of each training node (judge on another node: JUDGE=server). The recipe's settings:
# medix_verl/integration/layout.py (RECIPES); shared ones: medix_verl/integration/config/medix_r1.yaml.
RECIPE=medix_r1_qwen3vl_dapo
source "$(dirname "$0")/_common.sh"
