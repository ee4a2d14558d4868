"""Evaluation throughput: does `medix-verl eval` keep the policy server and the judge busy?

Two loopback OpenAI servers in another process, each with a fixed service time and a concurrency
cap. Two scenarios, each bound by one server: generation-bound (a slow policy, an instant judge)
and judge-bound (an instant policy, a slow judge: three rounds per sample). For each, the ceiling
is measured in the same run: a bare aiohttp client sends the same number of requests to the same
server at the same concurrency. Printed: the evaluation's requests/s on the bound server (its own
timing, process start-up excluded) as a ratio of that ceiling. Target: >= 0.9x each.

    python benchmarks/eval_throughput.py [--samples 800] [--service-time 0.05] [--capacity 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import sys, time, re
sys.path.insert(0, {root!r})
from medix_verl.devkit.fake_judge import FakeJudge
def reply(payload):
    text = payload["messages"][0]["content"]
    text = text if isinstance(text, str) else text[0]["text"]
    return '{{"score": 1}}' if text.startswith("You are a medical expert") else "A. Alpha"
with FakeJudge(chat_policy=reply, latency={latency}, capacity={capacity}) as server:
    print(server.url, flush=True)
    time.sleep(3600)
"""


def start_server(latency: float, capacity: int | None):
    code = SERVER.format(root=str(ROOT), latency=latency, capacity=capacity)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


async def bare(url: str, n: int, concurrency: int, model: str) -> float:
    import aiohttp

    body = {"model": model, "messages": [{"role": "user", "content": "ceiling"}], "max_tokens": 4}
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one():
            async with sem, session.post(url + "/chat/completions", json=body) as resp:
                await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - started)


def write_task(folder: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from data_prep.eval_sets import SCHEMA

    rows = [
        {"id": f"q{i}", "task": "medqa", "question": f"Case {i}?\n\nChoices:\nA. Alpha\nB. Beta",
         "choices": ["Alpha", "Beta"], "answer": "Alpha", "images": [], "kind": "mcq"}
        for i in range(n)
    ]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), folder / "medqa.parquet")


def run_eval(data: Path, out: Path, policy_url: str, judge_url: str, concurrency: int) -> dict:
    cmd = [sys.executable, "-m", "medix_verl.cli", "eval", "--tasks", "medqa", "--data-dir", str(data),
           "--model-url", policy_url, "--model", "m", "--judge-url", judge_url, "--judge-model", "j",
           "--output", str(out), "--max-concurrency", str(concurrency), "-q"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads((out / "results.json").read_text())["run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=800)
    parser.add_argument("--service-time", type=float, default=0.05)
    parser.add_argument("--capacity", type=int, default=16)
    args = parser.parse_args()
    capacity_rps = args.capacity / args.service_time
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_task(tmp / "data", args.samples)
        slow, slow_url = start_server(args.service_time, args.capacity)
        fast, fast_url = start_server(0.0, None)
        try:
            results = {}
            for name, policy_url, judge_url, per_sample in (
                ("generation", slow_url, fast_url, 1),
                ("judging", fast_url, slow_url, 3),
            ):
                ceiling = asyncio.run(bare(slow_url, per_sample * args.samples, args.capacity, "m"))
                run = run_eval(tmp / "data", tmp / name, policy_url, judge_url, args.capacity)
                achieved = per_sample * args.samples / run["seconds"]
                results[name] = (achieved, ceiling)
                print(
                    f"{name}-bound: {per_sample * args.samples} requests to a {args.capacity}-slot, "
                    f"{args.service_time * 1000:.0f} ms server (capacity {capacity_rps:.0f} req/s): "
                    f"eval {achieved:.0f} req/s, bare aiohttp client {ceiling:.0f} req/s"
                )
                print(f"RATIO {name} eval / bare client: {achieved / ceiling:.2f}x (target >= 0.9x)")
        finally:
            slow.kill()
            fast.kill()


if __name__ == "__main__":
    main()
