"""`medix-verl eval` end to end against loopback policy and judge servers."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures_data import rgb_jpeg
from PIL import Image

from data_prep.eval_sets import SCHEMA
from medix_verl.devkit.fake_judge import FakeJudge

pytestmark = pytest.mark.slow  # servers and subprocesses throughout

TASK_ROWS = {
    "mmlu_anatomy": [
        {
            "id": "a1",
            "question": "Which bone?\n\nChoices:\nA. Femur\nB. Ulna",
            "choices": ["Femur", "Ulna"],
            "answer": "Ulna",
            "images": [],
            "kind": "mcq",
        },
        {
            "id": "a2",
            "question": "Which muscle?\n\nChoices:\nA. Deltoid\nB. Biceps",
            "choices": ["Deltoid", "Biceps"],
            "answer": "Deltoid",
            "images": [],
            "kind": "mcq",
        },
        {
            "id": "a3",
            "question": "UNDECIDABLE question",
            "choices": ["x", "y"],
            "answer": "x",
            "images": [],
            "kind": "mcq",
        },
    ],
    "rad_vqa": [
        {
            "id": "v1",
            "question": "Is there a fracture?",
            "choices": None,
            "answer": "yes",
            "images": [{"bytes": rgb_jpeg()}],
            "kind": "yes_no",
        },
        {
            "id": "v2",
            "question": "Which organ?",
            "choices": None,
            "answer": "liver",
            "images": [{"bytes": rgb_jpeg(seed=3)}],
            "kind": "open",
        },
    ],
    "mimic_cxr_report_summarization": [
        {
            "id": "m1",
            "question": "Summarize: no consolidation.",
            "choices": None,
            "answer": "No acute process.",
            "images": [],
            "kind": "report",
        },
    ],
}
ANSWERS = {
    "Which bone?": "<think>the ulna is in the forearm</think> B. Ulna",
    "Which muscle?": "Biceps",
    "Is there a fracture?": "<thinking>cortex broken</thinking>yes",
    "Which organ?": "the spleen",
    "Summarize": "No acute findings.",
    "UNDECIDABLE": "x",
}


def write_tasks(data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    for task, rows in TASK_ROWS.items():
        pq.write_table(
            pa.Table.from_pylist([dict(r, task=task) for r in rows], schema=SCHEMA), data_dir / f"{task}.parquet"
        )


def text_of(content):
    return (
        content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p.get("type") == "text")
    )


def policy(payload):
    content = payload["messages"][-1]["content"]
    text = text_of(content)
    if payload.get("temperature") != 0.0 or payload.get("max_tokens") != 2048:
        return "wrong sampling parameters"
    for key, answer in ANSWERS.items():
        if text.startswith(key) or key in text:
            if key in ("Is there a fracture?", "Which organ?"):
                assert isinstance(content, list) and content[0]["type"] == "image_url"
                assert content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
            return answer
    return "?"


JUDGE_LOG = []


def judge_policy(payload):
    messages = payload["messages"]
    JUDGE_LOG.append(len(messages))
    first = text_of(messages[0]["content"])
    if "UNDECIDABLE" in first:
        return "I cannot decide."
    if "between 0 and 5" in first or "from 0 to 5" in first:
        return '{"score": 4}'
    ref = re.search(r"Correct Answer:\n(.*?)\n\nPredicted Answer:\n(.*?)\n\nScore 1", first, re.S) or re.search(
        r"Reference answer:\n(.*?)\n\nModel answer:\n(.*?)\n\n", first, re.S
    )  # the release's prompt, or the medix protocol's
    reference, prediction = ref.group(1).strip().lower(), ref.group(2).strip().lower()
    if len(messages) == 3 and "deltoid" in reference:  # flips once on re-evaluation: majority decides
        return '{"score": 1}'
    return f'{{"score": {1 if reference in prediction else 0}}}'


def eval_cmd(data_dir, out, model_url, judge_url, *extra):
    return [
        sys.executable,
        "-m",
        "medix_verl.cli",
        "eval",
        "--tasks",
        "all",
        "--data-dir",
        str(data_dir),
        "--model-url",
        model_url,
        "--model",
        "policy",
        "--judge-url",
        judge_url,
        "--judge-model",
        "judge",
        "--output",
        str(out),
        "-q",
        *extra,
    ]


def test_eval_end_to_end(tmp_path):
    write_tasks(tmp_path / "data")
    JUDGE_LOG.clear()
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        proc = subprocess.run(
            # a3 stays unreadable: one failed sample of six, accepted here
            eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url, "--max-failure-rate", "0.2"),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    t = res["tasks"]
    assert set(t) == set(TASK_ROWS)
    # a1 correct (prediction cut after </think>), a2 wrong (majority 0 of 0/1/0), a3 unparseable -> failure
    assert t["mmlu_anatomy"] == {
        "n": 3,
        "scored": 2,
        "accuracy": 50.0,
        "ci95": [9.45, 90.55],  # Wilson, 1 of 2
        "judge_failures": 1,
        "generation_failures": 0,
        "rounds_disagree": 0.5,  # a2's judge said 0, 1, 0
        "flipped": 0.0,  # ... and ended where it started
        "judge_option_agreement": 1.0,  # a1 "B. Ulna" is the right option and was judged right
    }
    assert t["rad_vqa"]["accuracy"] == 50.0
    assert t["mimic_cxr_report_summarization"]["accuracy"] == 80.0  # rubric 4,4,4 -> 4/5
    assert res["overall"] == pytest.approx(round((50 + 50 + 80) / 3, 2))
    assert res["run"]["unparseable_verdicts"] == 3  # a3: 1 try + 2 re-asks
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    a1 = next(s for s in samples if s["id"] == "a1")
    assert a1["prediction"] == "B. Ulna" and a1["rounds"] == [1, 1, 1] and a1["score"] == 1.0
    a2 = next(s for s in samples if s["id"] == "a2")
    assert a2["rounds"] == [0, 1, 0] and a2["score"] == 0.0
    assert set(JUDGE_LOG) == {1, 3, 5}  # three rounds in one conversation
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| mmlu_anatomy | 3 | 50.00 | [9.45, 90.55] | 50.0% | 0.0% | 100.0% | 1 | 0 |" in md and "**60.00**" in md
    assert res["overall_ci95"][0] < 60.0 < res["overall_ci95"][1]
    assert res["run"]["judge_calls"] >= 15 and res["run"]["judge_tokens"]["prompt"] > 0
    png = Image.open(tmp_path / "out" / "results.png")
    assert png.format == "PNG" and png.size[0] > 600 and png.size[1] > 400
    # side by side, with a second run that differs
    other = tmp_path / "other"
    other.mkdir()
    res["tasks"]["rad_vqa"]["accuracy"] = 100.0
    res["overall"] = 76.67
    (other / "results.json").write_text(json.dumps(res))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medix_verl.cli",
            "eval-compare",
            str(tmp_path / "out"),
            str(other),
            "-o",
            str(tmp_path / "cmp"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| task | out | other |" in proc.stdout
    assert "| rad_vqa | 50.00 | 100.00 |" in proc.stdout and "| overall | 60.00 | 76.67 |" in proc.stdout
    assert Image.open(tmp_path / "cmp" / "compare.png").format == "PNG"


def test_resume_after_kill_9(tmp_path):
    many = [
        {
            "id": f"q{i}",
            "question": f"Which muscle? number {i}\n\nChoices:\nA. Deltoid\nB. Biceps",
            "choices": ["Deltoid", "Biceps"],
            "answer": "Deltoid",
            "images": [],
            "kind": "mcq",
        }
        for i in range(12)
    ]
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.Table.from_pylist([dict(r, task="medqa") for r in many], schema=SCHEMA), data / "medqa.parquet")
    out = tmp_path / "out"
    log = out / "samples.jsonl"
    with FakeJudge(chat_policy=policy, latency=0.4, capacity=1) as model, FakeJudge(chat_policy=judge_policy) as judge:
        cmd = eval_cmd(data, out, model.url, judge.url, "--max-concurrency", "1")
        cmd[cmd.index("all")] = "medqa"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        done_before = len(log.read_text().splitlines())
        assert 3 <= done_before < 12
        served_before = model.received
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        new_requests = model.received - served_before
    ids = [json.loads(line)["id"] for line in log.read_text().splitlines()]
    assert sorted(ids) == sorted(f"q{i}" for i in range(12)) and len(ids) == len(set(ids)) == 12
    assert new_requests == 12 - done_before
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["resumed_samples"] == done_before and res["tasks"]["medqa"]["scored"] == 12


def test_missing_task_file_is_explained(tmp_path):
    (tmp_path / "data").mkdir()
    proc = subprocess.run(
        eval_cmd(tmp_path / "data", tmp_path / "out", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")[:-1] + ["-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "none of the all tasks' parquet files exist" in proc.stderr


def test_eval_recipe_with_running_servers(tmp_path):
    """recipes/eval_medix_r1.sh, with MODEL_URL/JUDGE_URL pointing at running (loopback) servers."""
    from pathlib import Path

    write_tasks(tmp_path / "data")
    root = Path(__file__).resolve().parent.parent
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        env = dict(
            os.environ,
            MODEL="org/some-model",
            MODEL_URL=model.url,
            JUDGE_URL=judge.url,
            DATA_DIR=str(tmp_path / "data"),
            OUT=str(tmp_path / "out"),
            TASKS="mmlu_anatomy,rad_vqa",
            PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
        )
        proc = subprocess.run(
            ["bash", str(root / "recipes" / "eval_medix_r1.sh"), "-q", "--max-failure-rate", "0.5"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["tasks"]) == {"mmlu_anatomy", "rad_vqa"} and res["run"]["model"] == "some-model"


def test_medix_protocol_is_opt_in(tmp_path):
    write_tasks(tmp_path / "data")
    seen = []

    def judge(payload):
        seen.append(payload)
        return judge_policy(payload)

    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge) as judge_server:
        proc = subprocess.run(
            eval_cmd(
                tmp_path / "data",
                tmp_path / "out",
                model.url,
                judge_server.url,
                "--protocol",
                "medix",
                "--max-failure-rate",
                "0.2",
            ),  # fmt: skip
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["run"]["protocol"] == "medix" and res["tasks"]["mimic_cxr_report_summarization"]["accuracy"] == 80.0
    assert all(p["chat_template_kwargs"] == {"enable_thinking": False} and p["max_tokens"] == 256 for p in seen)
    assert all(isinstance(p["messages"][0]["content"], str) for p in seen)
    assert not any(p["messages"][0]["content"].endswith(" /no_think") for p in seen)


def run_cli(cmd, timeout=300):
    """A ``medix-verl`` command as a user runs it (a subprocess), its output captured."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def samples_of(folder):
    """An eval run's ``samples.jsonl`` by (task, id)."""
    lines = (folder / "samples.jsonl").read_text().splitlines()
    return {(s["task"], s["id"]): s for s in map(json.loads, lines)}


