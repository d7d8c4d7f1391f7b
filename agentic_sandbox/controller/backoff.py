"""Retry delays: per-key exponential backoff with jitter, and a global token bucket.

Both take an injected clock so tests advance time instead of sleeping. They live apart from the
queue, which only requests a delay from them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when a test calls ``advance``."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class ExponentialBackoff:
    """Per-key delays of ``base * 2**failures``, capped, with multiplicative jitter.

    ``jitter=0.2`` spreads each delay uniformly over [0.8, 1.2] of its nominal value, so that many
    keys failing together do not retry in lockstep. ``reset`` clears a key after a success.
    """

    def __init__(
        self,
        *,
        base: float = 0.05,
        cap: float = 60.0,
        jitter: float = 0.2,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rng = rng
        self._failures: dict[str, int] = {}

    def next_delay(self, key: str) -> float:
        """Count one more failure for ``key`` and return how long to wait before retrying it."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        nominal = min(self.cap, self.base * 2.0 ** min(failures, 62))
        spread = 1.0 + self.jitter * (2.0 * self._rng() - 1.0)
        return min(self.cap, nominal * spread)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


class TokenBucket:
    """A global rate cap: ``rate`` tokens per second, bursts of up to ``burst``.

    ``reserve`` takes a token now or books the next free one and returns the wait until then, so
    callers never block: they schedule the work after the returned delay.
    """

    def __init__(self, *, rate: float, burst: int, clock: Clock | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate {rate} and burst {burst} must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock or MonotonicClock()
        self._tokens = float(burst)
        self._updated = self._clock.now()

    def reserve(self) -> float:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate


class RetryLimiter:
    """The delay for a failed key: the larger of its own backoff and the global bucket's wait."""

    def __init__(self, backoff: ExponentialBackoff, bucket: TokenBucket) -> None:
        self.backoff = backoff
        self.bucket = bucket

    def when(self, key: str) -> float:
        return max(self.backoff.next_delay(key), self.bucket.reserve())

    def forget(self, key: str) -> None:
        self.backoff.reset(key)

    def failures(self, key: str) -> int:
        return self.backoff.failures(key)
