"""`medix-verl score` as a user runs it: a subprocess, real files, loopback judges that work,
refuse, hang and flake."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from medix_verl.devkit.fake_judge import FakeJudge

pytestmark = pytest.mark.slow  # servers and subprocesses throughout

ROWS = [
    {
        "id": "a",
        "response": "<CT_SCAN><thinking>r</thinking><answer>Pneumothorax</answer>",
        "ground_truth": "<CT_SCAN> Pneumothorax",
    },
    {
        "id": "b",
        "response": "<X_RAY><thinking>r</thinking><answer>large right pleural effusion</answer>",
        "ground_truth": "<X_RAY> right pleural effusion",
        "question": "What is seen?",
    },
    {
        "id": "c",
        "response": "<X_RAY><thinking>r</thinking><answer>fracture of the femur</answer>",
        "ground_truth": "<X_RAY> normal study",
        "data_source": "vqa-rad",
    },
    {"id": "d", "response": "garbled", "ground_truth": "<MRI_SCAN> glioma"},
]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def cli(*args, timeout=180):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "medix_verl.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    proc.elapsed = time.perf_counter() - started
    return proc


def base_args(tmp_path, url, minilm_path, *extra):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    if not inp.exists():
        write_rows(inp, ROWS)
    return [
        "score",
        inp,
        "-o",
        out,
        "--judge-url",
        url,
        "--judge-model",
        "fake",
        "--embed-model",
        minilm_path,
        "--embed-device",
        "cpu",
        "-q",
        *extra,
    ], out


def test_score_writes_rows_in_order_with_summary(tmp_path, minilm_path):
    with FakeJudge() as judge:
        args, out = base_args(tmp_path, judge.url, minilm_path)
        proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == ["a", "b", "c", "d"]
    for g, r in zip(got, ROWS):
        assert {k: g[k] for k in r} == r  # input fields kept
        assert {"score", "format", "modality", "accuracy_llm", "accuracy_embed", "judge_error"} <= set(g)
    assert got[0]["score"] == pytest.approx(1.0)
    assert got[1]["accuracy_llm"] == 1.0 and got[2]["accuracy_llm"] == 0.0
    assert "scored 4 rows" in proc.stderr and "cache_hits=" in proc.stderr and "retries=" in proc.stderr
    assert "means: score=" in proc.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_judge_exits_nonzero_naming_the_url(tmp_path, minilm_path):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    args, out = base_args(tmp_path, url, minilm_path, "--retries", "1")
    proc = cli(*args)
    assert proc.returncode == 3
    assert url in proc.stderr and "unreachable" in proc.stderr
    assert not out.exists()


def test_hanging_judge_exits_nonzero_within_the_timeout(tmp_path, minilm_path):
    with FakeJudge(hang=True) as judge:
        args, out = base_args(tmp_path, judge.url, minilm_path, "--timeout", "1", "--retries", "1")
        proc = cli(*args)
    assert proc.returncode == 3, proc.stderr
    assert judge.url in proc.stderr and "never answered within 1s" in proc.stderr
    assert proc.elapsed < 60


def test_flaky_judge_is_retried_to_success(tmp_path, minilm_path):
    with FakeJudge(fail_first=2, fail_status=503) as judge:
        args, out = base_args(tmp_path, judge.url, minilm_path, "--retries", "3")
        proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(g["judge_error"] for g in got) == 0
    assert "retries=6" in proc.stderr  # 3 rows need the judge, 2 retries each


def test_mostly_failing_judge_passes_the_threshold(tmp_path, minilm_path):
    rows = [
        {
            "id": str(i),
            "response": f"<X_RAY><thinking>r</thinking><answer>finding {i}</answer>",
            "ground_truth": f"<X_RAY> other {i}",
        }
        for i in range(40)
    ]
    write_rows(tmp_path / "in.jsonl", rows)
    with FakeJudge(error_rate=0.7, seed=2) as judge:
        args, out = base_args(tmp_path, judge.url, minilm_path, "--retries", "0", "--max-error-rate", "0.3")
        proc = cli(*args)
    assert proc.returncode == 3
    assert "max_error_rate=0.3" in proc.stderr and judge.url in proc.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"response": "x", "ground_truth": "<X_RAY> a"}\nnot json\n', "in.jsonl:2: not valid JSON"),
        ('{"id": "r1", "response": "x"}\n', "in.jsonl:1: missing required field 'ground_truth' (row id='r1')"),
        ('{"response": 3, "ground_truth": "<X_RAY> a"}\n', "in.jsonl:1: field 'response' must be a string"),
        ("[1, 2]\n", "in.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, content, message):
    (tmp_path / "in.jsonl").write_text(content)
    proc = cli("score", tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--judge-url", "http://127.0.0.1:9/v1", "-q")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_a_line_that_is_not_utf8_is_bad_input_naming_the_line(tmp_path):
    good = json.dumps({"response": "x", "ground_truth": "<X_RAY> a"}).encode()
    (tmp_path / "in.jsonl").write_bytes(good + b"\n" + b'{"response": "caf\xe9", "ground_truth": "<X_RAY> a"}\n')
    proc = cli("score", tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--judge-url", "http://127.0.0.1:9/v1", "-q")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "in.jsonl:2:" in proc.stderr and "UTF-8" in proc.stderr and "Traceback" not in proc.stderr