def test_an_empty_answer_is_judged_not_a_generation_failure(tmp_path):
    """A policy reply of HTTP 200 with empty content is an answer (the release judges "" and
    scores it); leaving it out would raise the accuracy of a model that says nothing. Transport
    errors stay failures."""
    write_tasks(tmp_path / "data")

    def silent_on_organs(payload):
        return "" if "Which organ?" in text_of(payload["messages"][-1]["content"]) else policy(payload)

    with FakeJudge(chat_policy=silent_on_organs) as model, FakeJudge(chat_policy=judge_policy) as judge:
        proc = run_cli(eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url, "--tasks", "rad_vqa"))
    assert proc.returncode == 0, proc.stderr
    samples = {key[1]: s for key, s in samples_of(tmp_path / "out").items()}
    v2 = samples["v2"]
    assert v2["raw_output"] == "" and v2["prediction"] == "" and v2["score"] == 0.0 and not v2.get("failure")
    t = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["rad_vqa"]
    assert t["scored"] == 2 and t["generation_failures"] == 0 and t["accuracy"] == 50.0


def rejudge_cmd(data_dir, out, run, judge_url, *extra):
    cmd = eval_cmd(data_dir, out, "unused", judge_url, "--reuse-generations", str(run), *extra)
    i = cmd.index("--model-url")
    return cmd[:i] + cmd[i + 4 :]  # neither --model-url nor --model: that run's model, no policy server


