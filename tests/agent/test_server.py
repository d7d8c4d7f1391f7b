"""The agent server and the agent program, talking over loopback gRPC."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

import grpc
import grpc.aio
import pytest

from agentic_sandbox.agent.program import AgentConfig
from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb
from agentic_sandbox.agent.rpc import METADATA_AGENT_ID, METADATA_AGENT_SECRET, connect_call
from agentic_sandbox.controller.agent_commands import CommandExit, CommandOutput, CommandSpec
from agentic_sandbox.errors import AgentNotConnected
from tests.agent.support import (
    agent_harness,
    collect,
    free_port,
    running_agent,
    wait_for,
)


def _output(events: list[object], stream: str) -> list[bytes]:
    return [e.data for e in events if isinstance(e, CommandOutput) and e.stream == stream]


def _connected(harness_tracker: object, key: str) -> bool:
    observation = harness_tracker.observe(key)  # type: ignore[attr-defined]
    return observation is not None and observation.connected


async def test_agent_registers_and_runs_command() -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        config = AgentConfig(agent_id="web", secret=secret, server=harness.address)
        async with running_agent(config):
            await wait_for(lambda: _connected(harness.tracker, "default/web"))
            spec = CommandSpec(argv=["sh", "-c", "echo out; echo err >&2; exit 3"])
            session = await harness.hub.start("default/web", spec)
            events = await collect(session.events())
        await wait_for(lambda: "agent.disconnected" in harness.events.names())

    stdout = b"".join(_output(events, "stdout"))
    stderr = b"".join(_output(events, "stderr"))
    assert stdout == b"out\n"
    assert stderr == b"err\n"
    exit_event = events[-1]
    assert isinstance(exit_event, CommandExit)
    assert exit_event.exit_code == 3
    assert harness.events.names() == [
        "agent.registered",
        "agent.connected",
        "agent.disconnected",
    ]


async def test_missing_program_exits_127() -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        config = AgentConfig(agent_id="web", secret=secret, server=harness.address)
        async with running_agent(config):
            await wait_for(lambda: _connected(harness.tracker, "default/web"))
            session = await harness.hub.start("default/web", CommandSpec(argv=["/no/such"]))
            events = await collect(session.events())
    exit_event = events[-1]
    assert isinstance(exit_event, CommandExit)
    assert exit_event.exit_code == 127
    assert "could not be started" in exit_event.error


async def test_timeout_stops_command() -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        config = AgentConfig(agent_id="web", secret=secret, server=harness.address)
        async with running_agent(config):
            await wait_for(lambda: _connected(harness.tracker, "default/web"))
            spec = CommandSpec(argv=["sleep", "60"], timeout_seconds=1)
            session = await harness.hub.start("default/web", spec)
            events = await collect(session.events())
    exit_event = events[-1]
    assert isinstance(exit_event, CommandExit)
    assert exit_event.timed_out
    assert exit_event.signal == 15
    assert exit_event.exit_code == 128 + 15


async def test_stdin_reaches_command() -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        config = AgentConfig(agent_id="web", secret=secret, server=harness.address)
        async with running_agent(config):
            await wait_for(lambda: _connected(harness.tracker, "default/web"))
            session = await harness.hub.start("default/web", CommandSpec(argv=["cat"], stdin=True))
            await session.write_stdin(b"hello\n", eof=True)
            events = await collect(session.events())
    assert b"".join(e.data for e in events if isinstance(e, CommandOutput)) == b"hello\n"


async def test_pty_command_sees_terminal() -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        config = AgentConfig(agent_id="web", secret=secret, server=harness.address)
        async with running_agent(config):
            await wait_for(lambda: _connected(harness.tracker, "default/web"))
            spec = CommandSpec(argv=["sh", "-c", "test -t 1 && echo tty"], pty=True)
            session = await harness.hub.start("default/web", spec)
            events = await collect(session.events())
    assert b"".join(e.data for e in events if isinstance(e, CommandOutput)).strip() == b"tty"


async def _open_stream(address: str, agent_id: str, secret: str) -> grpc.StatusCode:
    """Open a Connect stream with the given credentials; return the status it ends with."""
    async with grpc.aio.insecure_channel(address) as channel:

        async def requests():  # type: ignore[no-untyped-def]
            yield pb.AgentMessage(register=pb.Register(agent_id=agent_id))
            await asyncio.sleep(3600)

        call = connect_call(channel)(
            requests(), metadata=((METADATA_AGENT_ID, agent_id), (METADATA_AGENT_SECRET, secret))
        )
        try:
            async for message in call:
                if message.WhichOneof("payload") == "register_ack":
                    call.cancel()
                    return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.UNKNOWN


async def test_wrong_secret_rejected_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        wrong = "0" * 64
        with caplog.at_level(logging.WARNING):
            code = await _open_stream(harness.address, "web", wrong)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert not _connected(harness.tracker, "default/web")
    assert "agent rejected agent_id='web'" in caplog.text
    assert wrong not in caplog.text
    assert secret not in caplog.text


async def test_other_instance_secret_rejected() -> None:
    async with agent_harness() as harness:
        harness.expect("web")
        other_secret = harness.expect("db")
        code = await _open_stream(harness.address, "web", other_secret)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert not _connected(harness.tracker, "default/web")


async def test_right_secret_opens_stream() -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        assert await _open_stream(harness.address, "web", secret) == grpc.StatusCode.OK


async def test_not_connected_raises() -> None:
    async with agent_harness() as harness:
        harness.expect("web")
        with pytest.raises(AgentNotConnected):
            await harness.hub.start("default/web", CommandSpec(argv=["true"]))


async def test_replaced_sandbox_closes_stream() -> None:
    async with agent_harness() as harness:
        secret = harness.expect("web")
        config = AgentConfig(agent_id="web", secret=secret, server=harness.address)
        async with running_agent(config):
            await wait_for(lambda: _connected(harness.tracker, "default/web"))
            harness.expect("web", sandbox_id="sandbox-2")
            await wait_for(
                lambda: "agent.disconnected" in harness.events.names(),
                signal=harness.enqueue_signal,
            )
            # The old agent keeps presenting the old secret and stays rejected.
            assert not _connected(harness.tracker, "default/web")


async def test_command_survives_server_restart() -> None:
    port = free_port()
    marker = Path(tempfile.mkdtemp(prefix="agent-test-")) / "go"
    script = f"echo before; while [ ! -e {marker} ]; do sleep 0.05; done; echo after; exit 7"
    try:
        async with agent_harness(port=port) as first:
            secret = first.expect("web")
            config = AgentConfig(agent_id="web", secret=secret, server=first.address)
            async with running_agent(config) as agent:
                await wait_for(lambda: _connected(first.tracker, "default/web"))
                session = await first.hub.start(
                    "default/web", CommandSpec(argv=["sh", "-c", script])
                )
                command_id = session.command_id
                await wait_for(lambda: command_id in agent.commands)
                await first.server.stop(0)
                marker.touch()
                await wait_for(lambda: agent.commands[command_id].result is not None)

                # A new server on the same port: the agent reconnects and reports the result.
                async with agent_harness(port=port) as second:
                    second.tracker.expect(first.tracker._expected_by_key["default/web"])
                    await wait_for(lambda: _connected(second.tracker, "default/web"))
                    sessions = agent._register().sessions
                    assert [s.command_id for s in sessions] == [command_id]
                    assert sessions[0].finished
    finally:
        marker.unlink(missing_ok=True)
        os.rmdir(marker.parent)
