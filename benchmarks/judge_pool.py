"""One judge server against a pool of replicas of unequal capacity, measured in one run.

Loopback judges (:class:`medix_verl.devkit.fake_judge.FakeJudge`, each in a process of its own)
with a fixed reply time and a concurrency capacity (requests beyond it queue, as in vLLM):

1. one server of capacity 8 (the ceiling of one replica: 8 / reply time);
2. a pool of 8 + 8 + 4 through one :class:`~medix_verl.clients.chat.ChatClient` (expected:
   (8 + 8 + 4) / 8 = 2.5x the single server), and the share of requests each replica got;
3. the same pool with the first replica killed a quarter of the way through: rows lost (must be
   0), failovers, and the rate of what is left (ceiling 12 / 8 = 1.5x the single server).

    python benchmarks/judge_pool.py [--reply-s 0.05] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def serve(capacity: int, reply_s: float, port_queue, stop_event) -> None:
    from medix_verl.devkit.fake_judge import FakeJudge

    judge = FakeJudge(latency=reply_s, capacity=capacity).start()
    port_queue.put(judge.url)
    stop_event.wait()
    judge.stop()


class Server:
    def __init__(self, capacity: int, reply_s: float):
        ctx = mp.get_context("spawn")
        self.queue, self.stop_event = ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(target=serve, args=(capacity, reply_s, self.queue, self.stop_event), daemon=True)
        self.proc.start()
        self.url = self.queue.get(timeout=60)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()

    def close(self) -> None:
        if self.proc.is_alive():
            self.stop_event.set()
            self.proc.join(10)


def run(urls: list[str], n: int, *, kill_at: int | None = None, victim: Server | None = None, tag: int = 0):
    from medix_verl.clients.chat import ChatClient, ChatRequestError

    client = ChatClient(",".join(urls), "fake", max_concurrency=64, retries=3, backoff=0.05, timeout=10)
    done = 0

    async def go():
        nonlocal done

        async def one(i):
            nonlocal done
            try:
                await client.complete([{"role": "user", "content": f"Predicted:x{tag}-{i}\nGround Truth:x{tag}-{i}"}])
                ok = True
            except ChatRequestError:
                ok = False
            done += 1
            if kill_at is not None and done == kill_at:
                victim.kill()
            return ok

        started = time.perf_counter()
        try:
            oks = await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            await client.aclose()
        return oks, time.perf_counter() - started

    oks, seconds = asyncio.run(go())
    return {
        "rate": n / seconds,
        "lost": oks.count(False),
        "replicas": client.pool.summary(),
        "failovers": client.stats.failovers,
        "retries": client.stats.retries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reply-s", type=float, default=0.05)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    n = args.requests
    servers = [Server(c, args.reply_s) for c in (8, 8, 4)]
    try:
        one = run([servers[0].url], n, tag=1)
        pool = run([s.url for s in servers], n, tag=2)
        killed = run([s.url for s in servers], n, kill_at=n // 4, victim=servers[0], tag=3)
    finally:
        for s in servers:
            s.close()
    ceiling = 8 / args.reply_s
    print(f"reply {args.reply_s * 1000:.0f} ms, {n} requests each; one replica's ceiling {ceiling:.0f} req/s")
    print(f"one server (capacity 8):       {one['rate']:7.1f} req/s  ({one['rate'] / ceiling:.2f}x its ceiling)")
    shares = ", ".join(f"{r['requests'] / sum(x['requests'] for x in pool['replicas']):.0%}" for r in pool["replicas"])
    print(
        f"pool 8 + 8 + 4:                {pool['rate']:7.1f} req/s  ({pool['rate'] / one['rate']:.2f}x one server; "
        f"expected 2.50x); shares {shares} (capacity shares 40%, 40%, 20%); lost {pool['lost']}"
    )
    dead = killed["replicas"][0]
    print(
        f"pool, replica 0 killed at {n // 4}: {killed['rate']:7.1f} req/s  ({killed['rate'] / one['rate']:.2f}x one "
        f"server); rows lost {killed['lost']}; failovers {killed['failovers']}, retries {killed['retries']}; "
        f"replica 0: {dead['requests']} requests, {dead['errors']} errors, ejections {dead['ejections']}, "
        f"in service {dead['in_service']}"
    )


if __name__ == "__main__":
    main()
