"""Fixes for verl 0.9.1 bugs that MediX-R1 data triggers, applied by the ``verl.plugins`` entry
point in every verl process. Each one is narrow, says what it fixes, and checks that the code it
replaces is still there (:mod:`medix_verl.integration.patching`): on a verl without it, the fix is skipped
with a warning that names both versions (the bug may be fixed or moved there).

* Qwen2-VL / Qwen2.5-VL, a micro-batch with no image at all (MediX-R1 has text-only questions):
  verl runs the vision tower on a dummy patch grid (so FSDP sees its parameters used) and adds
  ``0.0 * image_embeds.mean()``; with transformers >= 5 the tower returns an output object, not
  a tensor, and the step dies with ``'BaseModelOutputWithPooling' object has no attribute 'mean'``.
  The text-only case is replaced by one that unpacks the output first; batches with images go
  to verl's code unchanged.
"""

from __future__ import annotations

import logging
import warnings

from .patching import VerlMismatchError, require, require_params

logger = logging.getLogger(__name__)


def apply() -> None:
    _qwen2_vl_text_only_batches()


def _qwen2_vl_text_only_batches() -> None:
    patch = "medix_verl compat fix for text-only Qwen2-VL batches"
    try:
        import verl.models.transformers.qwen2_vl as qwen2_vl
        import verl.utils.transformers_compat as transformers_compat

        require(qwen2_vl, ["_get_input_embeds"], patch=patch)
        require(transformers_compat, ["unpack_visual_output"], patch=patch)
        require_params(
            qwen2_vl._get_input_embeds,
            [
                "model",
                "input_ids",
                "attention_mask",
                "pixel_values",
                "pixel_values_videos",
                "image_grid_thw",
                "video_grid_thw",
            ],
            patch=patch,
        )
    except (ImportError, VerlMismatchError) as exc:
        warnings.warn(f"{patch} skipped: {exc}", stacklevel=2)
        return
    unpack_visual_output = transformers_compat.unpack_visual_output
    original = qwen2_vl._get_input_embeds
    if getattr(original, "_medix_fixed", False):
        return
    import torch

    def _get_input_embeds(
        model,
        input_ids,
        attention_mask=None,
        pixel_values=None,
        pixel_values_videos=None,
        image_grid_thw=None,
        video_grid_thw=None,
    ):
        if pixel_values is not None or pixel_values_videos is not None:
            return original(
                model, input_ids, attention_mask, pixel_values, pixel_values_videos, image_grid_thw, video_grid_thw
            )
        inputs_embeds = model.get_input_embeddings()(input_ids)
        vision = model.config.vision_config
        patch_dim = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
        dummy = torch.zeros((16, patch_dim), dtype=inputs_embeds.dtype, device=inputs_embeds.device)
        grid = torch.tensor([[1, 4, 4]], dtype=torch.long, device=inputs_embeds.device)
        image_embeds, _ = unpack_visual_output(model.visual(dummy, grid_thw=grid))
        inputs_embeds = inputs_embeds + 0.0 * image_embeds.mean()
        if attention_mask is not None:
            attention_mask = attention_mask.to(inputs_embeds.device)
        return inputs_embeds, attention_mask

    _get_input_embeds._medix_fixed = True
    qwen2_vl._get_input_embeds = _get_input_embeds
