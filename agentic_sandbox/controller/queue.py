"""The work queue of instance keys.

Guarantees:

- A key waiting in the queue is stored once, however often it is added (dedupe).
- A key is never handed to two workers at once. A key added while a worker processes it is marked
  dirty and handed out again after the worker calls ``done``, so a change during a reconcile is
  never lost.
- Keys come out in the order they first became ready (FIFO).
- ``add_after`` keeps, for each key, only the earliest pending deadline.
- ``add_rate_limited`` delays a key by its own exponential backoff and the global token bucket;
  ``forget`` resets the key's backoff after a success.
- After ``shut_down`` no key is handed out: ``get`` returns None, and ``drain`` waits, up to a
  deadline, for the keys that workers still hold.

All methods must be called from the event loop thread. Producers in other threads use
``loop.call_soon_threadsafe(queue.add, key)``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque

from agentic_sandbox.controller.backoff import Clock, MonotonicClock, RetryLimiter


class WorkQueue:
    def __init__(self, limiter: RetryLimiter, *, clock: Clock | None = None) -> None:
        self._limiter = limiter
        self._clock = clock or MonotonicClock()
        self._ready: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiting: list[tuple[float, int, str]] = []
        self._deadline_of: dict[str, float] = {}
        self._sequence = 0
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._timer: asyncio.TimerHandle | None = None
        self._shutting_down = False
        self.adds = 0
        self.retries = 0

    # Producers.

    def add(self, key: str) -> None:
        if self._shutting_down:
            return
        self.adds += 1
        self._deadline_of.pop(key, None)
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._ready.append(key)
        self._changed.set()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        deadline = self._clock.now() + delay
        current = self._deadline_of.get(key)
        if current is not None and current <= deadline:
            return
        self._deadline_of[key] = deadline
        self._sequence += 1
        heapq.heappush(self._waiting, (deadline, self._sequence, key))
        self._arm_timer()

    def add_rate_limited(self, key: str) -> float:
        """Requeue ``key`` after its backoff delay, which is returned."""
        self.retries += 1
        delay = self._limiter.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self._limiter.forget(key)

    def failures(self, key: str) -> int:
        return self._limiter.failures(key)

    # Consumers.

    async def get(self) -> str | None:
        """Wait for the next ready key; None once the queue is shut down."""
        while not self._ready:
            if self._shutting_down:
                return None
            self._changed.clear()
            await self._changed.wait()
        if self._shutting_down:
            return None
        key = self._ready.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        self._idle.clear()
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._ready.append(key)
            self._changed.set()
        if not self._processing:
            self._idle.set()

    # Time.

    def promote_due(self) -> int:
        """Move every delayed key whose deadline has passed to the ready queue."""
        now = self._clock.now()
        promoted = 0
        while self._waiting and self._waiting[0][0] <= now:
            deadline, _, key = heapq.heappop(self._waiting)
            if self._deadline_of.get(key) != deadline:
                continue  # superseded by an earlier deadline or by a plain add
            del self._deadline_of[key]
            self.add(key)
            promoted += 1
        self._arm_timer()
        return promoted

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting and self._deadline_of.get(self._waiting[0][2]) != self._waiting[0][0]:
            heapq.heappop(self._waiting)
        if not self._waiting or self._shutting_down:
            return
        delay = max(0.0, self._waiting[0][0] - self._clock.now())
        self._timer = asyncio.get_running_loop().call_later(delay, self.promote_due)

    # Shutdown and inspection.

    def shut_down(self) -> None:
        self._shutting_down = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._changed.set()

    async def drain(self, grace_seconds: float) -> bool:
        """Wait until no key is being processed; False when ``grace_seconds`` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            return False
        return True

    @property
    def depth(self) -> int:
        return len(self._ready)

    @property
    def delayed(self) -> int:
        return len(self._deadline_of)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def __len__(self) -> int:
        return len(self._ready)
