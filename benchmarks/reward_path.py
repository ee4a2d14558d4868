"""The reward stage on the path users run, against its ceiling measured in the same run.

A step's worth of GRPO rollouts (512 prompts x 5) is scored with the `release` preset against one
loopback judge in another process (fixed service time, a concurrency cap: capacity = cap /
service time) whose `/v1/embeddings` answers instantly, so the judge is the only limit. The
ceiling: a bare aiohttp client sending the same number of requests at the same concurrency to the
same server. Printed, each as a ratio of that ceiling (target >= 0.9x):

* the scorer (`MedixScorer.score_many`, in this process);
* `medix-verl score` (the CLI, its own timing: process start-up excluded);
* verl's reward loop: `RewardLoopWorker.compute_score_batch` (the `medix` manager's batch path,
  `run_batch`), in this process;
* the hack alarm's cost: the reward loop with the robust gates in shadow against the same loop
  without them, under a judge that says YES to everything (every judged answer is gated);
* 1, 2 and 4 reward workers (processes) sharing one concurrency budget (per-worker
  `judge_max_concurrency` = budget / workers): their combined requests/s.

    python benchmarks/reward_path.py [--service-time 0.05] [--capacity 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reward_throughput import make_rollouts, start_server  # noqa: E402


async def bare(url: str, bodies: list[bytes], concurrency: int) -> float:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), headers=headers) as session:

        async def one(body):
            async with sem, session.post(url + "/chat/completions", data=body) as resp:
                await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return len(bodies) / (time.perf_counter() - started)


EMBED_URL = None  # a second loopback server answers /v1/embeddings, so the judge server serves the judge only


def settings_kwargs(url: str, concurrency: int) -> dict:
    return {
        "judge_url": url,
        "judge_model": "bench",
        "embed_url": EMBED_URL,
        "embed_model": "fake",
        "judge_max_concurrency": concurrency,
        "judge_timeout": 60,
    }


def scorer_rate(url: str, rows: list[dict], concurrency: int) -> tuple[float, int, list[bytes]]:
    from medix_verl.reward.scorer import MedixScorer
    from medix_verl.reward.settings import RewardSettings

    scorer = MedixScorer(RewardSettings(**settings_kwargs(url, concurrency)))
    sent: list[bytes] = []
    original = scorer.judge._key

    def recording_key(messages, params):
        key, body = original(messages, params)
        sent.append(body)
        return key, body

    scorer.judge._key = recording_key

    async def go():
        started = time.perf_counter()
        try:
            await scorer.score_many(rows)
        finally:
            await scorer.aclose()
        return time.perf_counter() - started

    elapsed = asyncio.run(go())
    requests = scorer.judge.stats.requests
    unique = list(dict.fromkeys(sent))[:requests]
    return requests / elapsed, requests, unique


def cli_rate(url: str, rows: list[dict], concurrency: int, tmp: Path) -> float:
    src = tmp / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [f"--{k.replace('_', '-')}={v}" for k, v in settings_kwargs(url, concurrency).items()]
    proc = subprocess.run(
        [sys.executable, "-m", "medix_verl.cli", "score", str(src), "-o", str(tmp / "out.jsonl"), "-q", *args],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    seconds = float(re.search(r"scored \d+ rows in ([\d.]+)s", proc.stderr).group(1))
    requests = int(re.search(r"requests=(\d+)", proc.stderr).group(1))
    return requests / seconds


def reward_loop_rate(url: str, rows: list[dict], concurrency: int, tmp: Path) -> float:
    from helpers import compose_verl_config, make_dataproto
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from medix_verl.devkit.tiny import build_qwen_tokenizer

    tok = build_qwen_tokenizer(tmp / "tok")
    kw = "reward.custom_reward_function.reward_kwargs"
    overrides = [
        f"actor_rollout_ref.model.path={tmp / 'tok'}",
        "reward.custom_reward_function.path=pkg://medix_verl.integration.reward_fn",
        "reward.custom_reward_function.name=compute_score",
        "reward.reward_manager.name=medix",
        *(f"+{kw}.{k}={v}" for k, v in settings_kwargs(url, concurrency).items()),
    ]
    from medix_verl.reward import scorer as scorer_module

    scorer_module._SCORERS.clear()  # a new scorer each time: cold caches, new connections
    worker = RewardLoopWorker(compose_verl_config(overrides))
    data = make_dataproto(tok, rows, response_len=64)
    from medix_verl.reward.scorer import _SCORERS

    scorer = next(iter(_SCORERS.values()))  # the one the medix manager built
    before = scorer.judge.stats.requests
    started = time.perf_counter()
    worker.loop.run_until_complete(worker.compute_score_batch(data))
    elapsed = time.perf_counter() - started
    rate = (scorer.judge.stats.requests - before) / elapsed
    worker.loop.run_until_complete(scorer.aclose())  # the next run builds its own: close this one's sessions
    return rate


def shadow_cost(rows: list[dict], concurrency: int, service_time: float, tmp: Path, repeat: int) -> tuple[float, int]:
    """The hack alarm's price on the reward loop: a judge that says YES to everything (every judged
    answer credited, so every one goes through the robust gates in shadow) against the same loop
    with the shadow fields switched off; interleaved, median of ``repeat``. Returns (ratio, how
    many samples one run scored)."""
    from medix_verl.reward.scorer import MedixScorer

    proc, url = start_server(service_time, concurrency, gullible=True)
    real = MedixScorer.shadow_fields
    on, off, gated = [], [], 0
    try:
        for _ in range(repeat):
            on.append(reward_loop_rate(url, rows, concurrency, tmp))
            MedixScorer.shadow_fields = lambda self, sample, result: {}
            try:
                off.append(reward_loop_rate(url, rows, concurrency, tmp))
            finally:
                MedixScorer.shadow_fields = real
        from medix_verl.reward.scorer import _SCORERS

        gated = next(iter(_SCORERS.values())).samples  # the last run's (shadow off): every sample scored
    finally:
        proc.terminate()
        proc.wait(10)
    return statistics.median(on) / statistics.median(off), gated


WORKER = """
import asyncio, json, sys, time
sys.path.insert(0, {root!r})
from medix_verl.reward.scorer import MedixScorer
from medix_verl.reward.settings import RewardSettings
rows = json.load(open({rows!r}))
scorer = MedixScorer(RewardSettings(**{settings!r}))
async def go():
    started = time.perf_counter()
    await scorer.score_many(rows)
    end = time.perf_counter()
    await scorer.aclose()
    return started, end
