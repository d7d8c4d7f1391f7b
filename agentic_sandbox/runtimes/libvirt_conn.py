"""The libvirt driver's connection: one shared virConnect, a worker pool, deadlines, a circuit.

libvirt-python is synchronous, so every call runs on a bounded thread pool and is awaited with
a deadline (``call_timeout``). A call that misses it raises RuntimeTimeout. Repeated timeouts
open a ``CircuitBreaker``, and while it is open calls fail at once with ``CircuitOpen``, so
nothing waits on a wedged libvirtd.

The connection is opened lazily, with libvirt's event loop running (``libvirt_events``), a
keepalive, a close callback and one lifecycle callback. When libvirtd goes away (restart,
crash, keepalive timeout, or a call failing in the RPC layer) the connection is discarded,
every lifecycle subscription ends with RuntimeUnavailable, and the next call opens a new one.

Connection failures leave here as RuntimeUnavailable, chained with ``from``. Any other
``libvirtError`` passes through, because what an error code means depends on the operation;
the caller maps it, falling back to ``api_error``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import libvirt

from agentic_sandbox.errors import RuntimeAPIError, RuntimeTimeout, RuntimeUnavailable
from agentic_sandbox.runtimes.libvirt_circuit import CircuitBreaker
from agentic_sandbox.runtimes.libvirt_events import (
    LifecycleEvent,
    LifecycleHub,
    ensure_event_loop,
    lifecycle_event,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# libvirtd is declared dead after this many unanswered keepalive messages, this far apart.
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3

# Error domains and codes that mean the connection itself failed, not the operation.
_CONNECTION_ERROR_DOMAINS = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})
_CONNECTION_ERROR_CODES = frozenset(
    {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC}
)
_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "end of file",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "keepalive timeout",
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed by the client",
}


def error_message(exc: libvirt.libvirtError) -> str:
    """Return libvirt's own message for a failed call."""
    return exc.get_error_message() or str(exc)


def api_error(operation: str, exc: libvirt.libvirtError) -> RuntimeAPIError:
    return RuntimeAPIError(
        f"libvirt {operation} failed with error code {exc.get_error_code()}: {error_message(exc)}"
    )


def is_connection_error(exc: libvirt.libvirtError) -> bool:
    return (
        exc.get_error_domain() in _CONNECTION_ERROR_DOMAINS
        or exc.get_error_code() in _CONNECTION_ERROR_CODES
    )


