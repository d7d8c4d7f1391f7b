"""A bridge from docker-py's blocking event stream to an asyncio consumer.

docker-py reads ``GET /events`` with blocking socket reads, so each stream gets a dedicated
thread (not one of the driver's call workers, which it would occupy forever). The thread hands
every item to the event loop with ``call_soon_threadsafe``. Stopping closes the HTTP response,
which unblocks the read, so the thread ends promptly.

Guarantees: the consumer receives events in the daemon's order. The end of the stream, a failure
and a backlog overflow all reach the consumer as RuntimeUnavailable. After that the pump is
finished, and the caller relists.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from docker.errors import DockerException

from agentic_sandbox.errors import RuntimeFailure, RuntimeUnavailable
from agentic_sandbox.runtimes.base import STREAM_CONNECTED, RuntimeEvent
from agentic_sandbox.runtimes.docker_convert import event_from_message

logger = logging.getLogger(__name__)

# Events waiting for a slow consumer. Past this the stream is dropped and the consumer relists,
# which costs one list call instead of unbounded memory.
DEFAULT_MAX_BACKLOG = 10_000

_thread_ids = itertools.count(1)


class EventStream(Protocol):
    """The part of docker-py's CancellableStream the pump uses."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class _StreamEnded:
    """Queue marker: the daemon closed the stream."""


_ENDED = _StreamEnded()

_Item = RuntimeEvent | BaseException | _StreamEnded


class EventPump:
    """Reads one Docker event stream on a thread and queues its events for the event loop."""

    def __init__(
        self,
        open_stream: Callable[[], EventStream],
        *,
        loop: asyncio.AbstractEventLoop,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        self._open_stream = open_stream
        self._loop = loop
        self._max_backlog = max_backlog
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._finished = asyncio.Event()
        self._lock = threading.Lock()
        self._stream: EventStream | None = None
        self._stopping = False
        self._overflowed = False
        self._thread = threading.Thread(
            target=self._run, name=f"docker-events-{next(_thread_ids)}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and unblock its read. Safe to call from any thread, repeatedly."""
        with self._lock:
            self._stopping = True
            stream, self._stream = self._stream, None
        if stream is not None:
            _close_quietly(stream)

    def abort(self, error: RuntimeFailure) -> None:
        """Stop the thread and make the consumer raise ``error``. Call on the event loop."""
        self.stop()
        self._queue.put_nowait(error)

    async def wait_stopped(self, *, grace_seconds: float) -> bool:
        """Wait until the thread has ended; False when it still runs after ``grace_seconds``."""
        try:
            await asyncio.wait_for(self._finished.wait(), grace_seconds)
        except TimeoutError:
            return False
        self._thread.join(timeout=1.0)
        return not self._thread.is_alive()

    async def get(self) -> RuntimeEvent:
        """Return the next event; raise RuntimeUnavailable once the stream has ended or failed."""
        item = await self._queue.get()
        if isinstance(item, RuntimeEvent):
            return item
        # Leave the marker for any later call, so the stream stays ended.
        self._queue.put_nowait(item)
        if isinstance(item, RuntimeFailure):
            raise item
        if isinstance(item, BaseException):
            raise RuntimeUnavailable(f"Docker event stream failed: {item}") from item
        raise RuntimeUnavailable("Docker event stream ended; the daemon closed the connection")

    # The methods below run on the pump thread, except _deliver, which runs on the event loop.

    def _run(self) -> None:
        try:
            self._pump()
        except Exception as exc:  # every failure must reach the consumer, whatever its type
            if not self._is_stopping():
                self._post(exc)
        finally:
            self._post_finished()

    def _pump(self) -> None:
        stream = self._open_stream()
        with self._lock:
            if not self._stopping:
                self._stream = stream
        if self._is_stopping():
            _close_quietly(stream)
            return
        # The daemon has accepted the subscription once the response starts.
        self._post(RuntimeEvent(action=STREAM_CONNECTED, sandbox_id="", labels={}))
        for message in stream:
            if self._is_stopping():
                return
            event = event_from_message(message)
            if event is not None:
                self._post(event)
        if not self._is_stopping():
            self._post(_ENDED)
        self.stop()

    def _is_stopping(self) -> bool:
        with self._lock:
            return self._stopping

    def _post(self, item: _Item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:
            # The event loop is closed, so there is no consumer left to tell.
            self.stop()

    def _post_finished(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._finished.set)
        except RuntimeError:
            pass

    def _deliver(self, item: _Item) -> None:
        if self._overflowed:
            return
        if isinstance(item, RuntimeEvent) and self._queue.qsize() >= self._max_backlog:
            self._overflowed = True
            self.stop()
            logger.warning(
                "docker event backlog full, dropping stream max_backlog=%d", self._max_backlog
            )
            item = RuntimeUnavailable(
                f"Docker event backlog exceeded {self._max_backlog} events; relist to catch up"
            )
        self._queue.put_nowait(item)


def _close_quietly(stream: EventStream) -> None:
    # CancellableStream.close shuts the socket down. It fails when the response is already
    # closed, which is the state we want anyway, and raises DockerException on SSH transports.
    try:
        stream.close()
    except (OSError, AttributeError, ValueError, DockerException) as exc:
        logger.debug("docker event stream already closed error=%s", exc)