sys.stdin.readline()  # start together
start, end = asyncio.run(go())
print(json.dumps({{"requests": scorer.judge.stats.requests, "start": start, "end": end}}), flush=True)
"""


def workers_rate(url: str, rows: list[dict], budget: int, k: int, tmp: Path) -> float:
    procs = []
    for i in range(k):
        part = tmp / f"part{i}.json"
        part.write_text(json.dumps(rows[i::k]))
        code = WORKER.format(root=str(ROOT), rows=str(part), settings=settings_kwargs(url, max(1, budget // k)))
        procs.append(
            subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    time.sleep(8)  # imports done
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes
    span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    return sum(o["requests"] for o in outs) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--service-time", type=float, default=0.05)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each path, interleaved (median)")
    args = parser.parse_args()
    rows = [{"response": r, "ground_truth": g} for r, g in make_rollouts(args.prompts, args.n)]
    global EMBED_URL
    proc, url = start_server(args.service_time, args.capacity)
    embed_proc, EMBED_URL = start_server(0.0, 1_000_000)
    conc = args.capacity
    print(
        f"{len(rows)} rollouts ({args.prompts} prompts x {args.n}); judge: {args.capacity} slots x "
        f"{args.service_time * 1000:.0f} ms = {args.capacity / args.service_time:.0f} req/s; instant embeddings"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            # each path and the ceiling measured --repeat times, interleaved, each from cold (a new
            # scorer, new connections): the median of each, so a burst of load elsewhere on a small
            # machine moves one sample, not the ratio
            scorer_runs, ceilings, loop_runs = [], [], []
            for _ in range(args.repeat):
                scorer_rps, requests, bodies = scorer_rate(url, rows, conc)
                scorer_runs.append(scorer_rps)
                ceilings.append(asyncio.run(bare(url, bodies, conc)))
                loop_runs.append(reward_loop_rate(url, rows, conc, tmp))
            ceiling, scorer_rps, loop_rps = (statistics.median(x) for x in (ceilings, scorer_runs, loop_runs))
            print(
                f"  bare aiohttp client: {len(bodies)} requests at concurrency {conc}: {ceiling:.0f} req/s (the ceiling; "
                f"median of {args.repeat}: {', '.join(f'{x:.0f}' for x in ceilings)})"
            )
            print(f"  scorer (score_many): {requests} requests: {', '.join(f'{x:.0f}' for x in scorer_runs)} req/s")
            print(f"  verl reward loop: {', '.join(f'{x:.0f}' for x in loop_runs)} req/s")
            print(f"RATIO scorer / bare client: {scorer_rps / ceiling:.2f}x (target >= 0.9x)")
            cli = cli_rate(url, rows, conc, tmp)
            print(f"RATIO medix-verl score / bare client: {cli / ceiling:.2f}x (target >= 0.9x; {cli:.0f} req/s)")
            print(
                f"RATIO verl reward loop (medix manager) / bare client: {loop_rps / ceiling:.2f}x ({loop_rps:.0f} req/s)"
            )
            ratio, seen = shadow_cost(rows, conc, args.service_time, tmp, args.repeat)
            print(
                f"RATIO reward loop with the robust gates in shadow / without ({seen} samples, a judge that says "
                f"YES to all: every judged answer gated): {ratio:.3f}x (target >= 0.98x)"
            )
            if not args.skip_workers:
                for k in (1, 2, 4):
                    rate = workers_rate(url, rows, conc, k, tmp)
                    print(
                        f"RATIO {k} reward worker(s), judge_max_concurrency {max(1, conc // k)} each / bare client: "
                        f"{rate / ceiling:.2f}x ({rate:.0f} req/s)"
                    )
    finally:
        for p in (proc, embed_proc):
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    main()
