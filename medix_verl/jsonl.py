"""Reading JSONL input with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class JsonlError(ValueError):
    """Bad JSONL input; the message names the file (and line)."""


def iter_objects(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line; anything but a JSON object is an error."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise JsonlError(f"{path}: cannot open: {exc.strerror}") from None
    with handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JsonlError(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start : exc.start + 1]!r} at column {exc.start + 1})"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonlError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise JsonlError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
