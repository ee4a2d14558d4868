"""Sentence embeddings for the embedding-accuracy part, batched across concurrent samples.

Each scored sample asks for two texts (answer and reference). Instead of encoding pairs one by
one, requests from all samples being scored concurrently are gathered for a few milliseconds
(or until ``batch_size`` texts wait) and encoded in one batch, on a worker thread so the event
loop that drives judge traffic never blocks. Embeddings are cached (LRU): references repeat
across every rollout of a prompt and GRPO groups repeat short answers.

Two back-ends share the batching:

* :class:`LocalEmbedder`: a sentence-transformers model (default ``abhinand/MedEmbed-large-v0.1``,
  any hub id or local path), loaded once per process, on CUDA when visible, else CPU;
* :class:`RemoteEmbedder`: an OpenAI-compatible ``/v1/embeddings`` endpoint (e.g. ``vllm serve
  --runner pooling``).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from cachetools import LRUCache

from .chat import _close_at_exit, normalize_base_url
from .pool import ReplicaPool, parse_url_list
from .retry import RetryPolicy, is_transient_status

DEFAULT_EMBED_MODEL = "abhinand/MedEmbed-large-v0.1"


class EmbedderError(RuntimeError):
    """The embedding back-end failed (model not loadable, remote endpoint broken)."""


class _Batcher:
    """Per-event-loop queue of texts waiting to be encoded."""

    def __init__(self):
        self.pending: dict[str, asyncio.Future] = {}
        self.flush_handle: asyncio.TimerHandle | None = None
        self.running = 0  # batches being encoded


class BaseEmbedder:
    """Batching, caching front of an embedding back-end. Subclasses implement :meth:`_encode_batch`."""

    #: batches encoded at once (a local model has one worker thread; a remote endpoint takes more)
    max_inflight = 1
    #: texts at most in one encode call when a backlog built up while the encoder was busy
    max_batch_factor = 16

    def __init__(self, *, batch_size: int = 128, max_wait_ms: float = 2.0, cache_size: int = 200_000):
        if batch_size < 1:
            raise ValueError(f"embed batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.cache_size = int(cache_size)
        self._cache: LRUCache[str, np.ndarray] | None = LRUCache(self.cache_size) if self.cache_size else None
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = weakref.WeakKeyDictionary()
        self.stats = {"texts": 0, "cache_hits": 0, "batches": 0, "encoded": 0}

    # ------------------------------------------------------------------ public API
    async def embed(self, text: str) -> np.ndarray:
        """The unit-norm embedding of one text (batched with concurrent callers)."""
        found = self._lookup(text)
        return found if isinstance(found, np.ndarray) else await asyncio.shield(found)

    def _lookup(self, text: str) -> np.ndarray | asyncio.Future:
        """The cached embedding, or the future of the batch that will encode ``text``."""
        self.stats["texts"] += 1
        hit = self._cache.get(text) if self._cache is not None else None
        if hit is not None:
            self.stats["cache_hits"] += 1
            return hit
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _Batcher()
        future = batcher.pending.get(text)
        if future is None:
            future = batcher.pending[text] = loop.create_future()
            # texts that arrive together go out together: when the encoder is idle, after max_wait
            # (or at once when the largest call is full); while it is busy, they accumulate and go
            # when it is free. One big call lets the model sort by length (little padding) and
            # pays the per-call overhead once.
            if batcher.running < self.max_inflight:
                if len(batcher.pending) >= self.batch_size * self.max_batch_factor:
                    self._flush(loop, batcher)
                elif batcher.flush_handle is None:
                    batcher.flush_handle = loop.call_later(self.max_wait, self._flush, loop, batcher)
        return future

    async def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts (both queued before either is awaited: one batch)."""
        return await self.similarity_of(self.queue_pair(a, b))

    def queue_pair(self, a: str, b: str) -> tuple:
        """Queue two texts for encoding now, without waiting (no task: the scorer's hot path);
        :meth:`similarity_of` awaits the pair later."""
        return self._lookup(a), self._lookup(b)

    @staticmethod
    async def similarity_of(pair: tuple) -> float:
        """Cosine similarity of a pair from :meth:`queue_pair` (a batch that is already encoded
        costs no await)."""
        vectors = []
        for item in pair:
            if isinstance(item, np.ndarray):
                vectors.append(item)
            elif item.done():
                vectors.append(item.result())
            else:  # shared with other callers: cancelling this one must not cancel the batch
                vectors.append(await asyncio.shield(item))
        return float(np.dot(vectors[0], vectors[1]))

    async def embed_many(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack(await asyncio.gather(*(self.embed(t) for t in texts)))

    async def aclose(self) -> None:
        """Release what the running loop holds (a remote endpoint's session); nothing here."""

    def encode_now(self, texts: Sequence[str]) -> np.ndarray:
        """Synchronous, unbatched encode (benchmarks, calibration). Rows are unit-norm."""
        return _unit_rows(self._encode_batch_sync(list(texts)))

    # ------------------------------------------------------------------ batching
    def _flush(self, loop: asyncio.AbstractEventLoop, batcher: _Batcher) -> None:
        if batcher.flush_handle is not None:
            batcher.flush_handle.cancel()
            batcher.flush_handle = None
        if not batcher.pending:
            return
        limit = self.batch_size * self.max_batch_factor
        if len(batcher.pending) <= limit:
            work, batcher.pending = batcher.pending, {}
        else:
            keys = list(batcher.pending)
            work = {k: batcher.pending.pop(k) for k in keys[:limit]}
        batcher.running += 1
        loop.create_task(self._run_batch(work, loop, batcher))

    async def _run_batch(self, work: dict[str, asyncio.Future], loop, batcher: _Batcher) -> None:
        try:
            await self._encode_work(work)
        finally:
            batcher.running -= 1
            if batcher.pending:  # the backlog that built up meanwhile
                self._flush(loop, batcher)

    async def _encode_work(self, work: dict[str, asyncio.Future]) -> None:
        texts = list(work)
        try:
            vectors = _unit_rows(await self._encode_batch(texts))
            if vectors.shape[0] != len(texts):
                raise EmbedderError(f"embedder returned {vectors.shape[0]} vectors for {len(texts)} texts")
        except Exception as exc:  # every waiter sees the failure
            err = (
                exc
                if isinstance(exc, EmbedderError)
                else EmbedderError(f"{self.describe()}: {type(exc).__name__}: {exc}")
            )
            for fut in work.values():
                if not fut.done():
                    fut.set_exception(err)
            return
        self.stats["batches"] += 1
        self.stats["encoded"] += len(texts)
        for text, vec in zip(texts, vectors):
            self._cache_put(text, vec)
            fut = work[text]
            if not fut.done():
                fut.set_result(vec)

    def _cache_put(self, text: str, vec: np.ndarray) -> None:
        if self._cache is not None:
            self._cache[text] = vec

    # ------------------------------------------------------------------ back-end
    async def _encode_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _encode_batch_sync(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


def _unit_rows(matrix) -> np.ndarray:
    arr = np.asarray(matrix, dtype=np.float32)
    if arr.ndim != 2:
        raise EmbedderError(f"expected a 2-D array of embeddings, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms == 0, 1.0, norms)


# ---------------------------------------------------------------------------- local model
_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()


def resolve_device(device: str | None) -> str:
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_sentence_transformer(model: str, device: str | None = None):
    """Load (once per process) a sentence-transformers model by hub id or local path."""
    device = resolve_device(device)
    key = (model, device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                from sentence_transformers import SentenceTransformer

                _MODELS[key] = SentenceTransformer(model, device=device)
            except Exception as exc:
                raise EmbedderError(
                    f"cannot load embedding model {model!r} on {device}: {type(exc).__name__}: {exc}"
                ) from exc
        return _MODELS[key]


class LocalEmbedder(BaseEmbedder):
    """A sentence-transformers model in this process; encodes on one worker thread."""

    def __init__(self, model: str = DEFAULT_EMBED_MODEL, *, device: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model_name = model
        self.device = resolve_device(device)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medix-embed")
        self._model = None

    def _model_obj(self):
        if self._model is None:
            self._model = load_sentence_transformer(self.model_name, self.device)
        return self._model

    def _encode_batch_sync(self, texts: list[str]) -> np.ndarray:
        return self._model_obj().encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )

    async def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._encode_batch_sync, texts)

    def warm_up(self) -> None:
        """Load the model now (it is otherwise loaded on the first batch)."""
        self._model_obj()

    def describe(self) -> str:
        return f"embedding model {self.model_name!r} on {self.device}"


class RemoteEmbedder(BaseEmbedder):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint (one request per batch), or several
    replicas of one model (a comma list of URLs): each batch goes to the least loaded replica, and
    a batch that fails on one replica is sent to another in service before it counts as a retry
    (:mod:`medix_verl.clients.pool`)."""

    max_inflight = 4

    def __init__(self, base_url: str, model: str, *, timeout: float = 60.0, retries: int = 3, **kwargs):
        super().__init__(**kwargs)
        urls = [normalize_base_url(u) for u in parse_url_list(base_url, what="embed_url")]
        self.pool = ReplicaPool(urls)
        self.url = ",".join(u + "/embeddings" for u in urls)
        self.model_name = model
        self.timeout = timeout
        self.retry = RetryPolicy(retries=retries, backoff=0.25, backoff_max=4.0)
        # one session (pooled keep-alive connections) per event loop, as the chat client keeps
        self._sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.sessions_opened = 0
        self.sessions_closed = 0
        atexit.register(_close_at_exit, weakref.ref(self))

    def _session(self):
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = self._sessions[loop] = aiohttp.ClientSession()
            self.sessions_opened += 1
        return session

    async def aclose(self) -> None:
        """Close the HTTP session of the running loop."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None and not session.closed:
            await session.close()
            self.sessions_closed += 1

    def _close_at_exit(self) -> None:
        for loop, session in list(self._sessions.items()):
            if not session.closed and not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(session.close())
                self.sessions_closed += 1

    async def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import aiohttp

        session = self._session()
        last = None
        attempt = 0
        tried: set[int] = set()
        while True:
            replica = self.pool.acquire(exclude=tried)
            if replica is not None:
                transient, refused = True, False
                started = time.perf_counter()
                try:
                    async with session.post(
                        replica.url + "/embeddings",
                        json={"model": self.model_name, "input": texts},
                        timeout=aiohttp.ClientTimeout(total=self.timeout),
                    ) as resp:
                        body = await resp.read()
                        if resp.status == 200:
                            data = json.loads(body)["data"]
                            data.sort(key=lambda d: d["index"])
                            vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
                            self.pool.release(replica, ok=True, latency=time.perf_counter() - started)
                            return vectors
                        last = f"{replica.url}: HTTP {resp.status}: {body[:200].decode('utf-8', 'replace')}"
                        transient = is_transient_status(resp.status)
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
                    last = f"{replica.url}: {type(exc).__name__}: {exc}"
                    refused = isinstance(exc, aiohttp.ClientConnectorError)
                except BaseException:
                    self.pool.release(replica, ok=False)
                    raise
                if not transient:  # the replica answered: the request itself is refused
                    self.pool.release(replica, ok=True)
                    break
                self.pool.failed(replica, last, connect=refused)
                tried.add(replica.index)
                if self.pool.candidates(exclude=tried):
                    continue  # another replica, not a retry
            if not self.retry.should_retry(attempt):
                break
            await asyncio.sleep(max(self.retry.delay(attempt), min(self.pool.next_probe_in(), 4.0)))
            attempt += 1
            tried.clear()
        raise EmbedderError(f"embeddings endpoint {self.url} failed: {last or self.pool.describe_out()}")

    def _encode_batch_sync(self, texts: list[str]) -> np.ndarray:
        async def once():
            try:
                return await self._encode_batch(texts)
            finally:
                await self.aclose()  # this loop ends here

        return asyncio.run(once())

    def describe(self) -> str:
        return f"embeddings endpoint {self.url} ({self.model_name})"
