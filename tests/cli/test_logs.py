"""sandboxctl logs against a real API server with a fake runtime."""

from __future__ import annotations

import asyncio

import pytest

from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.runtimes.base import SandboxState
from tests.api.runtime_support import add_sandbox
from tests.api.support import manifest
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl


def start_web(server: ApiServer, output: bytes = b"") -> SandboxState:
    """Store instance web with a running sandbox that has printed ``output``."""
    assert server.store is not None and server.runtime is not None
    store, runtime = server.store, server.runtime

    async def seed() -> SandboxState:
        created = await store.create(Instance.model_validate(manifest("web")))
        assert isinstance(created, Instance)
        sandbox = await add_sandbox(runtime, created)
        if output:
            runtime.write_output(sandbox.id, output)
        return sandbox

    return server.call(seed())


def test_logs_prints_output(runtime_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    start_web(runtime_env, b"hello\nworld\n")

    result = sandboxctl("logs", "web")

    assert result.code == 0, result.err
    assert result.out == "hello\nworld\n"


def test_logs_tail(runtime_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    start_web(runtime_env, b"one\ntwo\nthree\n")

    result = sandboxctl("logs", "--tail", "1", "web")

    assert result.out == "three\n"


def test_logs_follow_until_stop(runtime_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    sandbox = start_web(runtime_env, b"before\n")
    runtime = runtime_env.runtime
    assert runtime is not None and runtime_env.loop is not None

    async def print_then_exit() -> None:
        await runtime.log_streaming.wait()
        runtime.write_output(sandbox.id, b"after\n")
        runtime.exit(sandbox.id, 0)

    asyncio.run_coroutine_threadsafe(print_then_exit(), runtime_env.loop)
    result = sandboxctl("logs", "-f", "web")

    assert result.code == 0, result.err
    assert result.out == "before\nafter\n"


def test_logs_without_sandbox_fails(runtime_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    assert runtime_env.store is not None
    runtime_env.call(runtime_env.store.create(Instance.model_validate(manifest("web"))))

    result = sandboxctl("logs", "web")

    assert result.code == 1
    assert "has no sandbox" in result.err


@pytest.mark.parametrize("tail", ["-1", "many"])
def test_logs_invalid_tail_is_usage_error(sandboxctl: Sandboxctl, tail: str) -> None:
    result = sandboxctl("logs", "--tail", tail, "web")

    assert result.code == 2
    assert "--tail" in result.err
