# Shared by the training recipes: sourced after setting RECIPE. The run's overrides are computed
# from the environment in one place, medix_verl/integration/layout.py (its variables, with defaults:
# python -m medix_verl.integration.layout --help): GPUS_PER_NODE, NNODES, JUDGE, JUDGE_URL, SIZE, ADV,
# CKPT_DIR, ... DRY_RUN=1 composes and checks the config without GPUs.
set -euo pipefail
PY=${PYTHON:-python3}
"$PY" -c 'import medix_verl' 2>/dev/null || {
  echo "medix-verl is not installed in $PY (pip install -e .)" >&2; exit 2; }
exec "$PY" -m medix_verl.integration.layout "$RECIPE" "$@"
