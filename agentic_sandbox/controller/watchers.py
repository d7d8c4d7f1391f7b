"""Triggers: everything that puts instance keys into the queue.

- The store watch enqueues an instance when its spec, metadata or deletion state changes. Status
  writes, which the controller makes itself, are skipped so a reconcile does not trigger itself.
- The runtime event stream enqueues the instance named by a sandbox's ownership label. When the
  stream breaks, it reconnects with backoff and then enqueues every instance, because changes
  made while it was down were not seen.
- The periodic resync enqueues every instance. It is a safety net, not the mechanism.

None of these act on an event's content; they only name the key to reconcile again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from agentic_sandbox.controller.backoff import ExponentialBackoff
from agentic_sandbox.controller.metrics import ControllerMetrics
from agentic_sandbox.controller.queue import WorkQueue
from agentic_sandbox.crds.meta import REQUESTED_ACTION_ANNOTATION
from agentic_sandbox.errors import Expired, RuntimeUnavailable, SandboxError
from agentic_sandbox.runtimes.base import LABEL_INSTANCE, STREAM_CONNECTED, Runtime
from agentic_sandbox.store.base import Store, WatchEventType

logger = logging.getLogger(__name__)

KIND = "Instance"


@dataclass(frozen=True)
class _Seen:
    generation: int | None
    deleting: bool
    finalizers: tuple[str, ...]
    requested_action: str | None


async def enqueue_all(store: Store, queue: WorkQueue) -> int:
    """Enqueue every instance; return the store's resourceVersion at the time of the listing."""
    listing = await store.list(KIND)
    for item in listing.items:
        queue.add(item.key)
    return listing.resource_version


async def watch_instances(store: Store, queue: WorkQueue, metrics: ControllerMetrics) -> None:
    """Follow the store's changes to instances for as long as the store is open."""
    seen: dict[str, _Seen] = {}
    while True:
        listing = await store.list(KIND)
        metrics.store_relists += 1
        seen = {item.key: _seen(item) for item in listing.items}
        for key in seen:
            queue.add(key)
        try:
            async for event in store.watch(KIND, listing.resource_version):
                key = event.object.key
                if event.type == WatchEventType.DELETED:
                    seen.pop(key, None)
                    queue.add(key)
                    continue
                now = _seen(event.object)
                if seen.get(key) != now:
                    seen[key] = now
                    queue.add(key)
            return  # the store was closed
        except Expired:
            logger.warning("instance watch expired; relisting")


def _seen(obj: object) -> _Seen:
    metadata = obj.metadata  # type: ignore[attr-defined]
    return _Seen(
        generation=metadata.generation,
        deleting=metadata.deletion_timestamp is not None,
        finalizers=tuple(metadata.finalizers),
        requested_action=metadata.annotations.get(REQUESTED_ACTION_ANNOTATION),
    )


async def pump_runtime_events(
    runtime: Runtime,
    store: Store,
    queue: WorkQueue,
    *,
    labels: dict[str, str],
    metrics: ControllerMetrics,
    reconnect: ExponentialBackoff | None = None,
) -> None:
    """Turn runtime events into queue keys, reconnecting and relisting after every break."""
    backoff = reconnect or ExponentialBackoff(base=0.5, cap=30.0)
    failing = False
    while True:
        try:
            async with contextlib.aclosing(runtime.events(labels)) as stream:
                metrics.runtime_event_streams += 1
                async for event in stream:
                    if event.action == STREAM_CONNECTED:
                        # Relist once subscribed: whatever changed while the stream was down is
                        # reconciled now, and later changes arrive as events.
                        await enqueue_all(store, queue)
                        if failing:
                            logger.info("runtime event stream reconnected runtime=%s", runtime.name)
                            failing = False
                        backoff.reset("events")
                        continue
                    key = event.labels.get(LABEL_INSTANCE)
                    if key:
                        queue.add(key)
            raise RuntimeUnavailable("runtime event stream ended")
        except RuntimeUnavailable as error:
            delay = backoff.next_delay("events")
            if not failing:
                logger.warning(
                    "runtime event stream broken; reconnecting runtime=%s retry_in=%.1fs error=%s",
                    runtime.name,
                    delay,
                    error,
                )
                failing = True
                # Reconcile everything once, so status reports the outage (RuntimeReady Unknown)
                # instead of the last state seen before it. Failing keys then back off.
                with contextlib.suppress(SandboxError):
                    await enqueue_all(store, queue)
            await asyncio.sleep(delay)


async def resync_periodically(store: Store, queue: WorkQueue, interval: float) -> None:
    """Enqueue every instance every ``interval`` seconds, as a safety net for missed triggers."""
    while True:
        await asyncio.sleep(interval)
        try:
            await enqueue_all(store, queue)
        except SandboxError as error:
            # A failed resync is retried at the next tick.
            logger.warning("periodic resync failed; will retry error=%s", error)
