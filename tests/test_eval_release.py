"""The evaluation equals the MediX-R1 release's, on the release's own outputs.

``tests/golden/release_eval.json`` was made by running the release's code (``eval/utils.py`` and
``eval/eval.py``'s aggregation) on the inputs of ``release_fixtures.py`` with the same scripted
servers (see that module). Here the project's ``data_prep.eval_sets`` and the real ``medix-verl
eval`` CLI run on the same inputs: every rendered sample, every request body the servers receive
(generation, and all three judge rounds) and every score must be the release's.
"""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import release_fixtures as rf

from data_prep.eval_sets import TASKS
from data_prep.eval_sets import main as eval_sets_main
from medix_verl.devkit.fake_judge import FakeJudge
from medix_verl.eval.runner import release_jpeg

GOLDEN = json.loads((Path(__file__).parent / "golden" / "release_eval.json").read_text())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    rf.write_sources(root / "src")
    out = root / "data"
    for task, source in rf.TASK_SOURCE.items():  # the data_prep command line, in this process
        argv = ["--task", task, "--input", str(root / "src" / source), "--output", str(out), "-q"]
        if rf.image_root(task, root / "src") is not None:
            argv += ["--image-root", str(rf.image_root(task, root / "src"))]
        assert eval_sets_main(argv) == 0
        stats = json.loads((out / f"{task}.stats.json").read_text())
        assert stats["rows_out"] == len(GOLDEN["tasks"][task]["samples"]), stats
    return out


def test_the_registry_is_the_releases_task_list():
    assert sorted(TASKS) == sorted(GOLDEN["tasks"]) == sorted(rf.TASK_SOURCE)
    assert {t: (s.hub_id, s.subset if not t.startswith("mmlu_") else None, s.split) for t, s in TASKS.items()} == {
        t: (rf.SOURCES["mmlu" if src.startswith("mmlu_") else src][0],)
        + rf.SOURCES["mmlu" if src.startswith("mmlu_") else src][1:]
        for t, src in rf.TASK_SOURCE.items()
    }


@pytest.mark.parametrize("task", list(GOLDEN["tasks"]))
def test_rendered_samples_and_images_are_the_releases(prepared, task):
    rows = pq.read_table(prepared / f"{task}.parquet").to_pylist()
    golden = GOLDEN["tasks"][task]
    assert [(r["id"], r["question"], r["answer"]) for r in rows] == [
        (s["id"], s["question"], s["answer"]) for s in golden["samples"]
    ]
    for row in rows:
        parts = golden["generation"][row["id"]]["messages"][-1]["content"]
        sent = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for p in parts if p["type"] == "image_url"]
        assert [release_jpeg(im["bytes"]) for im in row["images"]] == sent


@pytest.mark.slow
def test_requests_and_scores_through_the_cli_are_the_releases(prepared, tmp_path):
    received = []

    def server(payload):
        received.append(rf.canonical(payload))
        return rf.reply_for(payload)

    with FakeJudge(chat_policy=server) as both:  # one server for both roles, as the release's localhost:8005
        proc = subprocess.run(
            [sys.executable, "-m", "medix_verl.cli", "eval", "--tasks", "all", "--data-dir", str(prepared),
             "--model-url", both.url, "--model", "policy", "--judge-url", both.url, "--judge-model", "judge",
             "--output", str(tmp_path / "out"), "--max-concurrency", "4", "-q"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = [
        rf.canonical(body)
        for g in GOLDEN["tasks"].values()
        for sid in g["generation"]
        for body in [g["generation"][sid], *g["judge"][sid]]
    ]
    # identical requests (the same question, reference and answer in two subjects) are answered once
    # from the judge client's cache, so compare the distinct bodies
    assert set(received) == set(expected)
    assert len(received) <= len(expected)

    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    for rec in samples:
        golden = GOLDEN["tasks"][rec["task"]]["scores"][rec["id"]]
        rubric = TASKS[rec["task"]].judging == "rubric"
        assert rec["score"] == pytest.approx(golden / 5 if rubric else golden), rec
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for task, g in GOLDEN["tasks"].items():
        assert results["tasks"][task]["accuracy"] == pytest.approx(round(100 * g["accuracy"], 2)), task
    assert results["overall"] == pytest.approx(round(100 * GOLDEN["overall"], 2), abs=0.01)
    assert results["run"]["protocol"] == "release"


@pytest.mark.parametrize(
    ("reply", "rubric", "score"),
    [
        ('<thinking>{"score": 0}</thinking>{"score": 1}', False, 1),  # cut after the think block first
        ('```json\n{\n"score": 1\n}\n```', False, 1),
        ('{"score": "1"}', False, "1"),  # taken as is: the vote will not count it
        ('{"score": 4.5}', True, 4.5),
        ('{"score": 0} then {"score": 1}', False, None),  # first { to last }: not one JSON value
        ('{"verdict": 1}', False, None),  # no score
        ('{"score": "4"}', True, None),  # the release cannot average a string
        ("no verdict at all", False, None),
    ],
)
def test_release_reading_of_judge_replies(reply, rubric, score):
    from medix_verl.eval.protocols import release_score

    assert release_score(reply, rubric) == score


def test_release_vote_counts_like_list_count():
    from medix_verl.eval.protocols import release_vote

    assert release_vote([1, True, 0], False) == 1.0  # True == 1
    assert release_vote([1, "1", 0], False) == 0.0  # "1" != 1
    assert release_vote([1.0, 0, 1], False) == 1.0
    assert release_vote([4, 3.5, True], True) == pytest.approx((4 + 3.5 + 1) / 3 / 5)
