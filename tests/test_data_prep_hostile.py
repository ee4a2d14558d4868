"""Data preparation on hostile input: decompression bombs, memory errors, paths out of the image
root and special files, a failing rerun over good output, wrong columns, odd ids."""

import json
import os
import struct
import subprocess
import sys
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures_data import img, rgb_jpeg, rgb_png
from PIL import Image

import data_prep.medix_rl_data as rl
from data_prep.eval_sets import convert_task
from data_prep.images import ImageError, read_image_file
from data_prep.medix_rl_data import convert


def png_bomb(width=60_000, height=60_000) -> bytes:
    """A valid PNG header that declares ``width x height`` pixels, in a few dozen bytes."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def row(rid, image, problem="What is shown?", solution="<CT_SCAN> Pneumonia"):
    return {
        "id": rid,
        "image": [image] if image is not None else [],
        "source": "rad",
        "problem": problem,
        "solution": solution,
    }


def write(path, rows, schema=None):
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def rejects(folder, name):
    return {r["id"]: r for r in map(json.loads, (folder / f"{name}.rejects.jsonl").read_text().splitlines())}


# ----------------------------------------------------------------------------- 5. bombs, memory
def test_a_decompression_bomb_is_rejected_per_row_and_pil_limits_stay(tmp_path):
    limit_before = Image.MAX_IMAGE_PIXELS
    src = write(tmp_path / "in.parquet", [row("bomb", img(png_bomb())), row("ok", img(rgb_jpeg()))])
    stats = convert(str(src), "train", tmp_path / "out", progress=False)
    assert stats["rows_out"] == 1 and stats["rejected_by_reason"] == {"bad_image": 1}
    detail = rejects(tmp_path / "out", "train")["bomb"]["detail"]
    assert "60000x60000" in detail or "too many pixels" in detail
    assert Image.MAX_IMAGE_PIXELS == limit_before  # the process-wide PIL limit is not raised
    import data_prep.images  # noqa: F401  (importing the module changes nothing global either)

    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_a_memory_error_on_one_row_does_not_end_the_run(tmp_path, monkeypatch):
    real = rl.normalize_image

    def sometimes_out_of_memory(value, **kwargs):
        if value["bytes"] == b"boom":
            raise MemoryError
        return real(value, **kwargs)

    monkeypatch.setattr(rl, "normalize_image", sometimes_out_of_memory)
    src = write(
        tmp_path / "in.parquet", [row("a", img(rgb_jpeg())), row("huge", img(b"boom")), row("b", img(rgb_png()))]
    )
    stats = convert(str(src), "train", tmp_path / "out", progress=False)
    assert stats["rows_out"] == 2 and stats["rejected_by_reason"] == {"out_of_memory": 1}
    assert rejects(tmp_path / "out", "train")["huge"]["reason"] == "out_of_memory"


# ----------------------------------------------------------------------------- 6. a failing rerun
def test_a_failing_rerun_keeps_the_previous_good_output(tmp_path, monkeypatch):
    src = write(tmp_path / "in.parquet", [row(f"r{i}", img(rgb_jpeg(seed=i))) for i in range(5)])
    convert(str(src), "train", tmp_path / "out", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    real = rl.convert_row

    def crash_late(r, *args, **kwargs):
        if r["id"] == "r3":
            raise RuntimeError("disk full, say")
        return real(r, *args, **kwargs)

    monkeypatch.setattr(rl, "convert_row", crash_late)
    with pytest.raises(RuntimeError, match="disk full"):
        convert(str(src), "train", tmp_path / "out", progress=False)
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before  # same files, same bytes, no staging left behind
    # a successful rerun with shards replaces them all, stale single file included
    monkeypatch.setattr(rl, "convert_row", real)
    convert(str(src), "train", tmp_path / "out", progress=False, shard_rows=2)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"train-0000{i}-of-00003.parquet" for i in range(3)] + ["train.rejects.jsonl", "train.stats.json"]


# ----------------------------------------------------------------------------- 7. paths and special files
@pytest.fixture
def image_tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.jpg").write_bytes(rgb_jpeg())
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(rgb_jpeg(seed=5))
    (root / "link_out.jpg").symlink_to(outside)
    (root / "link_in.jpg").symlink_to(root / "sub" / "ok.jpg")
    os.mkfifo(root / "fifo.jpg")
    return root, outside


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../secret.jpg", "leaves the image root"),
        ("sub/../../secret.jpg", "leaves the image root"),
        ("link_out.jpg", "leaves the image root"),
        ("fifo.jpg", "not a regular file"),
        ("sub", "not a regular file"),
        ("/dev/zero", "leaves the image root"),
        ("missing.jpg", "cannot read"),
    ],
)
def test_paths_out_of_the_root_and_special_files_are_refused(image_tree, path, why):
    root, _ = image_tree
    with pytest.raises(ImageError, match=why):
        read_image_file(path, root)


def test_paths_inside_the_root_are_read_and_no_root_reads_nothing(image_tree):
    root, outside = image_tree
    assert read_image_file("sub/ok.jpg", root) == rgb_jpeg()
    assert read_image_file("link_in.jpg", root) == rgb_jpeg()
    assert read_image_file(str(root / "sub" / "ok.jpg"), root) == rgb_jpeg()
    with pytest.raises(ImageError, match="leaves the image root"):
        read_image_file(str(outside), root)
    with pytest.raises(ImageError, match="only under --image-root"):
        read_image_file("sub/ok.jpg", None)


def test_conversions_refuse_escaping_paths_row_by_row(image_tree, tmp_path):
    root, outside = image_tree
    rows = [
        row("in", {"bytes": None, "path": "sub/ok.jpg"}),
        row("up", {"bytes": None, "path": "../secret.jpg"}),
        row("abs", {"bytes": None, "path": str(outside)}),
        row("fifo", {"bytes": None, "path": "fifo.jpg"}),
    ]
    schema = pa.schema(
        [("id", pa.string()), ("image", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
         ("source", pa.string()), ("problem", pa.string()), ("solution", pa.string())]
    )  # fmt: skip
    src = write(tmp_path / "in.parquet", rows, schema)
    stats = convert(str(src), "train", tmp_path / "out", progress=False, image_root=str(root))
    assert stats["rows_out"] == 1
    got = rejects(tmp_path / "out", "train")
    assert {k: v["reason"] for k, v in got.items()} == {"up": "bad_image", "abs": "bad_image", "fifo": "bad_image"}
    # the evaluation's relative paths (SLAKE img_name) go through the same check
    slake = write(
        tmp_path / "slake.parquet",
        [
            {"img_name": "sub/ok.jpg", "question": "q?", "answer": "Yes", "q_lang": "en"},
            {"img_name": "../secret.jpg", "question": "q?", "answer": "No", "q_lang": "en"},
        ],
    )
    stats = convert_task("slake_vqa", str(slake), tmp_path / "eval", image_root=str(root))
    assert stats["rows_out"] == 1 and stats["rejected_by_reason"] == {"bad_image": 1}


# ----------------------------------------------------------------------------- 8. columns and ids
def test_wrong_columns_exit_non_zero_naming_them(tmp_path):
    src = write(tmp_path / "in.parquet", [{"id": "a", "question": "q", "answer": "x"}])
    proc = subprocess.run(
        [sys.executable, "-m", "data_prep.medix_rl_data", "--input", str(src), "--split", "train",
         "--output", str(tmp_path / "out"), "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "missing column(s) ['image', 'source', 'problem', 'solution']" in proc.stderr
    assert not (tmp_path / "out" / "train.parquet").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "data_prep.eval_sets", "--task", "medqa", "--input", str(src),
         "--output", str(tmp_path / "eval"), "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "missing column(s) ['sent1', 'ending0'" in proc.stderr


def test_ids_that_are_not_strings(tmp_path):
    schema = pa.schema(
        [("id", pa.binary()), ("image", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
         ("source", pa.string()), ("problem", pa.string()), ("solution", pa.string())]
    )  # fmt: skip
    rows = [row(b"bytes-id", img(rgb_jpeg())), row(b"\xff\xfe", img(rgb_jpeg())), row(b"bad-img", img(b"nope"))]
    stats = convert(str(write(tmp_path / "b.parquet", rows, schema)), "train", tmp_path / "b", progress=False)
    assert stats["rows_out"] == 1 and stats["rejected_by_reason"] == {"bad_image": 1, "missing_id": 1}
    got = rejects(tmp_path / "b", "train")
    assert set(got) == {"\\xff\\xfe", "bad-img"}  # readable in the ledger, not a crash
    out = pq.read_table(tmp_path / "b" / "train.parquet").to_pylist()
    assert out[0]["extra_info"]["id"] == "bytes-id"
    ints = [row(7, img(rgb_jpeg())), row(8, img(rgb_jpeg(seed=2))), row(7, img(rgb_jpeg(seed=3)))]
    stats = convert(str(write(tmp_path / "i.parquet", ints)), "train", tmp_path / "i", progress=False)
    assert stats["rows_out"] == 2 and stats["rejected_by_reason"] == {"duplicate_id": 1}
    assert [r["extra_info"]["id"] for r in pq.read_table(tmp_path / "i" / "train.parquet").to_pylist()] == ["7", "8"]
