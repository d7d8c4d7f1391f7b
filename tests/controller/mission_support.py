"""Fakes for mission dispatch tests: a command runner whose sessions the test feeds, and a
harness that creates Ready instances with connected agents in a real store."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from agentic_sandbox.controller.agent_commands import CommandEvent, CommandExit, CommandSpec
from agentic_sandbox.controller.agent_tracker import AgentTracker, ExpectedAgent
from agentic_sandbox.controller.missions import MissionDispatcher, MissionRequest
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import Condition
from agentic_sandbox.errors import AgentNotConnected
from agentic_sandbox.store.sqlite import SqliteStore


class FakeSession:
    """A command session whose events the test feeds."""

    def __init__(self, key: str, spec: CommandSpec) -> None:
        self.key = key
        self.spec = spec
        self.command_id = f"cmd-{key}"
        self.queue: asyncio.Queue[CommandEvent] = asyncio.Queue()
        self.abandoned = False

    async def events(self) -> AsyncIterator[CommandEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if isinstance(event, CommandExit):
                return

    async def write_stdin(self, data: bytes, *, eof: bool = False) -> None:
        raise NotImplementedError

    async def signal(self, number: int) -> None:
        raise NotImplementedError

    async def abandon(self) -> None:
        self.abandoned = True

    def finish(self, exit_code: int = 0, **fields: object) -> None:
        self.queue.put_nowait(CommandExit(exit_code=exit_code, duration_ms=7, **fields))  # type: ignore[arg-type]


@dataclass
class FakeRunner:
    sessions: list[FakeSession] = field(default_factory=list)
    disconnected: set[str] = field(default_factory=set)

    async def start(self, key: str, spec: CommandSpec) -> FakeSession:
        if key in self.disconnected:
            raise AgentNotConnected(f"the agent of instance {key} is not connected")
        session = FakeSession(key, spec)
        self.sessions.append(session)
        return session


@dataclass
class Harness:
    store: SqliteStore
    tracker: AgentTracker
    runner: FakeRunner
    dispatcher: MissionDispatcher

    async def add_executor(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        capabilities: tuple[str, ...] = ("exec",),
        ready: bool = True,
        connected: bool = True,
    ) -> None:
        created = await self.store.create(
            Instance.model_validate(
                {
                    "metadata": {"name": name, "labels": labels or {}},
                    "spec": {"image": "agentic/agent:dev"},
                }
            )
        )
        status = created.status.model_copy(
            update={"conditions": [Condition(type="Ready", status="True" if ready else "False")]}
        )
        await self.store.update_status(created.model_copy(update={"status": status}))
        expected = ExpectedAgent(
            key=created.key,
            uid=created.metadata.uid or "",
            agent_id=name,
            sandbox_id=f"sandbox-{name}",
            secret_digest="0" * 64,
        )
        self.tracker.expect(expected)
        if connected:
            self.tracker.connect(
                expected,
                connection_id=f"conn-{name}",
                close=lambda reason: None,
                capabilities=capabilities,
            )

    async def dispatch(self, mission_id: str, **fields: object) -> str:
        request = MissionRequest(
            mission_id=mission_id,
            session_id="s1",
            objective="echo hi && exit 0",
            **fields,  # type: ignore[arg-type]
        )
        mission = await self.dispatcher.dispatch(request)
        return mission.instance

    async def event_names(self) -> list[str]:
        return [event.name for event in await self.store.events.list(limit=100)]


def build_harness(store: SqliteStore, *, seed: int = 7) -> Harness:
    """Build a dispatcher over ``store`` with a fake runner, checking liveness every 10 ms."""
    tracker = AgentTracker(enqueue=lambda key: None)
    runner = FakeRunner()
    dispatcher = MissionDispatcher(
        store=store,
        missions=store.missions,
        commands=runner,
        agents=tracker,
        recorder=EventRecorder(store.events),
        rng=random.Random(seed),
        liveness_interval=0.01,
    )
    return Harness(store, tracker, runner, dispatcher)
