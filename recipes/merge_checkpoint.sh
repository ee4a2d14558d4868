#!/usr/bin/env bash
# Merge a verl FSDP checkpoint into a Hugging Face model folder with verl's own model merger,
# ready for transformers, vLLM and `medix-verl eval`.
#
#   bash recipes/merge_checkpoint.sh checkpoints/medix_r1_qwen_7b/global_step_100 [TARGET_DIR]
#
# STEP_DIR is a global_step_N folder (or its actor/ folder). TARGET_DIR defaults to
# STEP_DIR/actor/huggingface_merged. The processor / tokenizer files verl saved next to the
# weights (actor/huggingface) are copied along, so the folder is complete for a VL model.
set -euo pipefail
PY=${PYTHON:-python3}
[ $# -ge 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
STEP=${1%/}
ACTOR=$STEP/actor
[ -d "$ACTOR" ] || ACTOR=$STEP
if ! ls "$ACTOR"/model_world_size_*_rank_*.pt >/dev/null 2>&1; then
  echo "$ACTOR has no FSDP shards (model_world_size_*_rank_*.pt): pass a global_step_N folder" >&2
  exit 2
fi
TARGET=${2:-$ACTOR/huggingface_merged}
"$PY" -m verl.model_merger merge --backend fsdp --local_dir "$ACTOR" --target_dir "$TARGET"
if [ -d "$ACTOR/huggingface" ]; then
  for f in "$ACTOR"/huggingface/*; do
    case "$(basename "$f")" in *.safetensors|*.bin|model.safetensors.index.json) ;; *) [ -e "$TARGET/$(basename "$f")" ] || cp -r "$f" "$TARGET/" ;; esac
  done
fi
ls "$TARGET"/*.safetensors >/dev/null 2>&1 || { echo "merge wrote no weights to $TARGET" >&2; exit 1; }
echo "merged: $TARGET"
