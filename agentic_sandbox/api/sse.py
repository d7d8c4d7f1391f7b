"""Server-sent events: the event log as a ``text/event-stream`` response.

Each frame carries ``id:`` (the event id), ``event:`` (the event name) and ``data:`` (the event
as the list route returns it, on one line). Ids only grow, so a stream resumes by id, never by
time: a client that reconnects with ``Last-Event-ID: N`` receives every stored event after N that
matches its filters, then live ones, each once and in id order. The replay and the live part
come from one ``subscribe`` iteration, which registers for wake-ups before its first read, so an
event committed between the two is not lost.

NOTE: resuming cannot restore what retention already pruned, so a client that was away longer
than the log keeps events skips them. Ids restart only when the database file is replaced, and a
client that then resumes with an old, larger id receives nothing until new ids pass it.

A comment line (``: keep-alive``) is sent when no frame was sent for ``KEEPALIVE_SECONDS``, so
proxies keep the connection open and a client can detect a dead one with a read timeout.

When the client disconnects, Starlette cancels the response. The subscription is then closed
and ``SseSubscriberGauge.current`` drops back, so a gone client leaves no task or waiter behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from agentic_sandbox.crds.event import Event
from agentic_sandbox.errors import StoreUnavailable

logger = logging.getLogger(__name__)

EVENT_STREAM_MEDIA_TYPE = "text/event-stream"
# Seconds without a frame after which a keep-alive comment is sent. Read at the start of each
# stream, so tests may lower it.
KEEPALIVE_SECONDS = 15.0
KEEPALIVE_FRAME = b": keep-alive\n\n"
# Milliseconds a browser EventSource waits before it reconnects (the SSE ``retry:`` field).
RECONNECT_MILLISECONDS = 2000
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # Without this header nginx buffers proxied responses, which would hold frames back.
    "X-Accel-Buffering": "no",
}


class SseSubscriberGauge:
    """Open event streams: ``current`` now, and ``opened`` since the app started."""

    def __init__(self) -> None:
        self.current = 0
        self.opened = 0

    def add(self) -> None:
        self.current += 1
        self.opened += 1

    def remove(self) -> None:
        self.current -= 1


@dataclass(frozen=True)
class EventFilter:
    """The filters of an events request; ``None`` matches everything.

    ``type`` is an event name such as ``container.created``, which also matches names below it
    (``container.created.x``), or a prefix ending in a dot such as ``container.``.
    ``name_prefix`` is a plain prefix of the name. ``instance`` is a ``namespace/name`` key.
    """

    type: str | None = None
    name_prefix: str | None = None
    instance: str | None = None

    def matches(self, event: Event) -> bool:
        if self.instance is not None and event.instance != self.instance:
            return False
        if self.name_prefix is not None and not event.name.startswith(self.name_prefix):
            return False
        return self.type is None or type_matches(self.type, event.name)


def type_matches(type_: str, name: str) -> bool:
    """Return whether an event ``name`` is of ``type`` (a name, or a prefix ending in a dot)."""
    if type_.endswith("."):
        return name.startswith(type_)
    return name == type_ or name.startswith(type_ + ".")


def _field(value: str) -> str:
    # A line break would end the field early and let a value forge further fields.
    return " ".join(value.splitlines())


def event_frame(event: Event, wire: dict[str, object]) -> bytes:
    """Encode one event as an SSE frame; ``wire`` is its JSON form."""
    data = json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.id}\nevent: {_field(event.name)}\ndata: {data}\n\n".encode()


class _Subscription:
    """Steps through a subscription with a timeout per step, without ending it on a timeout.

    A timeout must not cancel the generator's pending step, because cancelling an async
    generator mid-step finishes it. So the step runs in a task that outlives a timed-out wait.
    """

    def __init__(self, events: AsyncGenerator[Event, None]) -> None:
        self._events = events
        self._step: asyncio.Task[Event] | None = None

    async def _next(self) -> Event:
        return await anext(self._events)

    async def next_event(self, wait_seconds: float) -> Event | None:
        """Return the next event, or None after ``wait_seconds`` without one.

        Raises StopAsyncIteration when the subscription ended (the store was closed).
        """
        if self._step is None:
            self._step = asyncio.create_task(self._next(), name="sse-subscription-step")
        done, _ = await asyncio.wait({self._step}, timeout=wait_seconds)
        if not done:
            return None
        step, self._step = self._step, None
        return step.result()

    async def close(self, on_closed: Callable[[], None]) -> None:
        """End the subscription, then call ``on_closed``.

        This may run while the caller is being cancelled, so it must not suspend. A pending
        step is therefore cancelled, not awaited, and ``on_closed`` runs once that step ends.
        """
        step, self._step = self._step, None
        if step is not None and not step.done():
            step.add_done_callback(lambda _: on_closed())
            step.cancel()
            return
        try:
            # A generator suspended at ``yield`` closes without suspending the caller.
            await self._events.aclose()
        finally:
            on_closed()


async def event_frames(
    events: AsyncGenerator[Event, None],
    *,
    event_filter: EventFilter,
    wire: Callable[[Event], dict[str, object]],
    gauge: SseSubscriberGauge,
) -> AsyncGenerator[bytes, None]:
    """Yield the SSE frames of a subscription: matching events, and keep-alive comments."""
    keepalive = KEEPALIVE_SECONDS
    loop = asyncio.get_running_loop()
    subscription = _Subscription(events)
    gauge.add()
    try:
        yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
        deadline = loop.time() + keepalive
        while True:
            try:
                event = await subscription.next_event(max(0.0, deadline - loop.time()))
            except StopAsyncIteration:
                return
            except StoreUnavailable as error:
                # The client reconnects with Last-Event-ID and loses nothing.
                logger.warning("event stream ended: the store failed error=%s", error)
                return
            if event is None:
                yield KEEPALIVE_FRAME
            elif event_filter.matches(event):
                yield event_frame(event, wire(event))
            else:
                continue
            deadline = loop.time() + keepalive
    finally:
        await subscription.close(gauge.remove)


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that always closes its frame generator.

    Starlette leaves the body iterator unclosed when it is cancelled while a frame is being
    sent. Closing it here releases the subscription at once, not when the generator is
    garbage-collected.
    """

    def __init__(self, frames: AsyncGenerator[bytes, None]) -> None:
        super().__init__(frames, headers=STREAM_HEADERS, media_type=EVENT_STREAM_MEDIA_TYPE)
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._frames.aclose()
