"""One server or several: the replicas behind a judge (or an embedding) URL list.

``judge_url`` may name several OpenAI-compatible servers of the same model, as a comma list
(``http://a:8085/v1,http://b:8085/v1``) or a list. :class:`ReplicaPool` decides where each request
goes and which replicas are in service:

* **least loaded**: a request goes to the replica with the fewest requests in flight (ties: the
  one asked least). A replica that answers faster finishes sooner and so is given more: replicas
  of unequal speed are each kept busy, without measuring their speed;
* **health**: a replica that refuses a connection is taken out at once; one that times out,
  drops connections or answers 5xx (or unreadable bodies) ``eject_after`` times in a row is taken
  out too. It stays out for a cool-down (``cooldown`` seconds, doubled each time it fails again,
  up to ``cooldown_max``), then one request probes it: an answer brings it back, a failure sends it
  out for longer;
* **counts** per replica: requests, failed attempts, mean latency, ejections
  (:meth:`ReplicaPool.summary`).

The pool holds no connection and sends nothing; :class:`~medix_verl.clients.chat.ChatClient` asks it
where to send and tells it how each attempt went.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


class UrlListError(ValueError):
    """A URL list that cannot be used (an empty entry, a duplicate, no scheme or no port)."""


def parse_url_list(value: str | Iterable[str] | None, *, what: str = "judge_url") -> list[str]:
    """The URLs of ``value``: one URL, a comma list, or a list of URLs.

    A single URL is taken as it always was (``host:port`` means ``http://host:port``). In a list of
    several, each entry must name its scheme and port, since a typo in one of many is easy to miss:

    >>> parse_url_list("http://a:1/v1, http://b:2/v1")
    ['http://a:1/v1', 'http://b:2/v1']
    >>> parse_url_list(["http://a:1/v1"]), parse_url_list("127.0.0.1:8000")
    (['http://a:1/v1'], ['127.0.0.1:8000'])
    >>> parse_url_list("http://a:1/v1,,http://b:2/v1")
    Traceback (most recent call last):
    ...
    medix_verl.clients.pool.UrlListError: judge_url: entry 2 of 'http://a:1/v1,,http://b:2/v1' is empty
    >>> parse_url_list("http://a:1/v1,b:2/v1")
    Traceback (most recent call last):
    ...
    medix_verl.clients.pool.UrlListError: judge_url: 'b:2/v1' (entry 2) has no scheme: write it as http://HOST:PORT/v1
    """
    if value is None:
        return []
    raw = value if not isinstance(value, str) else value.split(",")
    entries = [str(u).strip() for u in raw]
    shown = value if isinstance(value, str) else ",".join(entries)
    for i, entry in enumerate(entries, 1):
        if not entry:
            raise UrlListError(f"{what}: entry {i} of {shown!r} is empty")
    if len(entries) > 1:
        for i, entry in enumerate(entries, 1):
            parts = urlsplit(entry)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UrlListError(f"{what}: {entry!r} (entry {i}) has no scheme: write it as http://HOST:PORT/v1")
            try:
                port = parts.port
            except ValueError:
                port = None
            if port is None:
                raise UrlListError(f"{what}: {entry!r} (entry {i}) has no port: write it as http://HOST:PORT/v1")
    from .chat import normalize_base_url

    seen: dict[str, int] = {}
    for i, entry in enumerate(entries, 1):
        key = normalize_base_url(entry)
        if key in seen:
            raise UrlListError(f"{what}: {entry!r} (entry {i}) repeats entry {seen[key]}")
        seen[key] = i
    return entries


@dataclass
class Replica:
    """One server of the pool and what was seen of it."""

    index: int
    url: str  # the OpenAI base URL (.../v1)
    in_flight: int = 0
    requests: int = 0  # attempts sent
    failures: int = 0  # attempts that failed (transport, 5xx, unreadable)
    successes: int = 0
    latency_sum: float = 0.0
    ejections: int = 0
    consecutive_failures: int = 0
    out_until: float | None = None  # monotonic time it may be probed again; None: in service
    probing: bool = False  # one request is testing it after a cool-down
    cooldown: float = 0.0
    last_error: str | None = None

    @property
    def in_service(self) -> bool:
        return self.out_until is None

    def as_dict(self) -> dict:
        return {
            "url": self.url,
            "requests": self.requests,
            "errors": self.failures,
            "latency_mean_s": self.latency_sum / self.successes if self.successes else 0.0,
            "ejections": self.ejections,
            "in_service": self.in_service,
            "last_error": self.last_error,
        }


class ReplicaPool:
    """Where each request goes, among ``urls`` (see the module docstring).

    >>> pool = ReplicaPool(["http://a:1/v1", "http://b:1/v1"], clock=lambda: 0.0)
    >>> first = pool.acquire(); second = pool.acquire()   # the least loaded each time
    >>> (first.index, second.index)
    (0, 1)
    >>> pool.release(first, ok=True, latency=0.1); pool.acquire().index   # a is free again first
    0
    >>> pool.failed(second, "connection refused", connect=True); pool.acquire().index  # b is out
    0
    """

    def __init__(
        self,
        urls: list[str],
        *,
        eject_after: int = 3,
        cooldown: float = 2.0,
        cooldown_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not urls:
            raise UrlListError("no URL given")
        self.replicas = [Replica(i, url) for i, url in enumerate(urls)]
        self.eject_after = int(eject_after)
        self.base_cooldown = float(cooldown)
        self.cooldown_max = float(cooldown_max)
        self.clock = clock

    def __len__(self) -> int:
        return len(self.replicas)

    # ------------------------------------------------------------------ routing
    def candidates(self, exclude: Iterable[int] = ()) -> list[Replica]:
        """Replicas a request may go to now: those in service, and those whose cool-down is over
        and that no other request is probing."""
        now = self.clock()
        skip = set(exclude)
        return [
            r for r in self.replicas if r.index not in skip and (r.in_service or (r.out_until <= now and not r.probing))
        ]

    def acquire(self, exclude: Iterable[int] = ()) -> Replica | None:
        """The replica for the next attempt (counted as in flight), or None if none may be asked."""
        if len(self.replicas) == 1:  # the hot path of one server: it is never out
            replica = self.replicas[0]
            if exclude and 0 in exclude:
                return None
            replica.in_flight += 1
            replica.requests += 1
            return replica
        options = self.candidates(exclude)
        if not options:
            return None
        replica = min(options, key=lambda r: (r.in_flight, r.requests))
        if not replica.in_service:
            replica.probing = True
        replica.in_flight += 1
        replica.requests += 1
        return replica

    def release(self, replica: Replica, *, ok: bool, latency: float = 0.0) -> None:
        """An attempt on ``replica`` ended; ``ok``: the replica answered (whatever it answered)."""
        replica.in_flight -= 1
        if ok:
            replica.successes += 1
            replica.latency_sum += latency
            replica.consecutive_failures = 0
            if not replica.in_service:  # it answered (a probe, or a request sent before it went out)
                replica.out_until, replica.probing, replica.cooldown = None, False, 0.0

    def failed(self, replica: Replica, error: str, *, connect: bool = False) -> None:
        """An attempt on ``replica`` failed in a way that says something about the replica (not
        about the request): refused (``connect``), dropped, timed out, 5xx, unreadable."""
        replica.in_flight -= 1
        replica.failures += 1
        replica.consecutive_failures += 1
        replica.last_error = error
        if len(self.replicas) == 1:  # nothing to send its requests to instead: never out
            return
        if replica.probing:  # a failed probe: out again, for longer
            replica.probing = False
            self._eject(replica)
        elif replica.in_service and (connect or replica.consecutive_failures >= self.eject_after):
            self._eject(replica)

    def _eject(self, replica: Replica) -> None:
        if replica.in_service:
            replica.ejections += 1
        replica.cooldown = min(self.cooldown_max, replica.cooldown * 2 if replica.cooldown else self.base_cooldown)
        replica.out_until = self.clock() + replica.cooldown

    # ------------------------------------------------------------------ state
    def in_service(self) -> list[Replica]:
        return [r for r in self.replicas if r.in_service]

    def all_out(self) -> bool:
        return not self.in_service()

    def next_probe_in(self) -> float:
        """Seconds until a replica that is out may be probed (0 if one may be now)."""
        now = self.clock()
        waits = [max(0.0, r.out_until - now) for r in self.replicas if not r.in_service and not r.probing]
        return min(waits) if waits else 0.0

    def describe_out(self) -> str:
        """Every replica and its last error, for a message when none is left."""
        return "; ".join(f"{r.url}: {r.last_error or 'no answer'}" for r in self.replicas)

    def summary(self, counts: bool = False) -> list[dict]:
        """Per replica: URL, requests, errors, mean latency, ejections, in service, last error;
        with ``counts``, also the raw sums (``successes``, ``latency_sum_s``) that add up across
        clients."""
        out = [r.as_dict() for r in self.replicas]
        if counts:
            for row, r in zip(out, self.replicas):
                row.update(successes=r.successes, latency_sum_s=r.latency_sum)
        return out