class LibvirtConnection:
    """A lazily opened virConnect shared by a bounded pool of worker threads."""

    def __init__(
        self,
        *,
        uri: str,
        call_timeout: float,
        max_workers: int,
        circuit: CircuitBreaker,
        hub: LifecycleHub,
        on_lifecycle: Callable[[LifecycleEvent], None] | None = None,
    ) -> None:
        """``on_lifecycle`` runs on libvirt's event thread for every lifecycle event; it must
        not block or call libvirt."""
        self.uri = uri
        self.call_timeout = call_timeout
        self.circuit = circuit
        self.hub = hub
        self._on_lifecycle = on_lifecycle
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="libvirt-call")
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(
        self,
        operation: str,
        call: Callable[[libvirt.virConnect], T],
        *,
        extra_timeout: float = 0.0,
    ) -> T:
        """Run ``call`` on the worker pool with a deadline of ``call_timeout + extra_timeout``.

        Raises CircuitOpen at once while the circuit is open. The deadline includes the wait for
        a free worker. A call that misses its deadline keeps running on its thread until
        libvirt's keepalive ends it, so its effect (a domain defined, say) may still happen.
        Callers re-observe.
        """
        if self._closed:
            raise RuntimeUnavailable("the libvirt runtime is closed")
        probe = self.circuit.before_call(operation)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self.run_sync, operation, call)
        deadline = self.call_timeout + extra_timeout
        try:
            result = await asyncio.wait_for(future, deadline)
        except TimeoutError as exc:
            self.circuit.record_timeout(probe=probe)
            raise RuntimeTimeout(
                f"libvirt {operation} timed out after {deadline:g} s at {self.uri}"
            ) from exc
        except asyncio.CancelledError:
            self.circuit.abandon(probe=probe)
            raise
        except RuntimeUnavailable:
            # No libvirtd is listening, which is not a sign of a wedged daemon.
            self.circuit.abandon(probe=probe)
            raise
        except Exception:
            self.circuit.record_success(probe=probe)
            raise
        self.circuit.record_success(probe=probe)
        return result

    def run_sync(self, operation: str, call: Callable[[libvirt.virConnect], T]) -> T:
        """Run ``call`` on the current thread with the shared connection. Blocks."""
        conn = self._get_conn()
        try:
            return call(conn)
        except libvirt.libvirtError as exc:
            if not is_connection_error(exc):
                raise
            self._discard(conn, f"{operation} failed: {error_message(exc)}")
            raise RuntimeUnavailable(
                f"libvirtd at {self.uri} is unavailable: {operation} failed: {error_message(exc)}"
            ) from exc

    def submit(self, operation: str, call: Callable[[libvirt.virConnect], object]) -> None:
        """Run ``call`` in the background on the worker pool and log a failure. Any thread may
        call this; it neither waits nor counts toward the circuit."""

        def run() -> None:
            try:
                self.run_sync(operation, call)
            except (libvirt.libvirtError, RuntimeUnavailable) as exc:
                logger.warning(
                    "libvirt background call failed operation=%s uri=%s error=%s",
                    operation,
                    self.uri,
                    exc,
                )

        if self._closed:
            return
        try:
            self._executor.submit(run)
        except RuntimeError:
            pass  # the pool shut down between the check and the submit

    def close(self) -> None:
        """Reject new calls, end subscriptions and close the connection. Running calls finish."""
        self._closed = True
        with self._lock:
            conn, self._conn = self._conn, None
        self.hub.fail_all(RuntimeUnavailable("the libvirt runtime is closed"))
        if conn is not None:
            self._executor.submit(_close_quietly, conn)
        self._executor.shutdown(wait=False, cancel_futures=False)

    def _get_conn(self) -> libvirt.virConnect:
        # The lock guards only the check and the swap, never the open, which can block for as
        # long as libvirtd takes to respond. Two threads may open at once after an outage, and
        # the later one closes its spare.
        with self._lock:
            if self._closed:
                raise RuntimeUnavailable("the libvirt runtime is closed")
            if self._conn is not None:
                return self._conn
        conn = self._open()

        with self._lock:
            if not self._closed and self._conn is None:
                self._conn = conn
                logger.info("libvirt connection opened uri=%s", self.uri)
                return conn
            current = None if self._closed else self._conn
        _close_quietly(conn)
        if current is None:
            raise RuntimeUnavailable("the libvirt runtime is closed")
        return current

    def _open(self) -> libvirt.virConnect:
        ensure_event_loop()
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise RuntimeUnavailable(
                f"libvirtd at {self.uri} is unavailable: {error_message(exc)}"
            ) from exc
        try:
            conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle_callback, None
            )
        except libvirt.libvirtError as exc:
            _close_quietly(conn)
            raise RuntimeUnavailable(
                f"libvirtd at {self.uri} rejected the lifecycle event subscription: "
                f"{error_message(exc)}"
            ) from exc
        _register_optional(
            conn, self.uri, lambda: conn.setKeepAlive(KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT)
        )
        _register_optional(
            conn, self.uri, lambda: conn.registerCloseCallback(self._close_callback, None)
        )
        return conn

    def _discard(self, conn: libvirt.virConnect, reason: str) -> None:
        with self._lock:
            if self._conn is not conn:
                return
            self._conn = None
        logger.warning("libvirt connection lost uri=%s reason=%s", self.uri, reason)
        self.hub.fail_all(RuntimeUnavailable(f"libvirt connection to {self.uri} lost: {reason}"))
        if not self._closed:
            self._executor.submit(_close_quietly, conn)

    # The two callbacks below run on libvirt's event loop thread and must not call libvirt.

    def _lifecycle_callback(
        self,
        _conn: libvirt.virConnect,
        domain: libvirt.virDomain,
        event: int,
        detail: int,
        _opaque: object,
    ) -> None:
        item = lifecycle_event(domain, event, detail)
        self.hub.publish(item)
        if self._on_lifecycle is not None:
            self._on_lifecycle(item)

    def _close_callback(self, conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        self._discard(conn, f"connection closed ({_CLOSE_REASONS.get(reason, str(reason))})")


def _register_optional(conn: libvirt.virConnect, uri: str, register: Callable[[], object]) -> None:
    """Run a registration that drivers without a daemon (such as ``test:///``) do not support."""
    try:
        register()
    except libvirt.libvirtError as exc:
        logger.debug("libvirt option not supported uri=%s error=%s", uri, error_message(exc))


def _close_quietly(conn: libvirt.virConnect) -> None:
    try:
        conn.close()
    except libvirt.libvirtError as exc:
        logger.debug("libvirt connection already closed error=%s", error_message(exc))
