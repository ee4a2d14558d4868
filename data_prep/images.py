"""Image normalisation for verl parquet: decode, verify, convert to 8-bit RGB, bound the size."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from PIL import Image, ImageFile

# The release resizes images into [262,144, 4,194,304] pixels.
DEFAULT_MIN_PIXELS = 262_144
DEFAULT_MAX_PIXELS = 4_194_304
# A decompression bomb is refused, not half-decoded.
Image.MAX_IMAGE_PIXELS = 400_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An image that cannot be used: the message says why."""


def image_bytes(value: Any) -> bytes:
    """Raw encoded bytes from the forms datasets store images in (bytes, {"bytes", "path"}, PIL, path)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        if value.get("path"):
            return _read_path(value["path"])
        raise ImageError("image entry has neither bytes nor path")
    if isinstance(value, Image.Image):
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    if isinstance(value, str):
        return _read_path(value)
    raise ImageError(f"unsupported image value of type {type(value).__name__}")


def _read_path(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ImageError(f"cannot read image file {path}: {exc.strerror}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode: alpha is composited on white, 16-bit and float are rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        img = Image.fromarray(np.round(scaled).astype(np.uint8))
    if img.mode in ("RGBA", "LA") or (img.mode == "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def normalize_image(value: Any, *, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """Decode and check one image; return ``{"bytes": PNG or original JPEG, "min_pixels", "max_pixels"}``.

    RGB JPEG/PNG within ``max_pixels`` keep their original bytes; anything else is converted to
    RGB PNG. Images above ``max_pixels`` are downscaled (aspect kept) here; upscaling to
    ``min_pixels`` is left to the processor, which honours the per-image bounds.
    Raises :class:`ImageError` for an image that does not decode.
    """
    raw = image_bytes(value)
    if not raw:
        raise ImageError("image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            fmt = probe.format
            probe.verify()
        img = Image.open(io.BytesIO(raw))
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large to decode safely: {exc}") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise ImageError(f"image does not decode ({type(exc).__name__}: {exc})") from None
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(f"image has no pixels ({width}x{height})")
    keep = img.mode == "RGB" and fmt in ("JPEG", "PNG") and width * height <= max_pixels
    if not keep:
        img = to_rgb(img)
        if width * height > max_pixels:
            scale = math.sqrt(max_pixels / (width * height))
            size = (max(1, int(width * scale)), max(1, int(height * scale)))
            img = img.resize(size, Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=False)
        raw = buf.getvalue()
    return {"bytes": raw, "min_pixels": int(min_pixels), "max_pixels": int(max_pixels)}
