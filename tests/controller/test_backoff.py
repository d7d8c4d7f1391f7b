"""Backoff and the global token bucket, driven by a manual clock."""

from __future__ import annotations

import pytest

from agentic_sandbox.controller.backoff import ExponentialBackoff, ManualClock, TokenBucket


def test_backoff_doubles_to_cap() -> None:
    backoff = ExponentialBackoff(base=0.5, cap=3.0, jitter=0.0)
    assert [backoff.next_delay("k") for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_keys_independent() -> None:
    backoff = ExponentialBackoff(base=1.0, cap=10.0, jitter=0.0)
    backoff.next_delay("a")
    backoff.next_delay("a")
    assert backoff.next_delay("b") == 1.0
    assert backoff.failures("a") == 2


def test_backoff_jitter_stays_in_band() -> None:
    values = iter([0.0, 1.0])
    backoff = ExponentialBackoff(base=10.0, cap=100.0, jitter=0.2, rng=lambda: next(values))
    assert backoff.next_delay("a") == pytest.approx(8.0)
    backoff.reset("a")
    assert backoff.next_delay("a") == pytest.approx(12.0)


def test_token_bucket_bursts_then_spaces() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)
    clock.advance(10)
    assert bucket.reserve() == 0.0


def test_token_bucket_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
