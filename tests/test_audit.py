"""`medix-verl audit` as a user runs it on rollouts on disk: the release preset with a judge that
says YES to everything credits the known judge-fooling answers, and the robust gates in shadow
flag them; legitimate answers are not flagged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medix_verl.devkit.fake_judge import FakeJudge

CORPORA = Path(__file__).parent / "corpora"
pytestmark = pytest.mark.slow  # a subprocess and a loopback server


def corpus(name):
    return [json.loads(line) for line in (CORPORA / f"{name}.jsonl").read_text("utf-8").splitlines()]


def as_rollout(i, row, kind):
    return {
        "id": f"{kind}-{i}",
        "response": f"<X_RAY><thinking>looking at the image</thinking><answer>{row['answer']}</answer>",
        "ground_truth": f"<X_RAY> {row['reference']}",
        "question": row["question"],
    }


def audit(inp, out, url, *extra):
    return subprocess.run(
        [sys.executable, "-m", "medix_verl.cli", "audit", str(inp), "-o", str(out), "--judge-url", url,
         "--judge-model", "gullible", "--embed-url", url, "--embed-model", "fake", *map(str, extra)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip


def test_judge_fooling_answers_are_flagged_and_legitimate_ones_are_not(tmp_path):
    hacks = [r for r in corpus("non_answers") if r["family"] != "unseen"]  # unseen: the embedding check's
    legit = [r for r in corpus("legit_short_answers") if r["family"] in ("legit", "structure")]
    rows = [as_rollout(i, r, "hack") for i, r in enumerate(hacks)] + [
        as_rollout(i, r, "legit") for i, r in enumerate(legit)
    ]
    inp = tmp_path / "rollouts.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeJudge(policy=lambda _prompt: "YES") as judge:
        proc = audit(inp, tmp_path / "audit", judge.url)
        failing = audit(inp, tmp_path / "audit2", judge.url, "--fail-above", "0.2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "audit" / "rows.jsonl").read_text().splitlines())}
    assert list(records) == [r["id"] for r in rows]  # every row, by id, in order
    credited_hacks = [r for k, r in records.items() if k.startswith("hack") and r["credited"]]
    # the release's rules let most through to the judge, which credits them
    assert len(credited_hacks) > 0.7 * len(hacks)  # 361 of 466 (one-character answers are invalid)
    missed = [r["answer"] for r in credited_hacks if not r["shadow"]]
    assert len(missed) <= 0.01 * len(credited_hacks), missed
    flagged_legit = [(r["answer"], r["shadow"]) for k, r in records.items() if k.startswith("legit") and r["shadow"]]
    assert len(flagged_legit) <= 0.01 * len(legit), flagged_legit
    summary = json.loads((tmp_path / "audit" / "audit.json").read_text())
    credited = sum(r["credited"] for r in records.values())
    flagged = sum(1 for r in records.values() if r["credited"] and r["shadow"])
    assert (summary["n"], summary["credited"], summary["flagged_credited"]) == (len(rows), credited, flagged)
    assert summary["rate"] == pytest.approx(flagged / credited)
    assert sum(summary["by_reason"].values()) == flagged and summary["by_reason"]["master_key"] > 0
    assert summary["by_reason"]["hedged"] > 0 and summary["examples"]["hedged"]  # the shotgun lists
    assert "credited by the judge" in proc.stderr and "master_key" in proc.stderr
    # the parts are the release preset's (the reward is not changed by the shadow gates)
    assert all(r["accuracy_llm"] == 1.0 for r in credited_hacks)
    assert failing.returncode == 1 and "--fail-above" in failing.stderr


def test_verl_rollout_dumps_are_read_as_verl_writes_them(tmp_path):
    """trainer.rollout_data_dir: one <step>.jsonl per step with input/output/gts/score/step/uid."""
    dump = tmp_path / "rollouts"
    dump.mkdir()
    for step, answer in ((2, "Let me think step by step"), (10, "Kidney")):
        (dump / f"{step}.jsonl").write_text(
            json.dumps(
                {
                    "input": "system\nYou are a helpful assistant.\nuser\nWhich organ makes urine?\nassistant\n",
                    "output": f"<ULTRASOUND><thinking>t</thinking><answer>{answer}</answer>",
                    "gts": "<ULTRASOUND> Kidney",
                    "score": 0.5,
                    "step": step,
                    "uid": "abc_0_0",
                }
            )
            + "\n"
        )
    with FakeJudge(policy=lambda _prompt: "YES") as judge:
        proc = audit(dump, tmp_path / "out", judge.url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert [(r["id"], r["shadow"]) for r in records] == [("2/abc_0_0", "master_key"), ("10/abc_0_0", None)]


@pytest.mark.parametrize(
    "row, named",
    [
        ({"response": "x", "ground_truth": "<X_RAY> y"}, "['id']"),
        ({"id": 1, "ground_truth": "<X_RAY> y"}, "['response']"),
        ({"id": 1, "response": "x"}, "['ground_truth']"),
    ],
)
def test_a_row_without_id_response_or_ground_truth_is_named(tmp_path, row, named):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": 0, "response": "a", "ground_truth": "<X_RAY> b"}) + "\n" + json.dumps(row) + "\n")
    proc = audit(inp, tmp_path / "out", "http://127.0.0.1:9/v1")
    assert proc.returncode == 2 and f"{inp}:2" in proc.stderr and named in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_unknown_preset_is_refused_before_any_work(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": 0, "response": "a", "ground_truth": "<X_RAY> b"}) + "\n")
    proc = audit(inp, tmp_path / "out", "http://127.0.0.1:9/v1", "--preset", "lenient")
    assert proc.returncode == 2 and "lenient" in proc.stderr and not (tmp_path / "out").exists()


def test_a_judge_that_is_down_exits_3_as_score_does(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        json.dumps({"id": 0, "response": "<X_RAY><thinking>t</thinking><answer>left effusion</answer>",
                    "ground_truth": "<X_RAY> pneumonia"}) + "\n"
    )  # fmt: skip
    with FakeJudge() as embeddings:  # embeddings answer; the judge's port is closed
        proc = subprocess.run(
            [sys.executable, "-m", "medix_verl.cli", "audit", str(inp), "-o", str(tmp_path / "out"),
             "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "j", "--judge-retries", "0",
             "--embed-url", embeddings.url, "--embed-model", "fake"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 3 and "judge failed" in proc.stderr and "127.0.0.1:9" in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "audit.json").exists()
