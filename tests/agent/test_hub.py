"""AgentHub: commands whose agent lost them end with an error; stale agents get no command."""

from __future__ import annotations

import asyncio

import pytest

from agentic_sandbox.agent.hub import LOST_EXIT_CODE, AgentHub, OutboxItem
from agentic_sandbox.controller.agent_commands import CommandExit, CommandSpec
from agentic_sandbox.errors import AgentNotConnected

KEY = "default/web"


async def test_reconnect_without_command_ends_it() -> None:
    hub = AgentHub()
    hub.attach(KEY, "first", asyncio.Queue[OutboxItem]())
    lost = await hub.start(KEY, CommandSpec(argv=["sleep", "8"]))
    kept = await hub.start(KEY, CommandSpec(argv=["sleep", "9"]))

    hub.attach(KEY, "second", asyncio.Queue[OutboxItem](), known={kept.command_id})

    events = [event async for event in lost.events()]
    assert len(events) == 1
    assert isinstance(events[0], CommandExit)
    assert events[0].exit_code == LOST_EXIT_CODE
    assert "does not know it" in events[0].error
    assert hub.watched(KEY) == [kept.command_id]


async def test_stale_agent_gets_no_command() -> None:
    hub = AgentHub(is_stale=lambda key: key == KEY)
    hub.attach(KEY, "first", asyncio.Queue[OutboxItem]())

    with pytest.raises(AgentNotConnected, match="missed its heartbeats"):
        await hub.start(KEY, CommandSpec(argv=["true"]))

    assert hub.watched(KEY) == []
