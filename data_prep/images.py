"""Image input for the data scripts: safe reading (paths only under an image root, regular files
only, a pixel budget checked before decoding), decoding, conversion to 8-bit RGB, bounded size."""

from __future__ import annotations

import io
import math
import os
import stat
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# The release resizes images into [262,144, 4,194,304] pixels.
DEFAULT_MIN_PIXELS = 262_144
DEFAULT_MAX_PIXELS = 4_194_304
#: images declaring more pixels than this are refused before they are decoded (a small file can
#: declare a huge image: a decompression bomb). PIL's own global limit is left as it is.
MAX_DECODE_PIXELS = 178_956_970
#: image files larger than this are not read
MAX_FILE_BYTES = 512 * 1024 * 1024


class ImageError(ValueError):
    """An image that cannot be used: the message says why."""


def image_bytes(value: Any, image_root: str | Path | None = None) -> bytes:
    """Raw encoded bytes from the forms datasets store images in (bytes, {"bytes", "path"}, PIL,
    path). A path is read only when it resolves to a regular file inside ``image_root``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        if value.get("path"):
            return read_image_file(value["path"], image_root)
        raise ImageError("image entry has neither bytes nor path")
    if isinstance(value, Image.Image):
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    if isinstance(value, str):
        return read_image_file(value, image_root)
    raise ImageError(f"unsupported image value of type {type(value).__name__}")


def read_image_file(path: str, image_root: str | Path | None) -> bytes:
    """Read an image file named by a row: relative to ``image_root`` (or absolute, inside it); a
    path that leaves the root (``..``, an absolute path elsewhere, a symlink out) or that is not a
    regular file (a device, a FIFO, a folder) is refused, not opened."""
    if image_root is None:
        raise ImageError(f"image path {path!r}: image files are read only under --image-root")
    if str(image_root).endswith(".zip") and os.path.isfile(image_root):
        return _read_zip_member(str(image_root), path)
    root = os.path.realpath(image_root)
    resolved = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([resolved, root]) != root:
        raise ImageError(f"image path {path!r} leaves the image root {image_root}")
    try:
        info = os.stat(resolved)
    except OSError as exc:
        raise ImageError(f"cannot read image file {path!r}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"image path {path!r} is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(f"image file {path!r} has {info.st_size} bytes, over {MAX_FILE_BYTES}")
    try:
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since the check
                raise ImageError(f"image path {path!r} is not a regular file")
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"cannot read image file {path!r}: {exc.strerror}") from None


_ZIPS: dict[str, zipfile.ZipFile] = {}


def _read_zip_member(archive: str, path: str) -> bytes:
    """An image from a zip the publisher ships (SLAKE's ``imgs.zip``): the member ``path``, or
    ``path`` under the archive's one top folder (``imgs/xmlab1/source.jpg``). Members are looked
    up by name, never extracted: a name with ``..`` or an absolute path is refused."""
    name = path.replace("\\", "/")
    if name.startswith("/") or ".." in name.split("/"):
        raise ImageError(f"image path {path!r} leaves the image archive {archive}")
    while name.startswith("./"):
        name = name[2:]
    handle = _ZIPS.get(archive)
    if handle is None:
        try:
            handle = _ZIPS[archive] = zipfile.ZipFile(archive)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ImageError(f"cannot open image archive {archive}: {exc}") from None
    names = set(handle.namelist())
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    member = name if name in names else next((f"{t}/{name}" for t in sorted(tops) if f"{t}/{name}" in names), None)
    if member is None:
        raise ImageError(f"image {path!r} is not in {archive}")
    info = handle.getinfo(member)
    if info.file_size > MAX_FILE_BYTES:
        raise ImageError(f"image {path!r} in {archive} has {info.file_size} bytes, over {MAX_FILE_BYTES}")
    with handle.open(info) as member_file:
        return member_file.read(MAX_FILE_BYTES + 1)


def open_checked(raw: bytes) -> Image.Image:
    """Open (not yet decode) an image, refusing one that declares more than
    :data:`MAX_DECODE_PIXELS` pixels before any pixel is decoded."""
    if not raw:
        raise ImageError("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image declares too many pixels to decode safely: {exc}") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise ImageError(f"image does not decode ({type(exc).__name__}: {exc})") from None
    width, height = img.size
    if width * height > MAX_DECODE_PIXELS:
        raise ImageError(
            f"image declares {width}x{height} = {width * height} pixels, over the limit of {MAX_DECODE_PIXELS} "
            "(a decompression bomb?)"
        )
    return img


def decode_checked(raw: bytes) -> Image.Image:
    """:func:`open_checked`, then verify and decode every pixel."""
    img = open_checked(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.verify()
            img = Image.open(io.BytesIO(raw))
            img.load()
    except Exception as exc:  # PIL raises many types for broken files
        raise ImageError(f"image does not decode ({type(exc).__name__}: {exc})") from None
    return img


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


def normalize_image(
    value: Any,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    image_root: str | Path | None = None,
) -> dict:
    """Decode and check one image; return ``{"bytes": PNG or original JPEG, "min_pixels", "max_pixels"}``.

    RGB JPEG/PNG within ``max_pixels`` keep their original bytes; anything else is converted to
    RGB PNG. Images above ``max_pixels`` are downscaled (aspect kept) here; upscaling to
    ``min_pixels`` is left to the processor, which honours the per-image bounds.
    Raises :class:`ImageError` for an image that does not decode or is refused.
    """
    raw = image_bytes(value, image_root)
    img = decode_checked(raw)
    fmt = Image.open(io.BytesIO(raw)).format
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
