#!/usr/bin/env bash
# Install medix-verl on a GPU node, in two steps (run from the repository root, in the environment
# you train from):
#   1. this package with verl 0.9.1 and verl's `vllm` extra, which pins torch and vLLM;
#   2. flash-attn, built against the torch step 1 installed. Its setup imports torch, so it cannot
#      be resolved in the same pip call that installs torch (`pip install '.[gpu]'` with flash-attn
#      in it fails for that reason): --no-build-isolation lets it see the installed torch.
# Environment: PYTHON [python3], FLASH_ATTN [flash-attn==2.8.3], SKIP_FLASH_ATTN=1 to skip step 2.
set -euo pipefail
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
echo "step 1/2: medix-verl[gpu] (verl 0.9.1, its vllm extra: torch and vLLM)"
"$PY" -m pip install -e "$ROOT[gpu]"
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
if [ "${SKIP_FLASH_ATTN:-0}" = 1 ]; then
  echo "step 2/2 skipped (SKIP_FLASH_ATTN=1)"; exit 0
fi
echo "step 2/2: ${FLASH_ATTN:-flash-attn==2.8.3}, built against that torch"
"$PY" -m pip install --no-build-isolation "${FLASH_ATTN:-flash-attn==2.8.3}"
"$PY" -c "import flash_attn; print('flash-attn', flash_attn.__version__)"
