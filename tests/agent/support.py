"""An agent server and in-process agents on loopback, for protocol tests without Docker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from agentic_sandbox.agent.hub import AgentHub
from agentic_sandbox.agent.program import Agent, AgentConfig
from agentic_sandbox.agent.server import AgentServer
from agentic_sandbox.controller.agent_identity import mint_secret, secret_digest
from agentic_sandbox.controller.agent_tracker import AgentTracker, ExpectedAgent
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import Event

DEADLINE_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MemoryEvents:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def append(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def names(self) -> list[str]:
        return [event.name for event in self.events]


@dataclass
class Harness:
    tracker: AgentTracker
    hub: AgentHub
    server: AgentServer
    events: MemoryEvents
    address: str
    enqueued: list[str] = field(default_factory=list)
    enqueue_signal: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, name: str, *, sandbox_id: str = "sandbox-1") -> str:
        """Expect agent ``name`` in instance default/``name``; return its secret."""
        secret = mint_secret()
        self.tracker.expect(
            ExpectedAgent(
                key=f"default/{name}",
                uid=f"uid-{name}",
                agent_id=name,
                sandbox_id=sandbox_id,
                secret_digest=secret_digest(secret),
            )
        )
        return secret


async def wait_for(
    condition: Callable[[], bool], *, signal: asyncio.Event | None = None, what: str = ""
) -> None:
    """Wait until ``condition()`` holds, waking on ``signal`` or every 20 ms, within a deadline."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while not condition():
            if signal is not None:
                signal.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), 0.05)
            else:
                await asyncio.sleep(0.02)
    assert condition(), what


@contextlib.asynccontextmanager
async def agent_harness(
    *, heartbeat_interval: float = 10.0, port: int | None = None, unix_socket: Path | None = None
) -> AsyncIterator[Harness]:
    events = MemoryEvents()
    enqueued: list[str] = []
    signal = asyncio.Event()

    def enqueue(key: str) -> None:
        enqueued.append(key)
        signal.set()

    tracker = AgentTracker(enqueue=enqueue, heartbeat_interval=heartbeat_interval)
    hub = AgentHub()
    address = f"127.0.0.1:{port or free_port()}"
    server = AgentServer(
        tracker=tracker,
        hub=hub,
        recorder=EventRecorder(events),
        addresses=[address],
        unix_socket=unix_socket,
    )
    await server.start()
    harness = Harness(tracker, hub, server, events, address, enqueued, signal)
    try:
        yield harness
    finally:
        await server.stop(0.5)


@contextlib.asynccontextmanager
async def running_agent(config: AgentConfig) -> AsyncIterator[Agent]:
    agent = Agent(config)
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        agent.stop()
        async with asyncio.timeout(DEADLINE_SECONDS):
            await task


async def collect(session_events: AsyncIterator[object]) -> list[object]:
    async with asyncio.timeout(DEADLINE_SECONDS):
        return [event async for event in session_events]


Waiter = Callable[[], Awaitable[None]]
