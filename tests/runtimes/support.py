"""Helpers shared by the runtime driver tests: ownership labels, names, a socket proxy."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from agentic_sandbox.runtimes.base import LABEL_CONTROLLER, LABEL_INSTANCE, LABEL_UID

# Every container and network the tests create carries RUN_LABEL=RUN_ID.
RUN_LABEL = "agentic-test.run"
RUN_ID = uuid.uuid4().hex[:10]


def ownership_labels(controller: str, name: str, uid: str | None = None) -> dict[str, str]:
    return {
        RUN_LABEL: RUN_ID,
        LABEL_CONTROLLER: controller,
        LABEL_INSTANCE: f"default/{name}",
        LABEL_UID: uid or str(uuid.uuid4()),
    }


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class SocketProxy:
    """A unix socket that forwards to the Docker socket and can cut connections or stop listening.

    Tests point a DockerRuntime at it to simulate a daemon that goes away and comes back,
    without touching the real daemon.
    """

    def __init__(self, path: Path, upstream: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.upstream = upstream
        self.url = f"unix://{path}"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))

    async def stop(self) -> None:
        """Close the listening socket and every forwarded connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)
        self.cut_connections()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        self._writers.update((writer, up_writer))
        tasks = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
            self._writers.discard(writer)
