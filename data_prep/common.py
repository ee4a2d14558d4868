"""Streaming input, sharded parquet output, rejects and reconciled statistics for data_prep scripts."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class SourceError(ValueError):
    """The input cannot be read: the message names it and says why."""


def require_columns(row: dict, columns, src: str, what: str) -> None:
    """Refuse an input whose rows lack a column the conversion reads (checked on the first row)."""
    missing = [c for c in columns if c not in row]
    if missing:
        raise SourceError(f"{src}: missing column(s) {missing}; it has {sorted(row)}; {what} reads {list(columns)}")


def normalize_id(value: Any) -> str | None:
    """A row id as a string: strings as they are, integers in decimal, UTF-8 bytes decoded; None
    for a missing or unusable id (empty, not UTF-8, another type).

    >>> normalize_id("a1"), normalize_id(7), normalize_id(b"x9"), normalize_id(b"\\xff"), normalize_id(True)
    ('a1', '7', 'x9', None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str) and value.strip():
        return value
    return None


def json_id(value: Any) -> Any:
    """A row id that JSON can hold, for the rejects ledger (bytes and odd types are shown, not dropped)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return repr(value)


# ---------------------------------------------------------------------------- input
def iter_source(
    src: str, split: str, *, batch_size: int = 64, columns: list[str] | None = None, hub_config: str | None = None
) -> Iterator[list[dict]]:
    """Yield lists of row dicts from a parquet file, a folder of parquet files, a ``save_to_disk``
    folder, or (when a hub is reachable) a hub dataset id. Memory stays bounded by ``batch_size``."""
    path = Path(src)
    if path.is_file():
        if path.suffix in (".jsonl", ".json"):
            yield from _iter_json([path], batch_size, split)
            return
        if path.suffix != ".parquet":
            raise SourceError(f"{src}: expected a .parquet, .jsonl or .json file")
        yield from _iter_parquet([path], batch_size, columns)
    elif path.is_dir():
        if any((path / name).exists() for name in ("dataset_dict.json", "dataset_info.json", "state.json")):
            yield from _iter_saved(path, split, batch_size)
            return
        files = sorted(Path(p) for p in glob.glob(str(path / "**" / "*.parquet"), recursive=True))
        if files:
            named = [f for f in files if f.name.startswith(split) or f.parent.name == split]
            yield from _iter_parquet(named or files, batch_size, columns)
            return
        # as publishers ship them: MedQA's JSONL files, SLAKE's test.json (the split's file)
        files = sorted(
            Path(p) for ext in ("jsonl", "json") for p in glob.glob(str(path / "**" / f"*.{ext}"), recursive=True)
        )
        named = [f for f in files if _split_of(f) == split]
        if not named:
            raise SourceError(
                f"{src}: folder holds no .parquet files, is not a save_to_disk folder, and has no "
                f".jsonl/.json file of split {split!r} (found: {', '.join(f.name for f in files[:8]) or 'none'})"
            )
        yield from _iter_json(named, batch_size, split)
    elif "/" in src and not src.startswith((".", "/")):
        yield from _iter_hub(src, split, batch_size, hub_config)
    else:
        raise SourceError(f"{src}: no such file or folder")


def _split_of(file: Path) -> str | None:
    """The split a published JSON(L) file holds, from its name (``test.json``,
    ``phrases_no_exclude_test.jsonl``, ``dev.jsonl``): test, validation, train or None."""
    words = set(re.split(r"[^a-z]+", file.stem.lower()))
    for split, names in (
        ("test", {"test"}),
        ("validation", {"validation", "valid", "dev", "val"}),
        ("train", {"train"}),
    ):
        if words & names:
            return split
    return None


def _iter_json(files, batch_size, split):
    """Rows of JSON Lines files (one object a line) or JSON files (an array of objects, or an
    object with the split's array under its name or ``data``). A bad line or entry is a
    :class:`SourceError` naming the file and line (or index)."""
    for file in files:
        if file.suffix == ".jsonl":
            batch = []
            with open(file, "rb") as handle:
                for lineno, raw in enumerate(handle, 1):
                    if not raw.strip():
                        continue
                    try:
                        row = json.loads(raw)
                    except ValueError as exc:
                        raise SourceError(f"{file}:{lineno}: not valid JSON ({exc})") from None
                    if not isinstance(row, dict):
                        raise SourceError(f"{file}:{lineno}: expected a JSON object, got {type(row).__name__}")
                    batch.append(row)
                    if len(batch) == batch_size:
                        yield batch
                        batch = []
            if batch:
                yield batch
            continue
        try:
            data = json.loads(file.read_bytes())
        except ValueError as exc:
            raise SourceError(f"{file}: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            data = data.get(split, data.get("data"))
        if not isinstance(data, list):
            raise SourceError(f"{file}: expected a JSON array of rows (or an object with {split!r} or 'data')")
        for index, row in enumerate(data):
            if not isinstance(row, dict):
                raise SourceError(f"{file}: entry {index} is a {type(row).__name__}, not an object")
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]


def _iter_parquet(files, batch_size, columns):
    for file in files:
        try:
            # pre_buffer=True (the default) keeps every row group read so far: memory grew with the file
            handle = pq.ParquetFile(file, pre_buffer=False)
        except Exception as exc:
            raise SourceError(f"{file}: not a readable parquet file ({exc})") from None
        if columns:
            missing = [c for c in columns if c not in handle.schema_arrow.names]
            if missing:
                raise SourceError(f"{file}: missing column(s) {missing}; has {handle.schema_arrow.names}")
        for batch in handle.iter_batches(batch_size=batch_size, use_threads=False):
            yield batch.to_pylist()


def _undecoded(ds):
    """Cast image features to decode=False so rows carry encoded bytes, not PIL objects."""
    import datasets

    features = ds.features.copy()
    changed = False
    for name, feat in features.items():
        if isinstance(feat, datasets.Image):
            features[name] = datasets.Image(decode=False)
            changed = True
        elif isinstance(feat, (datasets.Sequence, list)):
            inner = feat.feature if isinstance(feat, datasets.Sequence) else feat[0]
            if isinstance(inner, datasets.Image):
                features[name] = (
                    [datasets.Image(decode=False)]
                    if isinstance(feat, list)
                    else datasets.Sequence(datasets.Image(decode=False))
                )
                changed = True
    return ds.cast(features) if changed else ds


def _iter_saved(path, split, batch_size):
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise SourceError(f"{path}: no split {split!r}; has {list(ds)}")
        ds = ds[split]
    ds = _undecoded(ds)
    for batch in ds.iter(batch_size=batch_size):
        keys = list(batch)
        yield [dict(zip(keys, values)) for values in zip(*(batch[k] for k in keys))]


def _iter_hub(repo, split, batch_size, config=None):
    import datasets

    try:
        ds = datasets.load_dataset(repo, config, split=split, streaming=True)
    except Exception as exc:
        raise SourceError(
            f"{repo}: cannot load from the hub ({type(exc).__name__}: {exc}); pass a local copy"
        ) from None
    ds = _undecoded(ds)
    buf = []
    for row in ds:
        buf.append(row)
        if len(buf) >= batch_size:
            yield buf
            buf = []
    if buf:
        yield buf


# ---------------------------------------------------------------------------- output
class ShardedParquetWriter:
    """Row-group streaming writer: ``DIR/<name>.parquet``, or ``DIR/<name>-NNNNN-of-NNNNN.parquet``
    shards of ``shard_rows`` rows. Files appear (renamed from temporaries) only on :meth:`close`."""

    def __init__(
        self, out_dir: Path, name: str, schema: pa.Schema, *, shard_rows: int | None = None, row_group_rows: int = 256
    ):
        self.out_dir = Path(out_dir)
        self.name = name
        self.schema = schema
        self.shard_rows = shard_rows
        self.row_group_rows = row_group_rows
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_files: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0
        self._buffer: list[dict] = []
        self.rows = 0

    def _open(self):
        tmp = self.out_dir / f".{self.name}.part{len(self._tmp_files):05d}.tmp"
        self._tmp_files.append(tmp)
        self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd", write_statistics=False)
        self._in_shard = 0

    def _flush(self):
        if not self._buffer:
            return
        if self._writer is None:
            self._open()
        self._writer.write_table(
            pa.Table.from_pylist(self._buffer, schema=self.schema), row_group_size=self.row_group_rows
        )
        self._in_shard += len(self._buffer)
        self._buffer = []
        if self.shard_rows and self._in_shard >= self.shard_rows:
            self._writer.close()
            self._writer = None

    def write(self, row: dict) -> None:
        self._buffer.append(row)
        self.rows += 1
        limit = self.row_group_rows
        if self.shard_rows:
            limit = min(limit, self.shard_rows - self._in_shard)
        if len(self._buffer) >= limit:
            self._flush()

    def close(self) -> list[Path]:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._tmp_files:  # no rows: still write an empty, valid file
            self._open()
            self._writer.close()
            self._writer = None
        n = len(self._tmp_files)
        if n == 1 and not self.shard_rows:
            finals = [self.out_dir / f"{self.name}.parquet"]
        else:
            finals = [self.out_dir / f"{self.name}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        for tmp, final in zip(self._tmp_files, finals):
            os.replace(tmp, final)
        return finals


def _outputs_of(folder: Path, name: str) -> list[Path]:
    patterns = (f"{name}.parquet", f"{name}-*-of-*.parquet", f"{name}.rejects.jsonl", f"{name}.stats.json")
    return [p for pattern in patterns for p in folder.glob(pattern)]


@contextmanager
def staged_output(out_dir: str | Path, name: str):
    """A private folder inside ``out_dir`` for one conversion's files (parquet, rejects, stats).

    When the conversion succeeds they replace the previous outputs of ``name`` (stale shards of an
    earlier run are removed); when it fails, they are deleted and the previous outputs stay as
    they were.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=out_dir))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    new = {p.name for p in staging.iterdir()}
    for path in staging.iterdir():
        os.replace(path, out_dir / path.name)
    for old in _outputs_of(out_dir, name):
        if old.name not in new:
            old.unlink()
    staging.rmdir()


