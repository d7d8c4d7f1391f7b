"""Tracking instances that hit a terminal error, so they are retried slowly, not in a hot loop.

A terminal error (image missing, command not found, invalid mount) will not go away by retrying at
once. The tracker spaces attempts 30 s, 60 s, 120 s and so on up to 5 min, and clears the
instance as soon as its spec changes (a new generation) or an attempt succeeds. Runtime events
for a stalled instance therefore do not cause new attempts before the delay is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

STALL_BASE_SECONDS = 30.0
STALL_CAP_SECONDS = 300.0


@dataclass
class _Stall:
    generation: int | None
    attempts: int
    retry_at: datetime
    # Identity of the observed failure (such as a sandbox's exit time), so one failure seen by
    # several reconciles is counted once.
    failure_id: str | None = None


class StallTracker:
    def __init__(self) -> None:
        self._stalls: dict[str, _Stall] = {}

    def record(
        self, key: str, generation: int | None, now: datetime, failure_id: str | None = None
    ) -> float:
        """Count a terminal failure and return the seconds to wait before the next attempt."""
        stall = self._stalls.get(key)
        attempts = 1 if stall is None or stall.generation != generation else stall.attempts + 1
        delay = min(STALL_CAP_SECONDS, STALL_BASE_SECONDS * 2.0 ** (attempts - 1))
        retry_at = now + timedelta(seconds=delay)
        self._stalls[key] = _Stall(generation, attempts, retry_at, failure_id)
        return delay

    def seen(self, key: str, generation: int | None, failure_id: str) -> bool:
        """Tell whether this failure of this generation was already counted."""
        stall = self._stalls.get(key)
        return (
            stall is not None and stall.generation == generation and stall.failure_id == failure_id
        )

    def is_first(self, key: str) -> bool:
        stall = self._stalls.get(key)
        return stall is not None and stall.attempts == 1

    def remaining(self, key: str, generation: int | None, now: datetime) -> float | None:
        """Seconds until the next attempt is due, or None when the key may be reconciled now."""
        stall = self._stalls.get(key)
        if stall is None or stall.generation != generation or now >= stall.retry_at:
            return None
        return (stall.retry_at - now).total_seconds()

    def clear(self, key: str) -> None:
        self._stalls.pop(key, None)

    def __len__(self) -> int:
        return len(self._stalls)
