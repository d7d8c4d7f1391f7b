"""Which agents are expected, which are connected, and whether their heartbeats are fresh.

The tracker is the meeting point of the reconciler and the agent gRPC server, and it never
writes to the store:

- The reconciler publishes, for each sandbox it observes, the agent it expects there (``expect``)
  and withdraws it when the sandbox is gone (``forget``). A new sandbox brings a new secret
  digest, so the agent of a replaced sandbox can no longer authenticate.
- The agent server authenticates agents against those expectations and reports connections,
  heartbeats and disconnections.
- Every change that can move the AgentConnected condition enqueues the instance key; the
  reconciler then reads ``observe`` and writes status with its usual compare-and-set rules.

Heartbeat freshness is checked by one timer per connection, armed for the moment the latest
heartbeat would go stale. It enqueues the key once when that moment passes without a newer
heartbeat, so silence is noticed without any polling loop. All methods run on the event loop
thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agentic_sandbox.controller.agent_identity import verify_secret
from agentic_sandbox.crds.meta import utcnow

logger = logging.getLogger(__name__)

# The agent sends a heartbeat at this interval; one is stale after this many intervals.
DEFAULT_HEARTBEAT_INTERVAL = 10.0
STALE_AFTER_INTERVALS = 3
# Why a stream closes when the same agent opened a newer one.
RECONNECTED = "the agent opened a new connection"


@dataclass(frozen=True)
class ExpectedAgent:
    """The agent the controller expects in the current sandbox of one instance."""

    key: str
    uid: str
    agent_id: str
    sandbox_id: str
    secret_digest: str


@dataclass
class AgentConnection:
    """One authenticated stream. ``close`` ends the stream with the given reason."""

    connection_id: str
    expected: ExpectedAgent
    close: Callable[[str], None]
    connected_at: datetime
    last_heartbeat_at: datetime
    last_heartbeat_monotonic: float
    hostname: str = ""
    version: str = ""
    # Capabilities the agent reported when it registered, such as "exec" or "pty".
    capabilities: tuple[str, ...] = ()
    stale: bool = False
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AgentObservation:
    """What the status builder needs about an instance's agent at one moment."""

    agent_id: str
    connected: bool
    fresh: bool
    reason: str
    message: str
    connected_at: datetime | None = None
    last_heartbeat_at: datetime | None = None


