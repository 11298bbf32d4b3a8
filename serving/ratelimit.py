"""Limits on how fast one caller may go: a token bucket per bearer token, and a growing wait for an address
that keeps failing authentication.

Both live in one worker's memory (each worker limits on its own, so ``n`` workers allow up to ``n`` times
the rate), hold at most ``max_keys`` keys (the least recently seen is forgotten first, so a flood of
addresses cannot grow the worker), and take a ``clock`` so tests need not sleep.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimiter:
    """A token bucket per key (a token id): ``per_minute`` requests a minute on average, bursts up to ``burst``.

    >>> now = [0.0]
    >>> limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    >>> [limiter.allow("t1") for _ in range(3)]
    [(True, 0), (True, 0), (False, 1)]
    >>> now[0] += 1.0
    >>> limiter.allow("t1")
    (True, 0)
    """

    def __init__(self, per_minute: int = 600, burst: int | None = None, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        if per_minute < 1:
            raise ValueError(f"a rate limit is at least 1 request a minute (got {per_minute})")
        self.per_minute, self.burst, self.max_keys, self.clock = per_minute, burst, max_keys, clock
        self._capacity = float(burst or per_minute)
        self._per_second = per_minute / 60.0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """``(True, 0)`` and one request counted, or ``(False, seconds)``: the whole seconds until the next
        request of ``key`` would be allowed (the value of a ``Retry-After`` header, at least 1)."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._per_second)
            if tokens >= 1.0:
                self._remember(key, (tokens - 1.0, now))
                return True, 0
            self._remember(key, (tokens, now))
            return False, max(1, math.ceil((1.0 - tokens) / self._per_second))

    def _remember(self, key: str, value: tuple[float, float]) -> None:
        self._buckets[key] = value
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


class FailedAuthThrottle:
    """Failed authentications per client address: the first ``free`` within ``window_s`` seconds cost
    nothing; after that each failure makes the address wait ``base_s`` seconds, doubling with every further
    failure up to ``max_s``, counted from its last failure.

    >>> now = [0.0]
    >>> throttle = FailedAuthThrottle(free=2, base_s=1, clock=lambda: now[0])
    >>> [throttle.record_failure("10.0.0.9") for _ in range(4)]
    [1, 2, 3, 4]
    >>> throttle.delay("10.0.0.9"), throttle.delay("10.0.0.8")
    (2.0, 0.0)
    >>> now[0] += 1.5
    >>> throttle.delay("10.0.0.9")
    0.5
    """

    def __init__(self, free: int = 5, window_s: float = 300.0, base_s: float = 1.0, max_s: float = 60.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.free, self.window_s, self.base_s, self.max_s = free, window_s, base_s, max_s
        self.max_keys, self.clock = max_keys, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def record_failure(self, client: str) -> int:
        """Count a failed authentication from ``client``; return its failures within the window."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
            return len(times)

    def failures(self, client: str) -> int:
        """Failed authentications from ``client`` within the window."""
        with self._lock:
            times = self._recent(client, self.clock())
            if times:
                self._failures[client] = times
            return len(times)

    def delay(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next attempt is considered (0.0: go ahead)."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if times:
                self._failures[client] = times
            over = len(times) - self.free
            if over <= 0:
                return 0.0
            wait = min(self.max_s, self.base_s * 2.0 ** (over - 1))
            return max(0.0, times[-1] + wait - now)

    def _recent(self, client: str, now: float) -> deque[float]:
        """The client's failures within the window (popped from the map; the caller puts back what it keeps)."""
        times = self._failures.pop(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times
