#!/usr/bin/env bash
# MediX-R1 on Qwen2.5-VL-7B-Instruct as released: GSPO (sequence-level ratio), sequence-mean
# loss, clip 3e-4 / 4e-4, no KL. The recipe's settings: medix_verl/integration/layout.py (RECIPES);
# shared ones: medix_verl/integration/config/medix_r1.yaml.
#   JUDGE_URL=http://127.0.0.1:8085/v1 bash recipes/medix_r1_qwen_7b.sh [extra overrides]
RECIPE=medix_r1_qwen_7b
source "$(dirname "$0")/_common.sh"
