"""EventPump: the thread bridge from a blocking event stream to asyncio, with no daemon."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentic_sandbox.errors import RuntimeUnavailable
from agentic_sandbox.runtimes.base import STREAM_CONNECTED
from agentic_sandbox.runtimes.docker_events import EventPump

_CLOSED = object()


class ScriptedStream:
    """A blocking stream fed by the test; ``close`` unblocks it, as closing a socket does."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.drained = threading.Event()
        self.closed = False

    def feed(self, *messages: dict[str, Any]) -> None:
        for message in messages:
            self.messages.put(message)

    def end(self) -> None:
        self.messages.put(None)

    def fail(self, error: Exception) -> None:
        self.messages.put(error)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            if self.messages.empty():
                self.drained.set()
            item = self.messages.get()
            if item is None or item is _CLOSED:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self.closed = True
        self.messages.put(_CLOSED)


def message(container_id: str, action: str = "start") -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": container_id}}


def make_pump(stream: ScriptedStream, **options: Any) -> EventPump:
    pump = EventPump(lambda: stream, loop=asyncio.get_running_loop(), **options)
    pump.start()
    return pump


async def test_pump_delivers_in_order_then_ends() -> None:
    stream = ScriptedStream()
    stream.feed(message("a"), {"Type": "network", "Action": "connect"}, message("b", "die"))
    stream.end()
    pump = make_pump(stream)

    connected = await pump.get()
    first = await pump.get()
    second = await pump.get()
    with pytest.raises(RuntimeUnavailable, match="ended"):
        await pump.get()
    with pytest.raises(RuntimeUnavailable, match="ended"):
        await pump.get()

    assert connected.action == STREAM_CONNECTED
    assert (first.sandbox_id, first.action) == ("a", "start")
    assert (second.sandbox_id, second.action) == ("b", "die")
    assert await pump.wait_stopped(grace_seconds=5.0)


async def test_pump_reports_open_failure() -> None:
    def open_stream() -> ScriptedStream:
        raise RuntimeUnavailable("daemon down")

    pump = EventPump(open_stream, loop=asyncio.get_running_loop())
    pump.start()

    with pytest.raises(RuntimeUnavailable, match="daemon down"):
        await pump.get()
    assert await pump.wait_stopped(grace_seconds=5.0)


async def test_pump_wraps_stream_failure() -> None:
    stream = ScriptedStream()
    stream.fail(ValueError("I/O operation on closed file"))
    pump = make_pump(stream)
    await pump.get()

    with pytest.raises(RuntimeUnavailable, match="failed") as caught:
        await pump.get()

    assert isinstance(caught.value.__cause__, ValueError)


async def test_pump_backlog_overflow_ends_stream() -> None:
    stream = ScriptedStream()
    stream.feed(*(message(f"c{i}") for i in range(5)))
    # The backlog limit counts the connection marker that comes before the events.
    pump = make_pump(stream, max_backlog=3)
    # Once the stream is drained, the thread has posted all five events, and their delivery
    # callbacks are queued on the loop ahead of this wait's own completion. The overflow can
    # also stop the thread before it drains the stream, so the wait is bounded.
    await asyncio.to_thread(stream.drained.wait, 5.0)

    delivered = [await pump.get(), await pump.get(), await pump.get()]
    with pytest.raises(RuntimeUnavailable, match="relist"):
        await pump.get()

    assert [event.sandbox_id for event in delivered] == ["", "c0", "c1"]
    assert stream.closed
    assert await pump.wait_stopped(grace_seconds=5.0)


async def test_pump_stop_unblocks_thread() -> None:
    stream = ScriptedStream()
    stream.feed(message("a"))
    pump = make_pump(stream)
    await pump.get()
    await pump.get()

    pump.stop()

    assert await pump.wait_stopped(grace_seconds=5.0)
    assert stream.closed


async def test_pump_abort_raises_given_error() -> None:
    stream = ScriptedStream()
    pump = make_pump(stream)
    await pump.get()

    pump.abort(RuntimeUnavailable("runtime closed"))

    with pytest.raises(RuntimeUnavailable, match="runtime closed"):
        await pump.get()
    assert await pump.wait_stopped(grace_seconds=5.0)
