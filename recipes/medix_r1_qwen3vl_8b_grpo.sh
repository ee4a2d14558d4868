#!/usr/bin/env bash
# MediX-R1 on Qwen3-VL-8B-Instruct, the GRPO variant: KL loss (low_var_kl, 0.01), clip 0.2 / 0.3,
# token-mean loss. The recipe's settings: medix_verl/integration/layout.py (RECIPES); shared ones:
# medix_verl/integration/config/medix_r1.yaml.
RECIPE=medix_r1_qwen3vl_8b_grpo
source "$(dirname "$0")/_common.sh"
