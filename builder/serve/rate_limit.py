"""A token bucket per caller (a session's user, or an IP address), kept by the app.

In memory and per process: with several processes behind a load balancer each allows
its own rate, which bounds a flood without making the limit exact. Only the event loop
calls it (from async handlers), so it needs no lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """`capacity` requests at once, refilled at `per_second`. At most `max_callers`
    buckets are kept: the least recently seen caller is forgotten first (it comes back
    with a full bucket), so a flood of addresses cannot grow memory without bound."""

    def __init__(self, capacity: float, per_second: float, *, max_callers: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or per_second <= 0:
            raise ValueError("a bucket holds at least one request and refills at a positive rate")
        self.capacity = capacity
        self.per_second = per_second
        self.max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str) -> float:
        """Take one token for `caller`: 0.0 when the request may go ahead, otherwise the
        seconds until a token is back (for Retry-After)."""
        now = self._clock()
        bucket = self._buckets.pop(caller, None) or _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        self._buckets[caller] = bucket  # most recently seen last
        if len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_second
