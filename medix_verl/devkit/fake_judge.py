"""A loopback OpenAI-compatible chat server that stands in for the judge in tests and benchmarks.

It speaks enough of ``POST /v1/chat/completions`` for :class:`~medix_verl.clients.chat.ChatClient`, with
a fixed service time, a concurrency capacity (requests beyond it queue, as in a real server) and
failure modes: HTTP errors for the first attempts of each request (flaky), a random error rate,
a fixed status, hanging, malformed bodies and reset connections. It binds 127.0.0.1 only.

    with FakeJudge(latency=0.05, capacity=8) as judge:
        client = ChatClient(judge.url, "fake")
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable

from aiohttp import web

from . import openai_server

_PRED = re.compile(r"Predicted:(.*?)\nGround Truth:(.*)\Z", re.DOTALL)


def lenient_policy(content: str) -> str:
    """YES when one of predicted / reference contains the other (case-insensitive), else NO."""
    found = _PRED.search(content)
    if not found:
        return "NO"
    pred, ref = found.group(1).strip().lower(), found.group(2).strip().lower()
    return "YES" if pred and ref and (pred in ref or ref in pred) else "NO"


class FakeJudge:
    def __init__(
        self,
        policy: Callable[[str], str] = lenient_policy,
        *,
        latency: float = 0.0,
        capacity: int | None = None,
        fail_first: int = 0,
        fail_status: int = 503,
        error_rate: float = 0.0,
        status: int | None = None,
        hang: bool = False,
        malformed: bool = False,
        reset: bool = False,
        reset_rate: float = 0.0,
        stall_rate: float = 0.0,
        stall_s: float = 0.0,
        seed: int = 0,
        yes_prob: Callable[[str], float] | None = None,
        chat_policy: Callable[[dict], str] | None = None,
        body_policy: Callable[[dict], dict | None] | None = None,
        context_chars: int | None = None,
        port: int = 0,
    ):
        self.policy = policy
        self._port = int(port)  # 0: any free port
        self.latency = latency
        self.capacity = capacity
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.error_rate = error_rate
        self.status = status
        self.hang = hang
        self.malformed = malformed
        self.reset = reset
        self.reset_rate = reset_rate  # share of requests whose connection is dropped
        self.stall_rate = stall_rate  # share of requests that stall for stall_s before they are served
        self.stall_s = stall_s
        self.yes_prob = yes_prob
        self.chat_policy = chat_policy  # sees the whole request payload (multi-turn, images)
        self.body_policy = body_policy  # may answer with a whole response body of its own (odd replies)
        # a prompt longer than this is refused with vLLM's HTTP 400 for a request beyond --max-model-len
        self.context_chars = context_chars
        self._rng = random.Random(seed)
        self.received = 0
        self.served = 0
        self.attempts: Counter[str] = Counter()
        self.in_service = 0
        self.max_in_service = 0
        self.payloads: list[dict] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each request
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ server
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received += 1
        self.authorizations.append(request.headers.get("Authorization"))
        raw = await request.read()
        try:
            payload = json.loads(raw)
            content = openai_server.message_text(payload["messages"][-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return openai_server.error(400, "bad request body")
        self.payloads.append(payload)
        key = content
        self.attempts[key] += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.reset:
            request.transport.close()
            return web.Response(status=500)
        if self.context_chars is not None and len(content) > self.context_chars:
            return openai_server.context_error(self.context_chars, len(content))
        if self.status is not None:
            return openai_server.error(self.status, f"forced {self.status}")
        if self.attempts[key] <= self.fail_first:
            return openai_server.error(self.fail_status, "flaky")
        if self.error_rate and self._rng.random() < self.error_rate:
            return openai_server.error(500, "random failure")
        if self.reset_rate and self._rng.random() < self.reset_rate:
            request.transport.close()
            return web.Response(status=500)
        if self.stall_rate and self._rng.random() < self.stall_rate:
            await asyncio.sleep(self.stall_s)
        async with self._capacity:
            self.in_service += 1
            self.max_in_service = max(self.max_in_service, self.in_service)
            try:
                if self.latency:
                    await asyncio.sleep(self.latency)
            finally:
                self.in_service -= 1
        self.served += 1
        if self.body_policy is not None and (body := self.body_policy(payload)) is not None:
            return web.json_response(body)
        if self.malformed:
            return web.Response(text="<html>not json</html>", content_type="text/html")
        choice = {}
        if self.yes_prob is not None:
            import math

            p = min(max(self.yes_prob(content), 1e-6), 1 - 1e-6)
            reply = "YES" if p >= 0.5 else "NO"
            if payload.get("logprobs"):
                top = [{"token": "YES", "logprob": math.log(p)}, {"token": "NO", "logprob": math.log(1 - p)}]
                choice["logprobs"] = {
                    "content": [{"token": reply, "logprob": math.log(max(p, 1 - p)), "top_logprobs": top}]
                }
        elif self.chat_policy is not None:
            reply = self.chat_policy(payload)
        else:
            reply = self.policy(content)
        body = openai_server.completion(
            payload.get("model"), reply, prompt_tokens=len(content.split()), completion_tokens=1, choice=choice
        )
        return web.json_response(body)

    async def _embeddings(self, request: web.Request) -> web.Response:
        """An instant OpenAI ``/v1/embeddings``: a deterministic unit vector per text (texts that
        share their first word point the same way), so a benchmark's only limit is the judge."""
        import hashlib
        import math

        payload = json.loads(await request.read())
        data = []
        for i, text in enumerate(payload["input"]):
            word = (text.split() or [""])[0].lower()
            seed = hashlib.sha256(word.encode()).digest()
            vec = [b - 127.5 for b in seed[:16]]
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            data.append({"object": "embedding", "index": i, "embedding": [v / norm for v in vec]})
        return web.json_response({"object": "list", "data": data, "model": payload.get("model")})

    async def _start(self) -> None:
        self._capacity = asyncio.Semaphore(self.capacity or 1_000_000)
        app = openai_server.application(self._handle, "fake", embeddings=self._embeddings)
        self._runner, self.port = await openai_server.serve(app, port=self._port, shutdown_timeout=0.5)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> FakeJudge:
        self._thread = threading.Thread(target=self._run, name="fake-judge", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake judge did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeJudge:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> None:
    """Run a fake judge on 127.0.0.1 until interrupted (for trying the CLI and recipes)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--capacity", type=int)
    parser.add_argument(
        "--gullible", action="store_true", help="say YES to everything (a judge being gamed; benchmarks)"
    )
    args = parser.parse_args(argv)
    policy = (lambda _content: "YES") if args.gullible else lenient_policy
    with FakeJudge(policy, latency=args.latency, capacity=args.capacity) as judge:
        print(judge.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