def test_reuse_generations_judges_again_without_generating(tmp_path):
    """Generate once, judge many: a re-judge sends nothing to the policy server and, with the
    same judge, ends with the full run's verdicts; its run.json names the source run."""
    write_tasks(tmp_path / "data")
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        full = run_cli(
            eval_cmd(tmp_path / "data", tmp_path / "full", model.url, judge.url, "--max-failure-rate", "0.5")
        )
        assert full.returncode == 0, full.stderr
        sent = model.received
        again = run_cli(
            rejudge_cmd(
                tmp_path / "data", tmp_path / "rejudge", tmp_path / "full", judge.url, "--max-failure-rate", "0.5"
            )
        )
        assert again.returncode == 0, again.stderr
        assert model.received == sent  # not one generation request
    a, b = samples_of(tmp_path / "full"), samples_of(tmp_path / "rejudge")
    assert a.keys() == b.keys()
    for key in a:
        assert b[key]["raw_output"] == a[key]["raw_output"] and b[key]["score"] == a[key]["score"], key
    run = json.loads((tmp_path / "rejudge" / "run.json").read_text())
    assert run["settings"]["generations_from"] == str((tmp_path / "full").resolve())
    res = json.loads((tmp_path / "rejudge" / "results.json").read_text())
    assert res["run"]["reused_generations"]["reused"] == len(a) and res["run"]["generation_requests"] == 0
    # and compared with eval-compare: the same answers, the same judge: full agreement
    cmp = run_cli(
        [sys.executable, "-m", "medix_verl.cli", "eval-compare", str(tmp_path / "full"), str(tmp_path / "rejudge"),
         "-o", str(tmp_path / "cmp")], timeout=120,
    )  # fmt: skip
    assert cmp.returncode == 0, cmp.stderr
    agreement = json.loads((tmp_path / "cmp" / "compare.json").read_text())["tasks"]["rad_vqa"]["judge_agreement"]
    assert agreement["agreement"] == 1.0 and agreement["n"] == 2


