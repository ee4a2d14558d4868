"""The one retry policy of the HTTP clients (chat and remote embeddings).

Transient failures only: refused or reset connections, timeouts, HTTP 408, 429 and 5xx. Attempt
``k`` (0-based) waits ``min(backoff_max, backoff * 2**k)`` times a random factor in [0.5, 1.5], or
the server's ``Retry-After`` when that is longer (capped at ``4 * backoff_max``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying.

    >>> is_transient_status(503), is_transient_status(429), is_transient_status(404)
    (True, True, False)
    """
    return status in TRANSIENT_STATUS


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a transient failure.

    >>> policy = RetryPolicy(retries=2, backoff=1.0, backoff_max=3.0)
    >>> [policy.should_retry(k) for k in range(3)]
    [True, True, False]
    >>> 1.5 <= policy.delay(5) <= 4.5 and policy.delay(0, retry_after=10.0) == 10.0
    True
    """

    retries: int = 3
    backoff: float = 0.5
    backoff_max: float = 8.0

    def __post_init__(self):
        if self.retries < 0 or self.backoff < 0 or self.backoff_max < 0:
            raise ValueError(f"invalid retry policy: {self}")

    def should_retry(self, attempt: int) -> bool:
        """True if a transient failure of attempt ``attempt`` (0-based) gets another attempt."""
        return attempt < self.retries

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``."""
        delay = min(self.backoff_max, self.backoff * (2**attempt)) * random.uniform(0.5, 1.5)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max * 4))
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by inference servers).

    >>> parse_retry_after("2"), parse_retry_after(None), parse_retry_after("Wed, 21 Oct 2015")
    (2.0, None, None)
    """
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
