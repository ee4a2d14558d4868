"""Evaluation runs are exactly once, resumable and never mixed: folder lock, run fingerprint,
retried failures, a failure threshold, a log that loses nothing valid, and a soak test under
faults and kill -9."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_evaluate import eval_cmd, judge_policy, policy, write_tasks

from data_prep.eval_sets import SCHEMA
from medix_verl.devkit.fake_judge import FakeJudge
from medix_verl.eval.runstate import FolderLock, RunStateError, SampleLog


def run(cmd, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- 1. one run per folder
@pytest.mark.slow
def test_a_second_eval_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    write_tasks(tmp_path / "data")
    with FolderLock(tmp_path / "out"):  # another eval holds the folder
        with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
            proc = run(eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url))
    assert proc.returncode == 6, proc.stderr
    assert f"in use by another medix-verl eval (pid {os.getpid()} on " in proc.stderr
    assert not (tmp_path / "out" / "samples.jsonl").exists()


@pytest.mark.slow
def test_the_lock_dies_with_its_holder(tmp_path):
    code = f"from medix_verl.eval.runstate import FolderLock; held = FolderLock({str(tmp_path)!r}); held.__enter__(); import time; time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 60
        while not (tmp_path / ".medix-eval.holder.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        with pytest.raises(RunStateError, match=f"pid {holder.pid}"):
            FolderLock(tmp_path).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    with FolderLock(tmp_path):  # free again once the holder is gone, whatever killed it
        pass


# ----------------------------------------------------------------------------- 2. never mixed
@pytest.mark.slow
def test_a_resume_with_other_settings_or_data_is_refused_unless_force_new(tmp_path):
    write_tasks(tmp_path / "data")
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        first = run(eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url, "--max-failure-rate", "1"))
        assert first.returncode == 0, first.stderr
        other_model = eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url, "--max-failure-rate", "1")
        other_model[other_model.index("policy")] = "another-policy"
        proc = run(other_model)
        assert proc.returncode == 6 and "model: recorded 'policy', now 'another-policy'" in proc.stderr
        proc = run(eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url, "--protocol", "medix"))
        assert proc.returncode == 6 and "protocol: recorded 'release', now 'medix'" in proc.stderr
        # the task data changed under the same name
        table = pq.read_table(tmp_path / "data" / "rad_vqa.parquet").to_pylist()
        table[0]["answer"] = "no"
        pq.write_table(pa.Table.from_pylist(table, schema=SCHEMA), tmp_path / "data" / "rad_vqa.parquet")
        proc = run(eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url, "--max-failure-rate", "1"))
        assert proc.returncode == 6 and "task data rad_vqa: recorded sha256" in proc.stderr
        before = (tmp_path / "out" / "samples.jsonl").read_text()
        proc = run(other_model + ["--force-new"])
        assert proc.returncode == 0, proc.stderr
    aside = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and (aside[0] / "samples.jsonl").read_text() == before
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["run"]["model"] == "another-policy" and res["run"]["resumed_samples"] == 0


# ----------------------------------------------------------------------------- 3. failures are retried
@pytest.mark.slow
def test_failures_are_retried_on_resume_and_too_many_fail_the_run(tmp_path):
    write_tasks(tmp_path / "data")
    with FakeJudge(chat_policy=policy) as model, FakeJudge(status=503) as broken_judge:
        proc = run(eval_cmd(tmp_path / "data", tmp_path / "out", model.url, broken_judge.url))
    # every judge call failing is a failed run, never an exit 0
    assert proc.returncode in (3, 5), proc.stderr
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy, fail_first=1) as judge:
        proc = run(eval_cmd(tmp_path / "data", tmp_path / "out2", model.url, judge.url, "--max-failure-rate", "0"))
        # a3's verdict is never readable: one failed sample of six is over a threshold of 0
        assert proc.returncode == 5 and "1 of 6 samples failed (0 in generation, 1 in judging)" in proc.stderr
        res = json.loads((tmp_path / "out2" / "results.json").read_text())
        assert res["tasks"]["mmlu_anatomy"]["judge_failures"] == 1
        served = judge.received
        proc = run(eval_cmd(tmp_path / "data", tmp_path / "out2", model.url, judge.url, "--max-failure-rate", "0.2"))
        assert proc.returncode == 0, proc.stderr
        assert judge.received > served  # the failed sample was asked again
    res = json.loads((tmp_path / "out2" / "results.json").read_text())
    assert res["run"]["retried_failures"] == 1 and res["run"]["new_samples"] == 1


@pytest.mark.slow
def test_a_judge_that_always_fails_exits_non_zero(tmp_path):
    write_tasks(tmp_path / "data")
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=lambda payload: "no verdict") as judge:
        proc = run(eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url))
    assert proc.returncode == 5 and "6 of 6 samples failed" in proc.stderr


# ----------------------------------------------------------------------------- 4. the log loses nothing valid
def _rec(i, score=1.0):
    return {"task": "medqa", "id": f"q{i}", "score": score, "prediction": "x", "rounds": [1, 1, 1], "failure": None}


def test_a_bad_line_in_the_middle_is_skipped_and_nothing_valid_is_lost(tmp_path):
    path = tmp_path / "samples.jsonl"
    lines = [json.dumps(_rec(0)), "{not json", json.dumps(_rec(1)), json.dumps(_rec(2))]
    path.write_text("\n".join(lines) + "\n")
    log = SampleLog(path)
    assert set(log.done) == {("medqa", "q0", ""), ("medqa", "q1", ""), ("medqa", "q2", "")}
    assert log.skipped_lines == [2]
    assert path.read_text().count("\n") == 4  # nothing was cut
    log.close()


def test_only_a_torn_last_line_is_cut(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(_rec(0)) + "\n" + json.dumps(_rec(1)) + "\n" + json.dumps(_rec(2))[:25])
    log = SampleLog(path)
    assert set(log.done) == {("medqa", "q0", ""), ("medqa", "q1", "")} and log.skipped_lines == []
    log.append(_rec(2))
    log.close()
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["q0", "q1", "q2"]
    # a whole last record that lost only its newline is kept
    path.write_text(json.dumps(_rec(0)) + "\n" + json.dumps(_rec(1)))
    log = SampleLog(path)
    log.append(_rec(2))
    log.close()
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["q0", "q1", "q2"]


# ----------------------------------------------------------------------------- soak
SOAK_N = 240


def _soak_data(folder):
    rows = []
    for i in range(SOAK_N):
        right = ["Deltoid", "Biceps"][i % 2]
        rows.append(
            {
                "id": f"s{i}",
                "task": "medqa" if i % 3 else "medmcqa",
                "question": f"Which muscle? case {i}\n\nChoices:\nA. Deltoid\nB. Biceps",
                "choices": ["Deltoid", "Biceps"],
                "answer": right,
                "images": [],
                "kind": "mcq",
            }
        )
    folder.mkdir(parents=True)
    for task in ("medqa", "medmcqa"):
        part = [r for r in rows if r["task"] == task]
        pq.write_table(pa.Table.from_pylist(part, schema=SCHEMA), folder / f"{task}.parquet")


def _soak_cmd(data, out, model, judge):
    cmd = eval_cmd(data, out, model.url, judge.url, "--max-concurrency", "8", "--timeout", "2", "--judge-timeout", "2")
    cmd[cmd.index("all")] = "medqa,medmcqa"
    return cmd


@pytest.mark.slow
def test_soak_kill_9_and_faulty_servers_end_exactly_once_with_the_undisturbed_accuracy(tmp_path):
    _soak_data(tmp_path / "data")
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        calm = run(_soak_cmd(tmp_path / "data", tmp_path / "calm", model, judge))
    assert calm.returncode == 0, calm.stderr
    expected = json.loads((tmp_path / "calm" / "results.json").read_text())["tasks"]

    rng = random.Random(7)
    out = tmp_path / "chaos"
    log = out / "samples.jsonl"
    faults = dict(latency=0.01, error_rate=0.08, reset_rate=0.05, stall_rate=0.03, stall_s=3.0, capacity=8)
    with (
        FakeJudge(chat_policy=policy, seed=1, **faults) as model,
        FakeJudge(chat_policy=judge_policy, seed=2, **faults) as judge,
    ):
        cmd = _soak_cmd(tmp_path / "data", out, model, judge)
        kills = 0
        for _ in range(4):  # killed at random points
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(rng.uniform(1.5, 4.0))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
        assert kills >= 2
        for _attempt in range(6):  # then resumed until no failure is left
            final = run(cmd + ["--max-failure-rate", "0"], timeout=600)
            if final.returncode == 0:
                break
            assert final.returncode == 5, final.stderr  # failures left to retry, never another error
        assert final.returncode == 0, final.stderr
    ids = [(r["task"], r["id"]) for r in map(json.loads, log.read_text().splitlines())]
    assert len(ids) == len(set(ids)) == SOAK_N  # every sample exactly once
    got = json.loads((out / "results.json").read_text())["tasks"]
    assert {t: (v["scored"], v["accuracy"]) for t, v in got.items()} == {
        t: (v["scored"], v["accuracy"]) for t, v in expected.items()
    }