def test_reuse_generations_of_other_data_or_of_no_run_is_refused(tmp_path):
    write_tasks(tmp_path / "data")
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        full = run_cli(eval_cmd(tmp_path / "data", tmp_path / "full", model.url, judge.url, "--tasks", "rad_vqa"))
        assert full.returncode == 0, full.stderr
        # another task set
        other_tasks = run_cli(
            rejudge_cmd(tmp_path / "data", tmp_path / "r1", tmp_path / "full", judge.url, "--tasks", "mmlu_anatomy")
        )
        # the data changed since
        TASK_ROWS["rad_vqa"][1]["answer"] = "kidney"
        try:
            write_tasks(tmp_path / "data2")
        finally:
            TASK_ROWS["rad_vqa"][1]["answer"] = "liver"
        changed = run_cli(
            rejudge_cmd(tmp_path / "data2", tmp_path / "r2", tmp_path / "full", judge.url, "--tasks", "rad_vqa")
        )
        not_a_run = run_cli(
            rejudge_cmd(tmp_path / "data", tmp_path / "r3", tmp_path / "data", judge.url, "--tasks", "rad_vqa")
        )
    assert other_tasks.returncode == 6 and "task mmlu_anatomy: not in that run" in other_tasks.stderr
    assert changed.returncode == 6 and "task data rad_vqa" in changed.stderr
    assert not_a_run.returncode == 6 and "not an evaluation run" in not_a_run.stderr
    assert not (tmp_path / "r2" / "samples.jsonl").exists()


def _checkpoint(root, step):
    model = root / f"global_step_{step}" / "actor" / "huggingface_merged"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    return model


@pytest.mark.slow
def test_eval_series_over_two_checkpoints(tmp_path):
    """Each checkpoint served by the user's command, evaluated with one judge into step_N/; the
    series shows the open question learned at step 4; run again, nothing is served again."""
    write_tasks(tmp_path / "data")
    for step in (2, 4):
        _checkpoint(tmp_path / "ckpt", step)
    (tmp_path / "ckpt" / "global_step_4" / "actor" / "extra").mkdir()  # other files: ignored
    serve = f"{sys.executable} {Path(__file__).parent / 'fake_checkpoint_server.py'} {{model}} {{port}}"

    def series():
        return run_cli(
            [sys.executable, "-m", "medix_verl.cli", "eval-series", "--checkpoints", str(tmp_path / "ckpt"),
             "--serve", serve, "--output", str(tmp_path / "series"), "--data-dir", str(tmp_path / "data"),
             "--tasks", "rad_vqa", "--judge-url", judge.url, "--judge-model", "judge", "--ready-timeout", "60"],
            timeout=600,
        )  # fmt: skip

    with FakeJudge(chat_policy=judge_policy) as judge:
        first = series()
        calls = judge.received
        again = series()
    assert first.returncode == 0, first.stderr
    out = json.loads((tmp_path / "series" / "series.json").read_text())
    assert out["steps"] == [2, 4]
    assert [(p["step"], p["accuracy"], p["n"]) for p in out["tasks"]["rad_vqa"]] == [(2, 50.0, 2), (4, 100.0, 2)]
    assert all(p["ci95"] for p in out["tasks"]["rad_vqa"])
    assert (tmp_path / "series" / "step_2" / "results.json").exists()
    assert Image.open(tmp_path / "series" / "series.png").format == "PNG"
    # resumable: both steps finished, neither is served or judged again
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("done earlier") == 2 and judge.received == calls


def test_eval_series_names_an_unmerged_checkpoint_and_takes_every_kth(tmp_path):
    from medix_verl.eval.series import SeriesError, find_checkpoints

    for step in (2, 4, 6):
        _checkpoint(tmp_path, step)
    assert [s for s, _ in find_checkpoints(tmp_path, every=2)] == [2, 6]
    (tmp_path / "global_step_8" / "actor").mkdir(parents=True)  # FSDP shards only, not merged
    with pytest.raises(SeriesError, match="global_step_8.*merge_checkpoint"):
        find_checkpoints(tmp_path)


