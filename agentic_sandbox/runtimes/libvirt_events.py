"""libvirt's event loop thread and the fan-out of domain lifecycle events to asyncio consumers.

libvirt delivers events (domain lifecycle changes, the connection closing, keepalive) only
while some thread runs its event loop. ``ensure_event_loop`` registers libvirt's default
event implementation once per process, before any connection is opened, and runs
``virEventRunDefaultImpl`` on a daemon thread for the life of the process.

A connection registers one lifecycle callback and passes every event to a ``LifecycleHub``,
which hands it to each subscriber's asyncio loop with ``call_soon_threadsafe``. Callbacks run
on the event loop thread, so they never call libvirt: a blocking call there would stall every
event and keepalive of the process.

Guarantees: a subscriber receives events in the order libvirt delivered them. When the
connection closes, every subscriber receives the error, after any events delivered before it,
and the subscription is finished.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import libvirt

from agentic_sandbox.errors import RuntimeFailure

logger = logging.getLogger(__name__)

_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None

# Lifecycle event -> runtime event action. A STOPPED event becomes vm.crashed when its detail
# is a guest crash or a failed start (see action_for).
_ACTIONS: dict[int, str] = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "vm.defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "vm.undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "vm.started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "vm.paused",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "vm.resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "vm.stopped",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "vm.crashed",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "vm.paused",
}
_CRASH_DETAILS = frozenset(
    {libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED}
)


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and start its thread, once per process.

    Must run before the first ``libvirt.open`` whose connection should deliver events, because
    a connection opened earlier never uses the implementation.
    """
    global _loop_thread
    with _loop_lock:
        if _loop_thread is not None:
            return
        # libvirt prints every error to stderr unless a handler is set. Each one also reaches
        # the caller as a libvirtError, which the driver translates, so the print is dropped.
        libvirt.registerErrorHandler(_ignore_error, None)
        libvirt.virEventRegisterDefaultImpl()
        _loop_thread = threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True)
        _loop_thread.start()


def _ignore_error(_context: object, _error: object) -> None:
    pass


def _run_event_loop() -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            # Only an invalid implementation fails here; log it and keep serving the others.
            logger.error("libvirt event loop iteration failed")


def action_for(event: int, detail: int) -> str | None:
    """Return the runtime event action of a lifecycle event, or None for one not reported."""
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and detail in _CRASH_DETAILS:
        return "vm.crashed"
    return _ACTIONS.get(event)


@dataclass(frozen=True)
class LifecycleEvent:
    """One domain lifecycle event as libvirt delivered it, with the time it arrived."""

    uuid: str
    name: str
    event: int
    detail: int
    time: datetime

    @property
    def action(self) -> str | None:
        return action_for(self.event, self.detail)


_Item = LifecycleEvent | RuntimeFailure


class Subscription:
    """One consumer's queue of lifecycle events. Iterate with ``get``; end with ``close``."""

    def __init__(self, hub: LifecycleHub, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self._loop = loop
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._finished = False

    async def get(self) -> LifecycleEvent:
        """Return the next event; raise the RuntimeFailure that ended the subscription."""
        item = await self._queue.get()
        if isinstance(item, RuntimeFailure):
            # Leave the error for any later call, so the subscription stays ended.
            self._queue.put_nowait(item)
            raise item
        return item

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def _post(self, item: _Item) -> None:
        """Queue ``item`` on the consumer's loop. Called on the libvirt event thread."""
        if self._finished:
            return
        if isinstance(item, RuntimeFailure):
            self._finished = True
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            # The consumer's event loop is closed, so no consumer is left.
            self._hub.unsubscribe(self)


_subscription_ids = itertools.count(1)


class LifecycleHub:
    """The subscribers of one connection's lifecycle events. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, Subscription] = {}
        self._ids: dict[Subscription, int] = {}

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscription:
        subscription = Subscription(self, loop)
        with self._lock:
            key = next(_subscription_ids)
            self._subscribers[key] = subscription
            self._ids[subscription] = key
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            key = self._ids.pop(subscription, None)
            if key is not None:
                del self._subscribers[key]

    def publish(self, event: LifecycleEvent) -> None:
        for subscription in self._snapshot():
            subscription._post(event)

    def fail_all(self, error: RuntimeFailure) -> None:
        """End every subscription with ``error``, after the events already queued."""
        with self._lock:
            subscribers = list(self._subscribers.values())
            self._subscribers.clear()
            self._ids.clear()
        for subscription in subscribers:
            subscription._post(error)

    def _snapshot(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscribers.values())


def lifecycle_event(domain: libvirt.virDomain, event: int, detail: int) -> LifecycleEvent:
    """Build a LifecycleEvent. ``name`` and ``UUIDString`` are read locally, with no RPC."""
    return LifecycleEvent(
        uuid=domain.UUIDString(),
        name=domain.name(),
        event=event,
        detail=detail,
        time=datetime.now(UTC),
    )
