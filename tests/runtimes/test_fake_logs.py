"""FakeRuntime.logs: in-memory output in place of a container's log."""

from __future__ import annotations

import asyncio

import pytest

from agentic_sandbox.errors import RuntimeObjectNotFound, RuntimeUnavailable
from agentic_sandbox.runtimes.base import SandboxSpec
from agentic_sandbox.runtimes.fake import FakeRuntime

# Bound in seconds on each wait in these tests.
DEADLINE = 5.0


async def running(runtime: FakeRuntime) -> str:
    state = await runtime.create(SandboxSpec(name="web", image="demo", labels={}))
    await runtime.start(state.id)
    return state.id


async def test_logs_tail_of_stopped() -> None:
    runtime = FakeRuntime()
    sandbox_id = await running(runtime)
    runtime.write_output(sandbox_id, b"one\ntwo\nthree\n")
    runtime.exit(sandbox_id, 0)

    chunks = [chunk async for chunk in runtime.logs(sandbox_id, tail=2, follow=True)]

    assert chunks == [b"", b"two\n", b"three\n"]


async def test_logs_follow_ends_on_stop() -> None:
    runtime = FakeRuntime()
    sandbox_id = await running(runtime)
    stream = runtime.logs(sandbox_id, tail=None, follow=True)

    async with asyncio.timeout(DEADLINE):
        assert await anext(stream) == b""
        waiting = asyncio.create_task(anext(stream))
        await asyncio.sleep(0)
        runtime.write_output(sandbox_id, b"late\n")
        assert await waiting == b"late\n"
        await runtime.stop(sandbox_id, 0)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_logs_missing_sandbox() -> None:
    with pytest.raises(RuntimeObjectNotFound):
        await anext(FakeRuntime().logs("fake-9999", tail=None, follow=False))


async def test_logs_follow_breaks_in_outage() -> None:
    runtime = FakeRuntime()
    sandbox_id = await running(runtime)
    stream = runtime.logs(sandbox_id, tail=None, follow=True)
    assert await anext(stream) == b""

    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    runtime.set_available(False)

    with pytest.raises(RuntimeUnavailable):
        async with asyncio.timeout(DEADLINE):
            await waiting