def test_reuse_generations_reports_missing_answers_and_generates_them_only_when_asked(tmp_path):
    """An answer that failed in RUN: without --model-url it is a counted generation failure (not
    judged, nothing sent); with --model-url only that one is generated."""
    write_tasks(tmp_path / "data")

    def no_organ(payload):  # the open rad_vqa question fails in the first run
        if "Which organ?" in text_of(payload["messages"][-1]["content"]):
            raise RuntimeError("boom")
        return policy(payload)

    with FakeJudge(chat_policy=judge_policy) as judge:
        with FakeJudge(chat_policy=no_organ) as flaky:
            first = run_cli(eval_cmd(tmp_path / "data", tmp_path / "full", flaky.url, judge.url, "--tasks", "rad_vqa"))
        assert first.returncode == 5, first.stderr  # one of two failed
        alone = run_cli(
            rejudge_cmd(tmp_path / "data", tmp_path / "r1", tmp_path / "full", judge.url, "--tasks", "rad_vqa")
        )
        with FakeJudge(chat_policy=policy) as model:
            filled = run_cli(
                rejudge_cmd(tmp_path / "data", tmp_path / "r2", tmp_path / "full", judge.url, "--tasks", "rad_vqa",
                            "--model-url", model.url)
            )  # fmt: skip
            generated = model.received
    assert alone.returncode == 5 and "no answer in" in (tmp_path / "r1" / "samples.jsonl").read_text()
    reuse = json.loads((tmp_path / "r1" / "results.json").read_text())["run"]["reused_generations"]
    assert (reuse["reused"], reuse["missing"], reuse["generated"]) == (1, 1, 0)
    assert filled.returncode == 0, filled.stderr
    reuse = json.loads((tmp_path / "r2" / "results.json").read_text())["run"]["reused_generations"]
    assert (reuse["reused"], reuse["generated"]) == (1, 1) and generated == 1


#: what only the test extra installs (setup.py, extras_require["test"]): a GPU install has none
TEST_EXTRA_MODULES = ("pytest", "_pytest", "hypothesis", "tiktoken", "gguf", "ruff")
WITHOUT_TEST_EXTRA = f"""
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TEST_EXTRA_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (the test extra is not installed)")
sys.meta_path.insert(0, NotInstalled())
"""


def without_test_extra(module, *args):
    """``python -m module args`` as on an install without the test extra."""
    code = WITHOUT_TEST_EXTRA + f"import runpy; sys.argv = ['{module}', *{list(args)!r}]\n"
    code += f"runpy.run_module('{module}', run_name='__main__', alter_sys=True)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_eval_compare_score_and_the_task_list_run_without_the_test_extra(tmp_path, minilm_path):
    """The README's install line without the test extra: eval (with its PNG), eval-compare,
    score and the task list import nothing the test extra alone installs."""
    write_tasks(tmp_path / "data")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "r1", "response": "<X_RAY><thinking>t</thinking><answer>effusion</answer>",
                                "ground_truth": "<X_RAY> effusion"}) + "\n")  # fmt: skip
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        for out in ("a", "b"):
            cmd = eval_cmd(tmp_path / "data", tmp_path / out, model.url, judge.url, "--max-failure-rate", "0.2")
            proc = without_test_extra("medix_verl.cli", *cmd[3:])
            assert proc.returncode == 0, proc.stderr[-3000:]
        assert (tmp_path / "a" / "results.png").stat().st_size > 0
        proc = without_test_extra("medix_verl.cli", "eval-compare", str(tmp_path / "a"), str(tmp_path / "b"),
                                  "-o", str(tmp_path / "cmp"))  # fmt: skip
        assert proc.returncode == 0 and (tmp_path / "cmp" / "compare.png").exists(), proc.stderr[-3000:]
        proc = without_test_extra("medix_verl.cli", "score", str(rows), "-o", str(tmp_path / "scored.jsonl"),
                                  "--judge-url", judge.url, "--embed-model", minilm_path, "-q")  # fmt: skip
        assert proc.returncode == 0 and (tmp_path / "scored.jsonl").read_text().count("\n") == 1, proc.stderr[-3000:]
    proc = without_test_extra("data_prep.eval_sets", "--list")
    assert proc.returncode == 0 and "rad_vqa" in proc.stdout, proc.stderr[-3000:]
    # the blocker blocks: a command that needs pytest fails
    assert without_test_extra("pytest", "--version").returncode != 0
