"""A bridge from docker-py's blocking container log stream to an asyncio consumer.

Like the event stream, each log stream gets a dedicated thread, because a followed stream can
block on a read for as long as the container is quiet. Unlike events, log output can outrun a
slow HTTP client, so the hand-over is bounded: the thread waits until the consumer has taken a
chunk before it reads more, and the container's output waits in the daemon instead of here.

Stopping closes the HTTP response, which unblocks the read, and cancels a hand-over that is
waiting, so the thread ends promptly even when the consumer went away mid-stream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from docker.errors import DockerException

from agentic_sandbox.errors import RuntimeFailure, RuntimeUnavailable

logger = logging.getLogger(__name__)

# Chunks handed over but not yet taken by the consumer.
MAX_PENDING_CHUNKS = 64

_thread_ids = itertools.count(1)


class LogStream(Protocol):
    """The part of docker-py's CancellableStream the pump uses."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class _StreamEnded:
    """Queue marker: the daemon ended the stream (the container stopped, or no follow)."""


_ENDED = _StreamEnded()

_Item = bytes | BaseException | _StreamEnded


class LogPump:
    """Reads one container log stream on a thread and hands its chunks to the event loop."""

    def __init__(
        self, open_stream: Callable[[], LogStream], *, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._open_stream = open_stream
        self._loop = loop
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=MAX_PENDING_CHUNKS)
        self._finished = asyncio.Event()
        self._lock = threading.Lock()
        self._stream: LogStream | None = None
        self._pending: concurrent.futures.Future[None] | None = None
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"docker-logs-{next(_thread_ids)}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread: close the stream and cancel a waiting hand-over. Any thread may call."""
        with self._lock:
            self._stopping = True
            stream, self._stream = self._stream, None
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        if stream is not None:
            _close_quietly(stream)

    def abort(self, error: RuntimeFailure) -> None:
        """Stop the thread and make the consumer raise ``error``. Call on the event loop."""
        self.stop()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(error)

    async def wait_stopped(self, *, grace_seconds: float) -> bool:
        """Wait until the thread has ended; False when it still runs after ``grace_seconds``."""
        try:
            await asyncio.wait_for(self._finished.wait(), grace_seconds)
        except TimeoutError:
            return False
        self._thread.join(timeout=1.0)
        return not self._thread.is_alive()

    async def get(self) -> bytes | None:
        """Return the next chunk, or None at the end of the stream.

        Raises the RuntimeFailure that ended the stream, or RuntimeUnavailable for any other
        failure of the read.
        """
        item = await self._queue.get()
        if isinstance(item, bytes):
            return item
        # Leave the marker for any later call, so the stream stays ended.
        self._queue.put_nowait(item)
        if isinstance(item, RuntimeFailure):
            raise item
        if isinstance(item, BaseException):
            raise RuntimeUnavailable(f"Docker log stream failed: {item}") from item
        return None

    # The methods below run on the pump thread.

    def _run(self) -> None:
        try:
            self._pump()
        except Exception as exc:  # every failure must reach the consumer, whatever its type
            if not self._is_stopping():
                self._hand_over(exc)
        finally:
            self.stop()
            try:
                self._loop.call_soon_threadsafe(self._finished.set)
            except RuntimeError:
                pass  # the event loop is closed

    def _pump(self) -> None:
        stream = self._open_stream()
        with self._lock:
            if not self._stopping:
                self._stream = stream
        if self._is_stopping():
            _close_quietly(stream)
            return
        # An empty first chunk signals to the consumer that the stream is open.
        if not self._hand_over(b""):
            return
        for chunk in stream:
            if not chunk:
                continue
            if not self._hand_over(chunk):
                return
        self._hand_over(_ENDED)

    def _is_stopping(self) -> bool:
        with self._lock:
            return self._stopping

    def _hand_over(self, item: _Item) -> bool:
        """Queue ``item``, waiting while the queue is full; False once the pump is stopping."""
        with self._lock:
            if self._stopping:
                return False
            try:
                future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
            except RuntimeError:
                return False  # the event loop is closed, so there is no consumer left
            self._pending = future
        try:
            future.result()
        except concurrent.futures.CancelledError:
            return False
        with self._lock:
            if self._pending is future:
                self._pending = None
        return True


def _close_quietly(stream: LogStream) -> None:
    # CancellableStream.close shuts the socket down. It fails when the response is already
    # closed, which is the state we want anyway, and raises DockerException on SSH transports.
    try:
        stream.close()
    except (OSError, AttributeError, ValueError, DockerException) as exc:
        logger.debug("docker log stream already closed error=%s", exc)
