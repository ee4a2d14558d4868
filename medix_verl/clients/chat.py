"""Async client for an OpenAI-compatible chat endpoint (vLLM is the target): the reward's judge,
the evaluation's judge and the evaluated policy server all go through it.

Built for thousands of short YES/NO judge requests per training step:

* pooled keep-alive connections and a concurrency cap;
* a per-request timeout, and retries for transient failures only (refused/reset connections,
  timeouts, 408, 429, 5xx; :mod:`medix_verl.clients.retry`); other 4xx are not retried;
* de-duplication of identical in-flight requests and an LRU cache of replies (GRPO groups
  repeat short answers);
* one server or a pool of replicas of the same model (a comma list of URLs,
  :mod:`medix_verl.clients.pool`): each attempt goes to the least loaded replica in service; an
  attempt that fails on one replica for a reason of that replica (refused, dropped, timed out,
  5xx, unreadable) is sent to another one in service before it counts as a retry, and a replica
  that keeps failing is taken out for a cool-down and probed back in;
* counters (:meth:`ChatClient.stats`, per replica in :meth:`ChatClient.summary`);
* a failure policy: one request that still fails is reported to the caller as a
  :class:`ChatRequestError` (a reward row gets ``judge_error=1``); a server that cannot be
  reached, that has never answered within the timeout, or whose recent error rate passes
  ``max_error_rate`` raises :class:`ServerUnavailableError`, naming the URL and the last error,
  so training stops instead of learning from zeros. With a pool, a request fails only when no
  replica could answer it, and the server is unusable only when every replica is out (the error
  names each URL and its last error).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import re
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cachetools import LRUCache

from .pool import Replica, ReplicaPool, parse_url_list
from .retry import RetryPolicy, is_transient_status, parse_retry_after

# vLLM's HTTP 400 for a prompt (+ max_tokens) beyond --max-model-len, across its versions:
# "This model's maximum context length is 2048 tokens. However, you requested ...",
# "... is longer than the maximum model length of 2048", "max_tokens ... too large ... max_model_len"
_CONTEXT_EXCEEDED = re.compile(r"maximum context length|maximum model length|max_model_len|context length", re.I)


class ChatRequestError(Exception):
    """One chat request failed for good (after its retries). A reward row gets ``judge_error=1``."""

    def __init__(self, message: str, *, transient: bool, kind: str):
        super().__init__(message)
        self.transient = transient
        # "connect" (refused, no route), "broken" (reset), "timeout", "http", "protocol", "empty",
        # "overlength" (HTTP 400: the request does not fit the server's context; deterministic)
        self.kind = kind


class ServerUnavailableError(RuntimeError):
    """The server (judge or policy) is unusable: scoring must stop rather than carry on with zeros."""


@dataclass
class RequestStats:
    """What a :class:`ChatClient` counted, whichever server it talks to (a judge, a policy)."""

    calls: int = 0  # completions asked for (verdicts, answers)
    cache_hits: int = 0
    dedup_hits: int = 0  # joined an identical request already in flight
    requests: int = 0  # HTTP attempts sent
    retries: int = 0
    failovers: int = 0  # attempts sent to another replica after one failed (not retries)
    errors: int = 0  # calls that failed after their retries
    overlength: int = 0  # calls refused as longer than the server's context (not errors: the server is fine)
    succeeded: int = 0  # HTTP attempts that returned a reply
    prompt_tokens: int = 0  # as the server's "usage" reports them
    completion_tokens: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    latencies: deque = field(default_factory=lambda: deque(maxlen=10_000))

    def as_dict(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: 0.0)
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "dedup_hits": self.dedup_hits,
            "requests": self.requests,
            "retries": self.retries,
            "failovers": self.failovers,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_mean_s": self.latency_sum / self.succeeded if self.succeeded else 0.0,
            "latency_p50_s": pick(0.5),
            "latency_p95_s": pick(0.95),
            "latency_max_s": self.latency_max,
        }


#: the former name (it counted policy requests too)
JudgeStats = RequestStats


class _LoopState:
    """What must belong to one event loop: the HTTP session, the semaphore, in-flight futures."""

    def __init__(self, max_concurrency: int, headers: Mapping[str, str]):
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.inflight: dict[str, asyncio.Future] = {}
        self.closer = None  # see ChatClient._state
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_concurrency, keepalive_timeout=75, ttl_dns_cache=300),
            headers=dict(headers),
        )


class ChatClient:
    """Ask an OpenAI-compatible server for chat completions, robustly.

    Args:
        base_url: the OpenAI base URL, e.g. ``http://127.0.0.1:8085/v1`` (``host:port`` is accepted too),
            or several replicas of one model as a comma list or a list (each ``http://HOST:PORT/v1``).
        model: the served model name sent in each request.
        max_concurrency: requests in flight at once per replica (a pool of 3 keeps up to 3 x this
            in flight; also the connection pool size).
        timeout: seconds for one HTTP attempt.
        retries: further attempts after the first for transient failures.
        backoff, backoff_max: the :class:`~medix_verl.clients.retry.RetryPolicy` delays.
        cache_size: replies kept (LRU); 0 disables the cache.
        max_error_rate: fraction of failed calls among the last ``error_window`` calls above which
            the server is declared unavailable, once at least ``min_calls_for_rate`` calls were made.
        api_key: sent as a bearer token to this server only (never read from the environment here,
            so one server's key cannot reach another).
        role: what the server is, for messages (``"judge"``, ``"policy server"``).
        empty_is_answer: an HTTP 200 whose message has no content is a reply of ``""`` (the
            evaluated model said nothing: an answer to judge), not a fault. Off for a judge,
            whose empty reply carries no verdict.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        max_concurrency: int = 64,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        cache_size: int = 200_000,
        max_error_rate: float = 0.2,
        error_window: int = 200,
        min_calls_for_rate: int = 20,
        api_key: str | None = None,
        role: str = "judge",
        empty_is_answer: bool = False,
    ):
        if not model:
            raise ValueError(f"{role} model name is empty: pass the served model name (vLLM --served-model-name)")
        if max_concurrency < 1 or timeout <= 0 or retries < 0:
            raise ValueError(
                f"invalid {role} client settings: max_concurrency={max_concurrency}, timeout={timeout}, retries={retries}"
            )
        if not base_url or (isinstance(base_url, str) and not base_url.strip()):
            raise ValueError(f"{role} URL is empty")
        urls = [normalize_base_url(u) for u in parse_url_list(base_url, what=f"{role} URL")]
        self.pool = ReplicaPool(urls)
        self.base_url = urls[0]
        # for messages: the endpoint of one server, the base URLs of a pool
        self.url = urls[0] + "/chat/completions" if len(urls) == 1 else ",".join(urls)
        self.model = model
        self.max_concurrency = int(max_concurrency) * len(urls)
        self.timeout = float(timeout)
        self._client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        self.retry = RetryPolicy(int(retries), float(backoff), float(backoff_max))
        self.retries = self.retry.retries
        self.role = role
        self.empty_is_answer = bool(empty_is_answer)
        self.cache_size = int(cache_size)
        self.max_error_rate = float(max_error_rate)
        self.min_calls_for_rate = int(min_calls_for_rate)
        self._window: deque[bool] = deque(maxlen=int(error_window))
        self._cache: LRUCache[str, dict] | None = LRUCache(self.cache_size) if self.cache_size else None
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.stats = RequestStats()
        self.sessions_opened = 0
        self.sessions_closed = 0
        atexit.register(_close_at_exit, weakref.ref(self))
        self.last_error: str | None = None
        self._fatal: ServerUnavailableError | None = None

    # ------------------------------------------------------------------ public API
    async def complete(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None) -> str:
        """The reply text for one chat request (cached and de-duplicated).

        Raises :class:`ChatRequestError` when this request failed for good and
        :class:`ServerUnavailableError` when the server as a whole is unusable.
        """
        return reply_text(await self.complete_choice(messages, params))

    async def complete_choice(
        self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None, *, use_cache: bool = True
    ) -> dict:
        """The first choice of the chat completion (``message``, and ``logprobs`` when asked for)."""
        if self._fatal is not None:
            raise self._fatal
        key, payload = self._key(messages, params)
        self.stats.calls += 1
        if use_cache:
            cached = self._cache_get(key)
            if cached is not None:
                self.stats.cache_hits += 1
                return cached
        state = await self._state()
        task = state.inflight.get(key) if use_cache else None
        if task is not None:
            self.stats.dedup_hits += 1
        else:
            # the request is a task of its own: a caller that is cancelled (verl's rate limiter
            # wraps calls in wait_for) leaves it running for everyone else waiting on it
            task = asyncio.ensure_future(self._request_and_cache(state, key, payload))
            task.add_done_callback(_retrieve)
            state.inflight[key] = task
        return await asyncio.shield(task)

    async def _request_and_cache(self, state: _LoopState, key: str, payload: bytes) -> dict:
        try:
            choice = await self._request_with_retries(state, payload)
            self._cache_put(key, choice)
            return choice
        finally:
            if state.inflight.get(key) is asyncio.current_task():
                del state.inflight[key]

    def forget(self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None) -> None:
        """Drop a cached reply (e.g. one that could not be parsed)."""
        if self._cache is not None:
            self._cache.pop(self._key(messages, params)[0], None)

    def _key(self, messages, params) -> tuple[str, bytes]:
        """The request body, serialised once: it is both the cache key and what is sent."""
        payload = {"model": self.model, "messages": messages, **(params or {})}
        key = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return key, key.encode()

    async def aclose(self) -> None:
        """Close the HTTP session of the running loop."""
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if state is not None and not state.session.closed:
            await state.session.close()
            self.sessions_closed += 1

    def summary(self) -> dict:
        return {"url": self.url, **self.stats.as_dict(), "replicas": self.pool.summary()}

    async def check_replicas(self, timeout: float = 5.0) -> list[tuple[str, str]]:
        """Ask every replica for ``/models`` (any HTTP answer counts as reachable); replicas that
        cannot be reached are taken out of the pool. Returns ``(url, error)`` of those."""
        state = await self._state()
        unreachable = []
        for replica in self.pool.replicas:
            try:
                async with state.session.get(replica.url + "/models", timeout=aiohttp.ClientTimeout(total=timeout)):
                    pass
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = f"cannot connect: {type(exc).__name__}: {exc}"
                unreachable.append((replica.url, error))
                replica.in_flight += 1  # as if an attempt had been made, so that the pool counts it
                self.pool.failed(replica, error, connect=True)
        return unreachable

    async def check_pool(self) -> list[tuple[str, str]]:
        """Before any work, with several replicas: :meth:`check_replicas`, and
        :class:`ServerUnavailableError` naming each URL when none answers. Returns the
        ``(url, error)`` of those left out (none for one server: it is not checked)."""
        if len(self.pool) < 2:
            return []
        down = await self.check_replicas()
        if len(down) == len(self.pool):
            raise ServerUnavailableError(
                f"no {self.role} replica answers: " + "; ".join(f"{url}: {error}" for url, error in down)
            )
        return down

    # ------------------------------------------------------------------ internals
    async def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None or state.session.closed:
            state = _LoopState(self.max_concurrency, self._headers)
            self._states[loop] = state
            self.sessions_opened += 1
            # an async generator parked at its yield: the loop closes it when it shuts down
            # (asyncio.run does, through shutdown_asyncgens), and its finally closes the session
            state.closer = self._close_with_loop(state)
            await state.closer.__anext__()
        return state

    async def _close_with_loop(self, state: _LoopState):
        try:
            yield
        finally:
            if not state.session.closed:
                await state.session.close()
                self.sessions_closed += 1

    def _close_at_exit(self) -> None:
        """Close the sessions of loops that are still open at interpreter exit (not running)."""
        for loop, state in list(self._states.items()):
            if not state.session.closed and not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(state.session.close())
                self.sessions_closed += 1

    def _cache_get(self, key: str) -> dict | None:
        return self._cache.get(key) if self._cache is not None else None

    def _cache_put(self, key: str, reply: dict) -> None:
        if self._cache is not None:
            self._cache[key] = reply

    async def _request_with_retries(self, state: _LoopState, payload: bytes) -> dict:
        attempt = 0
        tried: set[int] = set()  # replicas that failed this attempt
        while True:
            try:
                reply = await self._attempt(state, payload, tried)
            except ChatRequestError as err:
                self.last_error = str(err)
                if err.transient and self.retry.should_retry(attempt):
                    self.stats.retries += 1
                    delay = self.retry.delay(attempt, getattr(err, "retry_after", None))
                    if self.pool.all_out():  # none to ask: wait for the first that may be probed
                        delay = max(delay, min(self.pool.next_probe_in(), self.retry.backoff_max))
                    await asyncio.sleep(delay)
                    attempt += 1
                    tried.clear()
                    continue
                if err.kind == "overlength":  # the server answered, deterministically: not a fault
                    self.stats.overlength += 1
                    self._record(True, None)
                    raise
                self.stats.errors += 1
                self._record(False, err)
                raise
            self._record(True, None)
            return reply

    async def _attempt(self, state: _LoopState, payload: bytes, tried: set[int]) -> dict:
        """One attempt of a request: on the least loaded replica, and on the others in service
        while one fails for a reason of its own (such a failure is not a retry of the request)."""
        last: ChatRequestError | None = None
        # the replica is chosen once the request holds a slot: the pool sees what is really in flight
        async with state.semaphore:
            while True:
                replica = self.pool.acquire(exclude=tried)
                if replica is None:
                    raise last or ChatRequestError(
                        f"every {self.role} replica is out: {self.pool.describe_out()}", transient=True, kind="connect"
                    )
                try:
                    return await self._request_once(state, payload, replica)
                except ChatRequestError as err:
                    if not err.transient:
                        raise
                    tried.add(replica.index)
                    last = err
                    if not self.pool.candidates(exclude=tried):
                        raise
                    self.stats.failovers += 1

    async def _request_once(self, state: _LoopState, payload: bytes, replica: Replica) -> dict:
        """One HTTP attempt on ``replica``; tells the pool how it went."""
        try:
            choice, elapsed = await self._post(state, payload, replica.url + "/chat/completions")
        except ChatRequestError as err:
            if err.transient:
                self.pool.failed(replica, str(err), connect=err.kind == "connect")
            else:  # the replica answered (a 4xx about the request)
                self.pool.release(replica, ok=True)
            raise
        except BaseException:
            self.pool.release(replica, ok=False)
            raise
        self.pool.release(replica, ok=True, latency=elapsed)
        return choice

    async def _post(self, state: _LoopState, payload: bytes, url: str) -> tuple[dict, float]:
        # the caller holds a slot of state.semaphore
        self.stats.requests += 1
        started = time.perf_counter()
        try:
            async with state.session.post(url, data=payload, timeout=self._client_timeout) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            raise ChatRequestError(
                f"no answer within {self.timeout:g}s from {url}", transient=True, kind="timeout"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise ChatRequestError(f"cannot connect to {url}: {exc}", transient=True, kind="connect") from None
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ChatRequestError(
                f"connection to {url} broke: {type(exc).__name__}: {exc}", transient=True, kind="broken"
            ) from None
        except aiohttp.ClientError as exc:
            raise ChatRequestError(
                f"request to {url} failed: {type(exc).__name__}: {exc}", transient=True, kind="broken"
            ) from None
        elapsed = time.perf_counter() - started
        if status == 400 and _CONTEXT_EXCEEDED.search(body[:2000].decode("utf-8", "replace")):
            raise ChatRequestError(
                f"{url} refused the request as longer than its context: {body[:300].decode('utf-8', 'replace')}",
                transient=False,
                kind="overlength",
            )
        if status != 200:
            text = body[:300].decode("utf-8", "replace")
            err = ChatRequestError(
                f"{url} answered HTTP {status}: {text}", transient=is_transient_status(status), kind="http"
            )
            err.retry_after = parse_retry_after(retry_after)
            raise err
        try:
            reply = json.loads(body)
            choice = reply["choices"][0]
            if not isinstance(choice.get("message"), dict):
                raise KeyError("message")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ChatRequestError(
                f"{url} returned no chat completion: {body[:300].decode('utf-8', 'replace')!r}",
                transient=True,
                kind="protocol",
            ) from None
        content = choice["message"].get("content")
        if self.empty_is_answer and (content is None or (isinstance(content, str) and not content.strip())):
            choice = {**choice, "message": {**choice["message"], "content": content or ""}}
        elif not choice.get("logprobs") and (not isinstance(content, str) or not content.strip()):
            # HTTP 200 but nothing to read a verdict from: a fault, never a "NO" (and never cached)
            raise ChatRequestError(
                f"{url} answered HTTP 200 without content: {body[:300].decode('utf-8', 'replace')!r}",
                transient=True,
                kind="empty",
            )
        self.stats.succeeded += 1
        usage = reply.get("usage") if isinstance(reply, dict) else None
        if isinstance(usage, dict):
            self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
        self.stats.latency_sum += elapsed
        self.stats.latency_max = max(self.stats.latency_max, elapsed)
        self.stats.latencies.append(elapsed)
        return choice, elapsed

    def _record(self, ok: bool, err: ChatRequestError | None) -> None:
        self._window.append(ok)
        if ok or err is None:
            return
        if len(self.pool) > 1:
            if self.pool.all_out():  # only when no replica is left is the judge unusable
                self._fail(
                    f"every {self.role} replica is out after {self.retries + 1} attempts; {self.pool.describe_out()}"
                )
        elif err.kind == "connect":
            self._fail(f"{self.role} unreachable at {self.url} after {self.retries + 1} attempts: {err}")
        elif err.kind == "timeout" and self.stats.succeeded == 0:
            self._fail(f"{self.role} at {self.url} never answered within {self.timeout:g}s: {err}")
        failures = self._window.count(False)
        if len(self._window) >= self.min_calls_for_rate and failures / len(self._window) > self.max_error_rate:
            self._fail(
                f"{self.role} error rate {failures}/{len(self._window)} over the last calls passed "
                f"max_error_rate={self.max_error_rate:g} at {self.url}; last error: {err}"
            )

    def _fail(self, message: str) -> None:
        self._fatal = ServerUnavailableError(message)
        raise self._fatal

    def check_error_rate(self, calls: int, errors: int) -> None:
        """Raise :class:`ServerUnavailableError` if ``errors/calls`` of one scoring call passes the threshold."""
        if calls and errors / calls > self.max_error_rate:
            self._fail(
                f"{self.role} error rate {errors}/{calls} in this scoring call passed max_error_rate="
                f"{self.max_error_rate:g} at {self.url}; last error: {self.last_error}"
            )


def _close_at_exit(ref) -> None:
    """``atexit`` hook of a client holding a session per event loop (this one, the remote
    embedder): close those whose loop is still open."""
    client = ref()
    if client is not None:
        client._close_at_exit()


def _retrieve(task: asyncio.Task) -> None:
    """Mark a shared request's failure as seen even when every caller was cancelled."""
    if not task.cancelled():
        task.exception()


def reply_text(choice: Mapping[str, Any]) -> str:
    """The message text of a chat-completion choice ("" when the server sent none)."""
    content = (choice.get("message") or {}).get("content")
    return content if isinstance(content, str) else ""


def normalize_base_url(url: str) -> str:
    """``host:port`` -> ``http://host:port/v1``; trailing slashes and ``/chat/completions`` removed.

    >>> normalize_base_url("127.0.0.1:8000"), normalize_base_url("http://h:1/v1/chat/completions")
    ('http://127.0.0.1:8000/v1', 'http://h:1/v1')
    """
    url = url.strip().rstrip("/")
    if not url:
        raise ValueError("server URL is empty")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    scheme_host = url.split("://", 1)[1]
    if "/" not in scheme_host:
        url += "/v1"
    return url
