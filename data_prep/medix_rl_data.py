"""Turn the MediX-R1 training set (``MBZUAI/medix-rl-data``) into verl RL parquet.

    python -m data_prep.medix_rl_data --input SRC --split train|test --output DIR
        [--num-proc N] [--min-pixels P] [--max-pixels P] [--limit N] [--shard-rows N]

SRC: a hub id (when a hub is reachable), a ``save_to_disk`` folder, a parquet file, or a folder
of parquet files, with the published columns ``id, image (list of images), source, problem,
solution``. Writes ``DIR/<split>.parquet`` (or ``DIR/<split>-NNNNN-of-NNNNN.parquet`` shards),
``DIR/<split>.rejects.jsonl`` (every row not written, with its id and reason) and
``DIR/<split>.stats.json`` (rows in = rows out + rows rejected, per source and modality).
Streams with bounded memory; the same input gives the same files.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path

import pyarrow as pa

from reward_fns import MODALITY_TAGS, parse_ground_truth
from reward_fns.prompts import IMAGE_PLACEHOLDER, medix_prompt

from .common import (
    Ledger,
    ShardedParquetWriter,
    iter_source,
    json_id,
    normalize_id,
    require_columns,
    run_cli,
    staged_output,
)
from .images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, ImageError, normalize_image

COLUMNS = ["id", "image", "source", "problem", "solution"]
ABILITY = "medical_vqa"

SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        (
            "images",
            pa.list_(pa.struct([("bytes", pa.binary()), ("min_pixels", pa.int64()), ("max_pixels", pa.int64())])),
        ),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        (
            "extra_info",
            pa.struct(
                [
                    ("id", pa.string()),
                    ("source", pa.string()),
                    ("question", pa.string()),
                    ("modality", pa.string()),
                    ("answer", pa.string()),
                    ("split", pa.string()),
                    ("index", pa.int64()),
                ]
            ),
        ),
    ]
)


class RowRejected(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def convert_row(
    row: dict, split: str, index: int, min_pixels: int, max_pixels: int, image_root: str | None = None
) -> dict:
    """One published row -> one verl row. Raises :class:`RowRejected` with a reason code."""
    row_id = normalize_id(row.get("id"))
    if row_id is None:
        raise RowRejected("missing_id", f"row has no usable id (got {json_id(row.get('id'))!r})")
    problem = row.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise RowRejected("empty_problem", "problem is empty")
    if IMAGE_PLACEHOLDER in problem:
        raise RowRejected("placeholder_in_problem", f"problem already contains {IMAGE_PLACEHOLDER!r}")
    solution = row.get("solution")
    if not isinstance(solution, str):
        raise RowRejected("bad_solution", f"solution is {type(solution).__name__}, not a string")
    gt = parse_ground_truth(solution)
    if gt.tag not in MODALITY_TAGS:
        raise RowRejected("unknown_modality", f"solution does not start with a known modality tag: {solution[:60]!r}")
    if not gt.answer:
        raise RowRejected("empty_answer", "solution has a tag but no answer")
    images = row.get("image")
    if images is None:
        images = []
    if not isinstance(images, (list, tuple)):
        images = [images]
    out_images = []
    for k, image in enumerate(images):
        try:
            out_images.append(
                normalize_image(image, min_pixels=min_pixels, max_pixels=max_pixels, image_root=image_root)
            )
        except ImageError as exc:
            raise RowRejected("bad_image", f"image {k}: {exc}") from None
    source = str(row.get("source") or "unknown")
    question = problem.strip()
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": medix_prompt(question, len(out_images))}],
        "images": out_images,
        "ability": ABILITY,
        "reward_model": {"style": "model", "ground_truth": solution},
        "extra_info": {
            "id": row_id,
            "source": source,
            "question": question,
            "modality": gt.tag,
            "answer": gt.answer,
            "split": split,
            "index": index,
        },
    }


def _convert_chunk(args):
    rows, split, start, min_pixels, max_pixels, image_root = args
    out = []
    for offset, row in enumerate(rows):
        try:
            out.append(("ok", convert_row(row, split, start + offset, min_pixels, max_pixels, image_root)))
        except RowRejected as exc:
            out.append(("reject", (exc.code, exc.detail)))
        except MemoryError:  # one oversized row must not end the run
            out.append(("reject", ("out_of_memory", "ran out of memory converting this row")))
    return out


def _rows(src: str, split: str, limit: int | None):
    stream = (row for batch in iter_source(src, split, batch_size=64) for row in batch)
    return islice(stream, limit) if limit else stream


def convert(
    src: str,
    split: str,
    out_dir: str | Path,
    *,
    num_proc: int = 1,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit: int | None = None,
    shard_rows: int | None = None,
    progress: bool = True,
    image_root: str | None = None,
) -> dict:
    """Convert ``src`` and return the statistics (also written to ``DIR/<split>.stats.json``).

    The outputs replace the previous ones only when the conversion succeeds (:func:`staged_output`).
    """
    if not 0 < min_pixels <= max_pixels:
        raise ValueError(f"need 0 < min_pixels <= max_pixels, got {min_pixels}, {max_pixels}")
    with staged_output(out_dir, split) as staging:
        return _convert(src, split, staging, num_proc, min_pixels, max_pixels, limit, shard_rows, progress, image_root)


def _convert(src, split, staging, num_proc, min_pixels, max_pixels, limit, shard_rows, progress, image_root) -> dict:
    writer = ShardedParquetWriter(staging, split, SCHEMA, shard_rows=shard_rows)
    ledger = Ledger(staging, split)
    seen: set[str] = set()
    chunk = 16
    window = max(1, num_proc) * 4  # chunks in flight: bounds memory
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=f"{split}", unit="row", file=sys.stderr, total=limit)

    def consume(rows, results):
        for row, (kind, value) in zip(rows, results):
            if not ledger.rows_in:
                require_columns(row, COLUMNS, str(src), "data_prep.medix_rl_data")
            ledger.rows_in += 1
            row_id = row.get("id")
            source = str(row.get("source") or "unknown")
            if kind == "reject":
                code, detail = value
                ledger.reject(row_id, detail, code, source=source)
            elif value["extra_info"]["id"] in seen:
                ledger.reject(row_id, "id already written earlier in this split", "duplicate_id", source=source)
            else:
                seen.add(value["extra_info"]["id"])
                writer.write(value)
                ledger.accept(source=source, modality=value["extra_info"]["modality"])
            if bar is not None:
                bar.update(1)

    stream = _rows(src, split, limit)
    index = 0
    executor = ProcessPoolExecutor(num_proc) if num_proc > 1 else None
    try:
        while True:
            chunks = []
            for _ in range(window):
                rows = list(islice(stream, chunk))
                if not rows:
                    break
                chunks.append((rows, split, index, min_pixels, max_pixels, image_root))
                index += len(rows)
            if not chunks:
                break
            results = executor.map(_convert_chunk, chunks) if executor else map(_convert_chunk, chunks)
            for args, result in zip(chunks, results):
                consume(args[0], result)
    finally:
        if executor is not None:
            executor.shutdown()
        if bar is not None:
            bar.close()
    files = writer.close()
    return ledger.close(
        {
            "split": split,
            "source": str(src),
            "files": [f.name for f in files],
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
        }
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.medix_rl_data", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="hub id, save_to_disk folder, parquet file or folder")
    parser.add_argument("--split", required=True, choices=["train", "test"])
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--num-proc", type=int, default=1)
    parser.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument("--limit", type=int, help="convert only the first N rows")
    parser.add_argument("--shard-rows", type=int, help="write shards of N rows")
    parser.add_argument(
        "--image-root", help="folder that image paths in the rows are relative to (files elsewhere are refused)"
    )
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    return run_cli(
        "data_prep.medix_rl_data",
        args.output,
        lambda: convert(
            args.input,
            args.split,
            args.output,
            num_proc=args.num_proc,
            min_pixels=args.min_pixels,
            max_pixels=args.max_pixels,
            limit=args.limit,
            shard_rows=args.shard_rows,
            progress=not args.quiet,
            image_root=args.image_root,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
