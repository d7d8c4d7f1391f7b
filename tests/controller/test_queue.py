"""Work queue guarantees: dedupe, one worker per key, dirty re-adds, delays, shutdown."""

from __future__ import annotations

import asyncio

from agentic_sandbox.controller.backoff import (
    ExponentialBackoff,
    ManualClock,
    RetryLimiter,
    TokenBucket,
)
from agentic_sandbox.controller.queue import WorkQueue


def make_queue(clock: ManualClock) -> WorkQueue:
    limiter = RetryLimiter(
        ExponentialBackoff(base=1.0, cap=8.0, jitter=0.0),
        TokenBucket(rate=1000.0, burst=1000, clock=clock),
    )
    return WorkQueue(limiter, clock=clock)


async def test_add_dedupes_waiting_key() -> None:
    queue = make_queue(ManualClock())
    queue.add("default/a")
    queue.add("default/a")
    queue.add("default/b")
    assert len(queue) == 2
    assert await queue.get() == "default/a"
    assert await queue.get() == "default/b"


async def test_key_in_progress_not_handed_out_twice() -> None:
    queue = make_queue(ManualClock())
    queue.add("default/a")
    key = await queue.get()
    queue.add("default/a")
    assert len(queue) == 0
    assert queue.processing == 1
    queue.done(key or "")
    assert len(queue) == 1
    assert await queue.get() == "default/a"


async def test_done_without_readd_leaves_queue_empty() -> None:
    queue = make_queue(ManualClock())
    queue.add("default/a")
    key = await queue.get()
    queue.done(key or "")
    assert len(queue) == 0
    assert queue.processing == 0


async def test_get_waits_for_add() -> None:
    queue = make_queue(ManualClock())
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.add("default/a")
    assert await asyncio.wait_for(waiter, 1) == "default/a"


async def test_add_after_keeps_earliest_deadline() -> None:
    clock = ManualClock()
    queue = make_queue(clock)
    queue.add_after("default/a", 10)
    queue.add_after("default/a", 5)
    queue.add_after("default/a", 20)
    assert queue.delayed == 1
    clock.advance(4.9)
    assert queue.promote_due() == 0
    clock.advance(0.2)
    assert queue.promote_due() == 1
    assert len(queue) == 1
    clock.advance(30)
    assert queue.promote_due() == 0


async def test_plain_add_supersedes_delay() -> None:
    clock = ManualClock()
    queue = make_queue(clock)
    queue.add_after("default/a", 10)
    queue.add("default/a")
    assert await queue.get() == "default/a"
    queue.done("default/a")
    clock.advance(11)
    assert queue.promote_due() == 0
    assert len(queue) == 0


async def test_rate_limited_delays_grow_and_reset() -> None:
    queue = make_queue(ManualClock())
    delays = [queue.add_rate_limited("default/a") for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    queue.forget("default/a")
    assert queue.add_rate_limited("default/a") == 1.0


async def test_shutdown_releases_waiting_getters() -> None:
    queue = make_queue(ManualClock())
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shut_down()
    assert await asyncio.wait_for(waiter, 1) is None
    queue.add("default/a")
    assert len(queue) == 0


async def test_drain_waits_for_processing_keys() -> None:
    queue = make_queue(ManualClock())
    queue.add("default/a")
    key = await queue.get()
    queue.shut_down()
    assert await queue.drain(0.01) is False
    queue.done(key or "")
    assert await queue.drain(1) is True


async def test_real_timer_promotes_delayed_key() -> None:
    limiter = RetryLimiter(ExponentialBackoff(), TokenBucket(rate=10.0, burst=10))
    queue = WorkQueue(limiter)
    queue.add_after("default/a", 0.01)
    assert await asyncio.wait_for(queue.get(), 5) == "default/a"
