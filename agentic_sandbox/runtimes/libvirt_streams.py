"""The libvirt driver's operations that wait on lifecycle events: stop, log follow, events.

Each subscribes to the connection's ``LifecycleHub`` before it looks at the domain, so a
change that happens between the look and the wait is never missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path

import libvirt

from agentic_sandbox.errors import RuntimeAPIError, RuntimeFailure, RuntimeObjectNotFound
from agentic_sandbox.runtimes import libvirt_ops as ops
from agentic_sandbox.runtimes.base import STREAM_CONNECTED, RuntimeEvent
from agentic_sandbox.runtimes.libvirt_conn import LibvirtConnection, api_error
from agentic_sandbox.runtimes.libvirt_events import LifecycleEvent, LifecycleHub, Subscription
from agentic_sandbox.runtimes.libvirt_logs import stream_log
from agentic_sandbox.runtimes.libvirt_state import SHUTOFF_REASONS

logger = logging.getLogger(__name__)

# Lifecycle events after which a domain no longer runs.
_ENDING_EVENTS = frozenset(
    {
        libvirt.VIR_DOMAIN_EVENT_STOPPED,
        libvirt.VIR_DOMAIN_EVENT_UNDEFINED,
        libvirt.VIR_DOMAIN_EVENT_CRASHED,
    }
)


class LibvirtStreams:
    """Stop, logs and events of the libvirt driver, with the label cache events need."""

    def __init__(self, conn: LibvirtConnection, hub: LifecycleHub) -> None:
        self._conn = conn
        self._hub = hub
        # Domain UUID -> labels, so an undefined domain's last event can still be filtered.
        self._labels: dict[str, dict[str, str]] = {}

    def remember_labels(self, domain_uuid: str, labels: dict[str, str]) -> None:
        self._labels[domain_uuid] = dict(labels)

    async def stop(self, sandbox_id: str, timeout: float) -> None:  # noqa: ASYNC109 (protocol)
        try:
            observation = await self._conn.call(
                "shutdown", lambda conn: ops.request_shutdown(conn, sandbox_id)
            )
        except libvirt.libvirtError as exc:
            raise api_error("shutdown", exc) from exc
        if observation is None:
            return
        if observation.active and observation.state != libvirt.VIR_DOMAIN_PAUSED:
            await self._wait_until_stopped(sandbox_id, observation.facts.uuid, timeout)

        # Destroys a domain that ignored the power button, and records the stop either way.
        now = datetime.now(UTC)
        try:
            final = await self._conn.call(
                "destroy", lambda conn: ops.destroy(conn, sandbox_id, now)
            )
        except libvirt.libvirtError as exc:
            raise api_error("destroy", exc) from exc
        if observation.active and final is not None:
            logger.info(
                "domain stopped name=%s domain_uuid=%s reason=%s",
                final.facts.name,
                final.facts.uuid,
                SHUTOFF_REASONS.get(final.reason, "unknown"),
            )

    async def _wait_until_stopped(
        self,
        sandbox_id: str,
        domain_uuid: str,
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        """Wait up to ``timeout`` seconds for the domain's stop event.

        Each wait subscribes first and then checks the state, so a stop in between is seen.
        When the connection is lost mid-wait, the wait starts over on a new connection with
        the time that is left, so a guest still shutting down is not destroyed early.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            subscription = self._hub.subscribe(loop)
            try:
                # A failure here (libvirtd down) raises, so the loop never spins.
                observation = await self._observe_or_none(sandbox_id)
                if observation is None or not observation.active:
                    return
                try:
                    async with asyncio.timeout_at(deadline):
                        await _next_ending_event(subscription, domain_uuid)
                    return
                except TimeoutError:
                    logger.info("domain ignored the power button domain_uuid=%s", domain_uuid)
                    return
                except RuntimeFailure as exc:
                    logger.warning(
                        "stop wait interrupted, waiting again domain_uuid=%s error=%s",
                        domain_uuid,
                        exc,
                    )
            finally:
                subscription.close()

    async def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        subscription = self._hub.subscribe(asyncio.get_running_loop()) if follow else None
        watcher: asyncio.Task[None] | None = None
        try:
            observation = await self._observe(sandbox_id, "logs")
            if observation.facts.serial_log_path is None:
                raise RuntimeAPIError(f"domain {sandbox_id} has no serial log file")
            path = Path(observation.facts.serial_log_path)
            stopped = asyncio.Event()
            if subscription is None or not observation.active:
                stopped.set()
            else:
                watcher = asyncio.create_task(
                    _watch_stop(subscription, observation.facts.uuid, stopped)
                )
            yield b""
            try:
                async for chunk in stream_log(path, tail=tail, follow=follow, stopped=stopped):
                    yield chunk
            except OSError as exc:
                raise RuntimeAPIError(f"reading the serial log {path} failed: {exc}") from exc
            if watcher is not None and watcher.done() and not watcher.cancelled():
                # The connection closed mid-follow, so the end of the output is not known.
                watcher.result()
        finally:
            if watcher is not None:
                watcher.cancel()
            if subscription is not None:
                subscription.close()

    async def events(self, labels: dict[str, str]) -> AsyncGenerator[RuntimeEvent, None]:
        subscription = self._hub.subscribe(asyncio.get_running_loop())
        try:
            # Opens the connection, and with it the lifecycle subscription at libvirtd.
            await self._conn.call("events", lambda conn: conn.getLibVersion())
            yield RuntimeEvent(action=STREAM_CONNECTED, sandbox_id="", labels={})
            while True:
                event = await subscription.get()
                action = event.action
                if action is None:
                    continue
                event_labels = await self._labels_for(event)
                if event_labels is None or not labels.items() <= event_labels.items():
                    continue
                yield RuntimeEvent(
                    action=action, sandbox_id=event.uuid, labels=event_labels, time=event.time
                )
        finally:
            subscription.close()

    async def _labels_for(self, event: LifecycleEvent) -> dict[str, str] | None:
        """Return the labels of the event's domain, from the cache or a fresh look."""
        if event.event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
            return self._labels.pop(event.uuid, None)
        cached = self._labels.get(event.uuid)
        if cached is not None and event.event != libvirt.VIR_DOMAIN_EVENT_DEFINED:
            return dict(cached)
        try:
            observation = await self._conn.call(
                "event lookup", lambda conn: ops.observe(conn, event.uuid)
            )
        except libvirt.libvirtError as exc:
            raise api_error("event lookup", exc) from exc
        if observation is None:
            return cached
        self.remember_labels(event.uuid, observation.facts.labels)
        return dict(observation.facts.labels)

    async def _observe_or_none(self, sandbox_id: str) -> ops.Observation | None:
        try:
            return await self._conn.call("inspect", lambda conn: ops.observe(conn, sandbox_id))
        except libvirt.libvirtError as exc:
            raise api_error("inspect", exc) from exc

    async def _observe(self, sandbox_id: str, operation: str) -> ops.Observation:
        try:
            observation = await self._conn.call(
                operation, lambda conn: ops.observe(conn, sandbox_id)
            )
        except libvirt.libvirtError as exc:
            raise api_error(operation, exc) from exc
        if observation is None:
            raise RuntimeObjectNotFound(f"domain {sandbox_id} not found")
        return observation


async def _next_ending_event(subscription: Subscription, domain_uuid: str) -> None:
    """Return at the domain's next stop, crash or undefine event."""
    while True:
        event = await subscription.get()
        if event.uuid == domain_uuid and event.event in _ENDING_EVENTS:
            return


async def _watch_stop(subscription: Subscription, domain_uuid: str, stopped: asyncio.Event) -> None:
    """Set ``stopped`` when the domain stops; on a lost connection set it and re-raise."""
    try:
        await _next_ending_event(subscription, domain_uuid)
    finally:
        stopped.set()
