"""A circuit breaker for libvirt calls, so a wedged libvirtd costs one deadline, not one per call.

States:

- closed: calls go through. Each timeout adds one to a count of consecutive timeouts, and any
  completed call (success or an error that libvirtd returned) resets it. When the count
  reaches ``threshold`` the circuit opens.
- open: every call fails at once with ``CircuitOpen`` until ``cool_down`` seconds have passed
  since it opened.
- half-open: after the cool-down one call (the probe) goes through while the others still fail
  at once. The probe completing closes the circuit; the probe timing out opens it again for
  another cool-down.

The clock is injected so tests advance time instead of sleeping. All methods are called from
the event loop thread only, so the breaker needs no lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from agentic_sandbox.errors import RuntimeUnavailable

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 3
DEFAULT_COOL_DOWN_SECONDS = 30.0


class CircuitOpen(RuntimeUnavailable):
    """A call failed at once because the circuit is open.

    ``retry_after`` is the number of seconds until the circuit lets a call through again, which
    an HTTP API returns as ``Retry-After``.
    """

    reason = "RuntimeCircuitOpen"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CircuitBreaker:
    """Counts consecutive timeouts of one daemon's calls and fails calls fast while it is open."""

    def __init__(
        self,
        *,
        name: str,
        threshold: int = DEFAULT_THRESHOLD,
        cool_down: float = DEFAULT_COOL_DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold is {threshold}; expected at least 1")
        if cool_down <= 0:
            raise ValueError(f"cool_down is {cool_down}; expected a positive number of seconds")
        self.name = name
        self.threshold = threshold
        self.cool_down = cool_down
        self._clock = clock
        self._timeouts = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def open(self) -> bool:
        """Whether calls now fail at once: open and cooling down, or half-open with a probe out."""
        if self._opened_at is None:
            return False
        return self.retry_after > 0 or self._probe_in_flight

    @property
    def retry_after(self) -> float:
        """Seconds until the cool-down ends; 0 when closed or when the cool-down is over."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cool_down - self._clock())

    def before_call(self, operation: str) -> bool:
        """Raise CircuitOpen unless a call may go through; return True when it is the probe.

        The caller reports the outcome of a call that went through with ``record_success`` or
        ``record_timeout``, passing the value returned here.
        """
        if self._opened_at is None:
            return False
        remaining = self.retry_after
        if remaining > 0 or self._probe_in_flight:
            # While the probe is out, the next chance is when it times out or completes.
            retry_after = remaining if remaining > 0 else 1.0
            closes_at = datetime.now(UTC) + timedelta(seconds=retry_after)
            raise CircuitOpen(
                f"{self.name} {operation} was not attempted: the circuit is open after "
                f"{self.threshold} timed-out calls in a row, and the next call goes through at "
                f"{closes_at.isoformat(timespec='seconds')} (in {retry_after:.0f} s)",
                retry_after=retry_after,
            )
        self._probe_in_flight = True
        logger.info("circuit half-open, probing target=%s operation=%s", self.name, operation)
        return True

    def record_success(self, *, probe: bool) -> None:
        """Count a call that completed, with a result or an error the daemon returned."""
        if probe:
            self._probe_in_flight = False
        if self._opened_at is not None and (probe or not self._probe_in_flight):
            logger.info("circuit closed target=%s", self.name)
            self._opened_at = None
        self._timeouts = 0

    def record_timeout(self, *, probe: bool) -> None:
        """Count a call that missed its deadline; open the circuit at the threshold."""
        if probe:
            self._probe_in_flight = False
            self._open()
            return
        self._timeouts += 1
        if self._opened_at is None and self._timeouts >= self.threshold:
            self._open()

    def abandon(self, *, probe: bool) -> None:
        """Forget a call that ended without a verdict (cancelled, or no daemon listening)."""
        if probe:
            self._probe_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        logger.warning(
            "circuit opened target=%s timeouts=%d cool_down_seconds=%g",
            self.name,
            self._timeouts,
            self.cool_down,
        )