class Ledger:
    """Accounts for every input row: written, or rejected with a reason (``<name>.rejects.jsonl``)."""

    def __init__(self, out_dir: Path, name: str):
        self.path = Path(out_dir) / f"{name}.rejects.jsonl"
        self.stats_path = Path(out_dir) / f"{name}.stats.json"
        self._handle = open(self.path, "w", encoding="utf-8")
        self.rows_in = 0
        self.rows_out = 0
        self.reasons: Counter[str] = Counter()
        self.out_by: dict[str, Counter] = {}
        self.rejected_by: dict[str, Counter] = {}

    def accept(self, **groups: str) -> None:
        self.rows_out += 1
        for key, value in groups.items():
            self.out_by.setdefault(key, Counter())[str(value)] += 1

    def reject(self, row_id: Any, reason: str, code: str, **groups: str) -> None:
        self.reasons[code] += 1
        for key, value in groups.items():
            self.rejected_by.setdefault(key, Counter())[str(value)] += 1
        record = {"id": json_id(row_id), "reason": code, "detail": reason}
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    @property
    def rows_rejected(self) -> int:
        return sum(self.reasons.values())

    def close(self, extra: dict | None = None) -> dict:
        self._handle.close()
        stats = {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_rejected": self.rows_rejected,
            "reconciles": self.rows_in == self.rows_out + self.rows_rejected,
            "rejected_by_reason": dict(sorted(self.reasons.items())),
            "out_by": {k: dict(sorted(v.items())) for k, v in sorted(self.out_by.items())},
            "rejected_by": {k: dict(sorted(v.items())) for k, v in sorted(self.rejected_by.items())},
            **(extra or {}),
        }
        if not stats["reconciles"]:
            raise RuntimeError(f"row accounting does not reconcile: {stats}")
        self.stats_path.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
        return stats


def format_stats(stats: dict) -> str:
    lines = [
        f"rows in {stats['rows_in']} = rows out {stats['rows_out']} + rows rejected {stats['rows_rejected']}",
    ]
    for reason, count in stats["rejected_by_reason"].items():
        lines.append(f"  rejected {reason}: {count}")
    for group, counts in stats["out_by"].items():
        lines.append(f"  out by {group}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return "\n".join(lines)


def run_cli(prog: str, output: str, convert) -> int:
    """Run a conversion for a ``python -m data_prep...`` entry point: print the reconciled summary,
    or the error (naming the input) with exit code 2."""
    import sys

    try:
        stats = convert()
    except (SourceError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    print(format_stats(stats))
    print(f"wrote {', '.join(stats['files'])} in {output}")
    return 0
