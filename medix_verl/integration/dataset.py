"""verl dataset class for MediX-R1 data (``data.custom_cls``).

    data.custom_cls.path=pkg://medix_verl.integration.dataset data.custom_cls.name=MedixDataset

Reads the parquet written by ``data_prep.medix_rl_data`` and also raw rows in the published
columns (``id, image, source, problem, solution``), applying the release's prompt template on the
fly. Rows may have zero or several images. Every image carries pixel bounds (``min_pixels`` /
``max_pixels``, from ``data.min_pixels`` / ``data.max_pixels`` or the release's
[262,144, 4,194,304]) that qwen_vl_utils honours when the agent loop processes it. The modality
tag and the question stay in ``extra_info`` for the reward. verl's overlong-prompt filter works
on both kinds of rows.
"""

from __future__ import annotations

from typing import Any

from verl.utils.dataset.rl_dataset import RLHFDataset

PUBLISHED_COLUMNS = ("problem", "solution")


class MedixDataset(RLHFDataset):
    def __init__(self, data_files, tokenizer, config, processor=None, max_samples: int = -1):
        from data_prep.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

        self.min_pixels = int(config.get("min_pixels", None) or DEFAULT_MIN_PIXELS)
        self.max_pixels = int(config.get("max_pixels", None) or DEFAULT_MAX_PIXELS)
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 0 < data.min_pixels <= data.max_pixels, got {self.min_pixels}, {self.max_pixels}")
        self.split_name = config.get("split_name", None) or "train"
        super().__init__(data_files, tokenizer, config, processor=processor, max_samples=max_samples)

    # ------------------------------------------------------------------ row conversion
    def to_verl_row(self, row: dict[str, Any], index: int = 0) -> dict[str, Any]:
        """A verl-schema row from either a prepared row or a raw published row (``index``: its position)."""
        if row.get(self.prompt_key) is not None:
            images = row.get(self.image_key) or []
            row[self.image_key] = [self._bounded(img) for img in images]
            return row
        if all(col in row for col in PUBLISHED_COLUMNS):
            from data_prep.medix_rl_data import RowRejected, convert_row

            try:
                converted = convert_row(row, self.split_name, index, self.min_pixels, self.max_pixels)
            except RowRejected as exc:
                raise ValueError(f"row id={row.get('id')!r} cannot be used ({exc.code}): {exc.detail}") from None
            if self.image_key != "images":
                converted[self.image_key] = converted.pop("images")
            if self.prompt_key != "prompt":
                converted[self.prompt_key] = converted.pop("prompt")
            return converted
        raise KeyError(
            f"row has neither a {self.prompt_key!r} column nor the published columns {PUBLISHED_COLUMNS}: "
            f"keys {sorted(row)}"
        )

    def _bounded(self, image: Any) -> Any:
        if isinstance(image, dict):
            image = dict(image)
            image.setdefault("min_pixels", self.min_pixels)
            image.setdefault("max_pixels", self.max_pixels)
            if image["min_pixels"] is None:
                image["min_pixels"] = self.min_pixels
            if image["max_pixels"] is None:
                image["max_pixels"] = self.max_pixels
            if image.get("bytes") is None:
                image.pop("bytes", None)
            return image
        if isinstance(image, (bytes, bytearray)):
            return {"bytes": bytes(image), "min_pixels": self.min_pixels, "max_pixels": self.max_pixels}
        if isinstance(image, str):
            return {"image": image, "min_pixels": self.min_pixels, "max_pixels": self.max_pixels}
        return image  # PIL images: verl converts them; bounds come from the processor's defaults

    # ------------------------------------------------------------------ verl hooks
    def _build_messages(self, example: dict, key: str):
        example = self.to_verl_row(dict(example))
        return super()._build_messages(example, key=self.prompt_key)

    def __getitem__(self, item):
        row = self.to_verl_row(dict(self.dataframe[item]), index=item)
        row["raw_prompt"] = RLHFDataset._build_messages(self, row, key=self.prompt_key)
        for key in (self.image_key, self.video_key, self.audio_key):
            row.pop(key, None)
        for key in ("id", "image", "problem", "solution", "source"):
            row.pop(key, None)  # raw published columns, now carried in extra_info
        import torch

        row["dummy_tensor"] = torch.tensor([0], dtype=torch.uint8)
        extra = row.get("extra_info") or {}
        row["extra_info"] = extra
        row["index"] = extra.get("index", 0)
        row["tools_kwargs"] = extra.get("tools_kwargs", {}) or {}
        row["interaction_kwargs"] = extra.get("interaction_kwargs", {}) or {}
        return row
