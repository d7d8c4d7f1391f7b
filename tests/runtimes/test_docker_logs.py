"""DockerRuntime.logs against the real Docker Engine, and LogPump with a scripted stream."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

import docker
import pytest

from agentic_sandbox.errors import RuntimeObjectNotFound, RuntimeUnavailable
from agentic_sandbox.runtimes.base import SandboxSpec
from agentic_sandbox.runtimes.docker import DockerRuntime
from agentic_sandbox.runtimes.docker_logs import MAX_PENDING_CHUNKS, LogPump
from tests.runtimes.support import ownership_labels, unique_name

# Bound in seconds on each wait in these tests. A healthy daemon is far faster.
DEADLINE = 20.0


def log_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("docker-logs-")]


async def started(runtime: DockerRuntime, image: str, controller: str, script: str) -> str:
    name = unique_name("logs")
    spec = SandboxSpec(
        name=name,
        image=image,
        labels=ownership_labels(controller, name),
        command=["sh", "-c", script],
    )
    state = await runtime.create(spec)
    await runtime.start(state.id)
    return state.id


async def collect(runtime: DockerRuntime, sandbox_id: str, **options: object) -> bytes:
    chunks = []
    async with asyncio.timeout(DEADLINE):
        async for chunk in runtime.logs(sandbox_id, **options):  # type: ignore[arg-type]
            chunks.append(chunk)
    assert chunks[0] == b""
    return b"".join(chunks)


@pytest.mark.docker
async def test_logs_of_exited_container(
    runtime: DockerRuntime, docker_api: docker.APIClient, busybox_image: str, controller_id: str
) -> None:
    mixed = await started(runtime, busybox_image, controller_id, "echo out; echo err >&2")
    plain = await started(runtime, busybox_image, controller_id, "echo one; echo two; echo three")
    for sandbox_id in (mixed, plain):
        await asyncio.to_thread(docker_api.wait, sandbox_id, timeout=int(DEADLINE))

    both = await collect(runtime, mixed, tail=None, follow=False)
    last = await collect(runtime, plain, tail=1, follow=True)

    # stdout and stderr are separate pipes, so their lines may interleave in either order.
    assert sorted(both.splitlines()) == [b"err", b"out"]
    assert last == b"three\n"


@pytest.mark.docker
async def test_follow_streams_until_exit(
    runtime: DockerRuntime, docker_api: docker.APIClient, busybox_image: str, controller_id: str
) -> None:
    script = "echo started; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo finished"
    sandbox_id = await started(runtime, busybox_image, controller_id, script)
    stream = runtime.logs(sandbox_id, tail=None, follow=True)
    received = b""

    async with asyncio.timeout(DEADLINE):
        assert await anext(stream) == b""
        while b"started" not in received:
            received += await anext(stream)
        exec_id = docker_api.exec_create(sandbox_id, ["touch", "/tmp/go"])
        docker_api.exec_start(exec_id["Id"])
        async for chunk in stream:
            received += chunk

    assert received.splitlines() == [b"started", b"finished"]


@pytest.mark.docker
async def test_closing_idle_follow_ends_thread(
    runtime: DockerRuntime, busybox_image: str, controller_id: str
) -> None:
    sandbox_id = await started(runtime, busybox_image, controller_id, "echo hi; sleep 600")
    stream = runtime.logs(sandbox_id, tail=None, follow=True)
    async with asyncio.timeout(DEADLINE):
        assert await anext(stream) == b""
        assert await anext(stream) == b"hi\n"
        reader = asyncio.create_task(anext(stream))
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await stream.aclose()

    assert log_threads() == []


@pytest.mark.docker
async def test_logs_missing_container(runtime: DockerRuntime) -> None:
    with pytest.raises(RuntimeObjectNotFound):
        await collect(runtime, "no-such-container-0123", tail=None, follow=False)


# LogPump with a scripted stream, no daemon.


class ScriptedStream:
    """A blocking stream fed by the test; ``close`` unblocks it, as closing a socket does."""

    def __init__(self) -> None:
        self.items: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()
        self.reads = 0

    def __iter__(self) -> Iterator[bytes]:
        while (item := self.items.get()) is not None:
            self.reads += 1
            yield item

    def close(self) -> None:
        self.closed.set()
        self.items.put(None)


async def test_pump_stops_while_consumer_lags() -> None:
    stream = ScriptedStream()
    for index in range(MAX_PENDING_CHUNKS * 3):
        stream.items.put(f"{index}\n".encode())
    pump = LogPump(lambda: stream, loop=asyncio.get_running_loop())
    pump.start()

    assert await pump.get() == b""
    assert await pump.get() == b"0\n"
    pump.stop()

    assert await pump.wait_stopped(grace_seconds=DEADLINE)
    assert stream.closed.is_set()
    # Without a consumer, the thread reads no further than the queue bound.
    assert stream.reads <= MAX_PENDING_CHUNKS + 2


async def test_pump_open_failure_reaches_consumer() -> None:
    def fail() -> ScriptedStream:
        raise RuntimeObjectNotFound("container x not found")

    pump = LogPump(fail, loop=asyncio.get_running_loop())
    pump.start()

    with pytest.raises(RuntimeObjectNotFound):
        await pump.get()
    assert await pump.wait_stopped(grace_seconds=DEADLINE)


async def test_pump_read_failure_is_unavailable() -> None:
    class Broken(ScriptedStream):
        def __iter__(self) -> Iterator[bytes]:
            raise OSError("connection reset")

    pump = LogPump(Broken, loop=asyncio.get_running_loop())
    pump.start()

    assert await pump.get() == b""
    with pytest.raises(RuntimeUnavailable):
        await pump.get()
    assert await pump.wait_stopped(grace_seconds=DEADLINE)


async def test_pump_end_returns_none() -> None:
    stream = ScriptedStream()
    stream.items.put(b"last\n")
    stream.items.put(None)
    pump = LogPump(lambda: stream, loop=asyncio.get_running_loop())
    pump.start()

    assert await pump.get() == b""
    assert await pump.get() == b"last\n"
    assert await pump.get() is None
    assert await pump.get() is None
    assert await pump.wait_stopped(grace_seconds=DEADLINE)
