"""data_prep.medix_rl_data on fixture datasets with real images, in every input form."""

import hashlib
import io
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from fixtures_data import published_rows, write_published_parquet
from PIL import Image

from data_prep.medix_rl_data import convert
from reward_fns.prompts import MEDIX_PROMPT_HEAD


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    rows, expected = published_rows()
    path = write_published_parquet(tmp_path_factory.mktemp("src") / "train.parquet", rows)
    return path, rows, expected


def read(path):
    return pq.read_table(path).to_pylist()


def test_convert_accounts_for_every_row(published, tmp_path):
    src, rows, expected = published
    stats = convert(str(src), "train", tmp_path, progress=False)
    assert stats["rows_in"] == len(rows) == stats["rows_out"] + stats["rows_rejected"]
    assert stats["reconciles"] is True
    rejects = [json.loads(line) for line in (tmp_path / "train.rejects.jsonl").read_text().splitlines()]
    got = {r["id"]: r["reason"] for r in rejects if r["reason"] != "duplicate_id"}
    assert got == expected
    assert [r["id"] for r in rejects if r["reason"] == "duplicate_id"] == ["ok-rgba"]
    assert "image 0" in next(r["detail"] for r in rejects if r["id"] == "bad-trunc")
    on_disk = json.loads((tmp_path / "train.stats.json").read_text())
    assert on_disk["rows_out"] == 7 and on_disk["out_by"]["modality"]["<CT_SCAN>"] == 2
    assert on_disk["out_by"]["source"] == {"pmc": 2, "rad": 2, "slake": 2, "text": 1}


def test_output_rows_are_verl_rows(published, tmp_path):
    src, rows, _ = published
    convert(str(src), "train", tmp_path, progress=False)
    out = {r["extra_info"]["id"]: r for r in read(tmp_path / "train.parquet")}
    two = out["ok-two"]
    assert two["prompt"] == [{"role": "user", "content": MEDIX_PROMPT_HEAD + "<image><image>Compare the two."}]
    assert two["reward_model"] == {"style": "model", "ground_truth": "<MRI_SCAN> Larger lesion on the second"}
    assert (
        two["extra_info"]["modality"] == "<MRI_SCAN>" and two["extra_info"]["answer"] == "Larger lesion on the second"
    )
    assert two["extra_info"]["question"] == "Compare the two." and two["extra_info"]["split"] == "train"
    assert two["data_source"] == "rad" and two["ability"]
    assert out["ok-none"]["images"] == [] and "<image>" not in out["ok-none"]["prompt"][0]["content"]
    for rid, row in out.items():
        for image in row["images"]:
            assert image["min_pixels"] == 262_144 and image["max_pixels"] == 4_194_304
            decoded = Image.open(io.BytesIO(image["bytes"]))
            assert decoded.mode == "RGB", rid
            assert decoded.width * decoded.height <= 4_194_304
    # RGBA is composited on white: the fully transparent column becomes white
    rgba = Image.open(io.BytesIO(out["ok-rgba"]["images"][0]["bytes"]))
    assert rgba.getpixel((0, 0)) == (255, 255, 255) and rgba.getpixel((63, 0)) == (200, 0, 0)
    large = Image.open(io.BytesIO(out["ok-large"]["images"][0]["bytes"]))
    assert large.size[0] / large.size[1] == pytest.approx(2600 / 1800, rel=0.01)


def test_idempotent_and_parallel_identical(published, tmp_path):
    src, _, _ = published
    digests = []
    for run, num_proc in (("a", 1), ("b", 1), ("c", 2)):
        convert(str(src), "train", tmp_path / run, num_proc=num_proc, progress=False)
        digests.append(
            tuple(
                hashlib.sha256((tmp_path / run / name).read_bytes()).hexdigest()
                for name in ("train.parquet", "train.rejects.jsonl", "train.stats.json")
            )
        )
    # stats name the source path only; it is the same for all three runs
    assert digests[0] == digests[1] == digests[2]


def test_shards_and_limit(published, tmp_path):
    src, _, _ = published
    stats = convert(str(src), "train", tmp_path, shard_rows=3, limit=9, progress=False)
    assert stats["rows_in"] == 9
    assert stats["files"] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    sizes = [pq.ParquetFile(tmp_path / f).metadata.num_rows for f in stats["files"]]
    assert sizes == [3, 3, 1] and stats["rows_out"] == 7
    assert not (tmp_path / "train.parquet").exists()


def test_save_to_disk_and_parquet_folder_inputs(published, tmp_path):
    import datasets

    src, rows, _ = published
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Sequence(datasets.Image()),
            "source": datasets.Value("string"),
            "problem": datasets.Value("string"),
            "solution": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "saved"))
    s1 = convert(str(tmp_path / "saved"), "test", tmp_path / "o1", progress=False)
    folder = tmp_path / "pq" / "data"
    folder.mkdir(parents=True)
    write_published_parquet(folder / "test-00000-of-00002.parquet", rows[:6])
    write_published_parquet(folder / "test-00001-of-00002.parquet", rows[6:])
    write_published_parquet(folder / "train-00000-of-00001.parquet", rows[:2])  # other split: ignored
    s2 = convert(str(tmp_path / "pq"), "test", tmp_path / "o2", progress=False)
    assert s1["rows_out"] == s2["rows_out"] == 7 and s1["rows_in"] == s2["rows_in"] == len(rows)
    a = [r["extra_info"]["id"] for r in read(tmp_path / "o1" / "test.parquet")]
    b = [r["extra_info"]["id"] for r in read(tmp_path / "o2" / "test.parquet")]
    assert a == b


def test_cli_and_bad_source(published, tmp_path):
    src, _, _ = published
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep.medix_rl_data",
            "--input",
            str(src),
            "--split",
            "train",
            "--output",
            str(tmp_path),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rows in 13 = rows out 7 + rows rejected 6" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep.medix_rl_data",
            "--input",
            str(tmp_path / "nope"),
            "--split",
            "train",
            "--output",
            str(tmp_path / "x"),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "nope: no such file or folder" in proc.stderr