class AgentTracker:
    def __init__(
        self,
        *,
        enqueue: Callable[[str], None],
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._enqueue = enqueue
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_interval * STALE_AFTER_INTERVALS
        self._clock = clock
        self._monotonic = monotonic
        self._expected_by_id: dict[str, ExpectedAgent] = {}
        self._expected_by_key: dict[str, ExpectedAgent] = {}
        self._connections: dict[str, AgentConnection] = {}
        # Why the last connection of a key ended, kept until the next one starts.
        self._last_disconnect: dict[str, str] = {}

    # The reconciler's side.

    def expect(self, expected: ExpectedAgent) -> None:
        """Record the agent expected in an instance's current sandbox.

        When the sandbox changed, a connection from the previous sandbox's agent is closed.
        """
        previous = self._expected_by_key.get(expected.key)
        if previous == expected:
            return
        if previous is not None:
            self._expected_by_id.pop(previous.agent_id, None)
            self._drop(expected.key, "the sandbox was replaced")
        self._expected_by_key[expected.key] = expected
        self._expected_by_id[expected.agent_id] = expected

    def forget(self, key: str) -> None:
        """Withdraw the expectation of ``key`` (its sandbox is gone) and close its connection."""
        previous = self._expected_by_key.pop(key, None)
        if previous is not None:
            self._expected_by_id.pop(previous.agent_id, None)
        self._drop(key, "the sandbox is gone")
        self._last_disconnect.pop(key, None)

    def observe(self, key: str) -> AgentObservation | None:
        """Return the agent facts of ``key``, or None when no agent is expected there."""
        expected = self._expected_by_key.get(key)
        if expected is None:
            return None
        connection = self._connections.get(key)
        if connection is None:
            reason = self._last_disconnect.get(key)
            message = (
                f"agent {expected.agent_id} disconnected: {reason}"
                if reason
                else f"agent {expected.agent_id} has not connected yet"
            )
            return AgentObservation(
                agent_id=expected.agent_id,
                connected=False,
                fresh=False,
                reason="Disconnected" if reason else "NotConnected",
                message=message,
            )
        silence = self._monotonic() - connection.last_heartbeat_monotonic
        fresh = silence < self.heartbeat_timeout
        message = f"agent {expected.agent_id} is connected from {connection.hostname or '?'}"
        if not fresh:
            message = (
                f"agent {expected.agent_id} sent no heartbeat for {silence:.0f} s "
                f"(limit {self.heartbeat_timeout:.0f} s)"
            )
        return AgentObservation(
            agent_id=expected.agent_id,
            connected=True,
            fresh=fresh,
            reason="Connected" if fresh else "HeartbeatTimeout",
            message=message,
            connected_at=connection.connected_at,
            last_heartbeat_at=connection.last_heartbeat_at,
        )

    # The agent server's side.

    def authenticate(self, agent_id: str, secret: str) -> ExpectedAgent | None:
        """Return the expectation that ``agent_id`` and ``secret`` prove, or None."""
        expected = self._expected_by_id.get(agent_id)
        digest = expected.secret_digest if expected is not None else None
        if not verify_secret(secret, digest):
            return None
        return expected

    def connect(
        self,
        expected: ExpectedAgent,
        *,
        connection_id: str,
        close: Callable[[str], None],
        hostname: str = "",
        version: str = "",
        capabilities: tuple[str, ...] = (),
    ) -> bool:
        """Record an authenticated, registered stream; return False when it is out of date.

        A stream whose expectation was replaced while it registered is rejected. An older
        stream of the same instance is closed: the agent reconnected.
        """
        if self._expected_by_key.get(expected.key) != expected:
            return False
        self._drop(expected.key, RECONNECTED, enqueue=False)
        now = self._clock()
        connection = AgentConnection(
            connection_id=connection_id,
            expected=expected,
            close=close,
            connected_at=now,
            last_heartbeat_at=now,
            last_heartbeat_monotonic=self._monotonic(),
            hostname=hostname,
            version=version,
            capabilities=capabilities,
        )
        self._connections[expected.key] = connection
        self._last_disconnect.pop(expected.key, None)
        self._arm(connection)
        self._enqueue(expected.key)
        return True

    def heartbeat(self, key: str, connection_id: str) -> None:
        connection = self._connections.get(key)
        if connection is None or connection.connection_id != connection_id:
            return
        connection.last_heartbeat_at = self._clock()
        connection.last_heartbeat_monotonic = self._monotonic()
        if connection.stale:
            connection.stale = False
            logger.info("agent heartbeat resumed instance=%s", key)
            self._enqueue(key)
        if connection.timer is None:
            self._arm(connection)

    def disconnect(self, key: str, connection_id: str, reason: str) -> bool:
        """Record the end of a stream; return False when a newer stream had replaced it."""
        connection = self._connections.get(key)
        if connection is None or connection.connection_id != connection_id:
            return False
        self._cancel_timer(connection)
        del self._connections[key]
        self._last_disconnect[key] = reason
        self._enqueue(key)
        return True

    def expected(self, key: str) -> ExpectedAgent | None:
        """Return the agent expected in the current sandbox of ``key``, or None."""
        return self._expected_by_key.get(key)

    def connection(self, key: str) -> AgentConnection | None:
        return self._connections.get(key)

    def is_stale(self, key: str) -> bool:
        """Return whether the agent of ``key`` is connected but has missed its heartbeats."""
        connection = self._connections.get(key)
        return connection is not None and connection.stale

    def connected_keys(self) -> list[str]:
        return sorted(self._connections)

    def close_all(self, reason: str) -> None:
        for key in list(self._connections):
            self._drop(key, reason, enqueue=False)

    # Internals.

    def _drop(self, key: str, reason: str, *, enqueue: bool = True) -> None:
        connection = self._connections.pop(key, None)
        if connection is None:
            return
        self._cancel_timer(connection)
        self._last_disconnect[key] = reason
        connection.close(reason)
        if enqueue:
            self._enqueue(key)

    def _arm(self, connection: AgentConnection) -> None:
        """Arm the connection's timer for the moment its latest heartbeat goes stale."""
        due = connection.last_heartbeat_monotonic + self.heartbeat_timeout - self._monotonic()
        loop = asyncio.get_running_loop()
        connection.timer = loop.call_later(max(0.0, due), self._check_stale, connection)

    def _check_stale(self, connection: AgentConnection) -> None:
        connection.timer = None
        key = connection.expected.key
        if self._connections.get(key) is not connection:
            return
        silence = self._monotonic() - connection.last_heartbeat_monotonic
        if silence < self.heartbeat_timeout:
            self._arm(connection)  # a heartbeat arrived since the timer was armed
            return
        connection.stale = True
        logger.warning(
            "agent heartbeat stale instance=%s agent_id=%s silence=%.1fs",
            key,
            connection.expected.agent_id,
            silence,
        )
        self._enqueue(key)

    @staticmethod
    def _cancel_timer(connection: AgentConnection) -> None:
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
