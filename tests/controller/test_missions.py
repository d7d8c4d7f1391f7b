"""MissionDispatcher: executor choice, records, events, and honest ends, over a real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentic_sandbox.controller.agent_commands import CommandOutput
from agentic_sandbox.controller.mission_select import (
    CAPABILITY_LABEL_PREFIX,
    ExecutorFilter,
    NoMatchingExecutor,
    NoReadyExecutor,
)
from agentic_sandbox.controller.missions import MissionDispatcher
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.mission import MissionState
from agentic_sandbox.store.sqlite import SqliteStore
from tests.controller.mission_support import Harness, build_harness

DEADLINE = 5.0


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with SqliteStore(tmp_path / "state.db") as store:
        built = build_harness(store)
        yield built
        await built.dispatcher.stop()
        built.tracker.close_all("test ended")


async def test_dispatch_picks_least_busy(harness: Harness) -> None:
    for name in ("a", "b", "c"):
        await harness.add_executor(name)

    chosen = [await harness.dispatch(f"m{index}") for index in range(3)]

    assert sorted(chosen) == ["default/a", "default/b", "default/c"]
    assert {harness.dispatcher.busy(key) for key in chosen} == {1}


async def test_dispatch_spreads_ties_over_executors(harness: Harness) -> None:
    for name in ("a", "b", "c"):
        await harness.add_executor(name)

    chosen = []
    for index in range(12):
        chosen.append(await harness.dispatch(f"m{index}"))
        harness.runner.sessions[-1].finish()
        async with asyncio.timeout(DEADLINE):
            await harness.dispatcher.join()

    # Every executor was idle at each dispatch, so a first-agent rule would pick "a" each time.
    assert len(set(chosen)) > 1


async def test_dispatch_skips_unready_and_disconnected(harness: Harness) -> None:
    await harness.add_executor("down", ready=False)
    await harness.add_executor("silent", connected=False)
    await harness.add_executor("up")

    chosen = [await harness.dispatch(f"m{index}") for index in range(3)]

    assert chosen == ["default/up"] * 3


async def test_dispatch_without_ready_executor(harness: Harness) -> None:
    await harness.add_executor("down", ready=False)

    with pytest.raises(NoReadyExecutor, match="namespace default"):
        await harness.dispatch("m1")


async def test_dispatch_with_no_match(harness: Harness) -> None:
    await harness.add_executor("a")

    with pytest.raises(NoMatchingExecutor, match="capabilities=gpu"):
        await harness.dispatch("m1", executor_filter=ExecutorFilter(capabilities=("gpu",)))
    assert await harness.store.missions.list() == []


async def test_filter_by_agent_and_capabilities(harness: Harness) -> None:
    await harness.add_executor("plain")
    await harness.add_executor("py", labels={f"{CAPABILITY_LABEL_PREFIX}python": "true"})
    await harness.add_executor("tty", capabilities=("exec", "pty"))

    by_label = await harness.dispatch(
        "m1", executor_filter=ExecutorFilter(capabilities=("python", "exec"))
    )
    by_agent = await harness.dispatch("m2", executor_filter=ExecutorFilter(agent_id="plain"))
    by_report = await harness.dispatch("m3", executor_filter=ExecutorFilter(capabilities=("pty",)))

    assert by_label == "default/py"
    assert by_agent == "default/plain"
    assert by_report == "default/tty"


async def test_mission_completes_with_output_and_events(harness: Harness) -> None:
    await harness.add_executor("a")
    await harness.dispatch("m1")
    session = harness.runner.sessions[0]
    session.queue.put_nowait(CommandOutput(stream="stdout", data=b"hi\n"))
    session.finish(0)

    async with asyncio.timeout(DEADLINE):
        await harness.dispatcher.join()

    mission = await harness.store.missions.get("m1")
    assert mission.state == MissionState.SUCCEEDED
    assert mission.exit_code == 0
    assert mission.duration_ms == 7
    assert mission.output_bytes == 3
    assert session.spec.argv == ["/bin/sh", "-c", "echo hi && exit 0"]
    assert session.spec.env["MISSION_ID"] == "m1"
    chunks = await harness.store.missions.read_output("m1")
    assert [chunk.data for chunk in chunks] == [b"hi\n"]
    assert await harness.event_names() == ["mission.dispatched", "mission.completed"]
    completed = (await harness.store.events.list(limit=1))[0]
    assert completed.details["exitCode"] == "0"
    assert completed.details["durationMs"] == "7"
    assert harness.dispatcher.busy("default/a") == 0


async def test_mission_exit_codes_and_failures(harness: Harness) -> None:
    await harness.add_executor("a")
    await harness.dispatch("exit3")
    harness.runner.sessions[-1].finish(3)
    await harness.dispatch("slow")
    harness.runner.sessions[-1].finish(143, signal=15, timed_out=True, error="timed out after 1 s")

    async with asyncio.timeout(DEADLINE):
        await harness.dispatcher.join()

    exit3 = await harness.store.missions.get("exit3")
    slow = await harness.store.missions.get("slow")
    assert (exit3.state, exit3.reason, exit3.exit_code) == (MissionState.FAILED, "NonZeroExit", 3)
    assert (slow.state, slow.reason) == (MissionState.FAILED, "TimedOut")
    names = await harness.event_names()
    assert names.count("mission.completed") == 1
    assert names.count("mission.failed") == 1


async def test_agent_gone_before_start_fails(harness: Harness) -> None:
    await harness.add_executor("a")
    harness.runner.disconnected.add("default/a")

    await harness.dispatch("m1")

    mission = await harness.store.missions.get("m1")
    assert mission.state == MissionState.FAILED
    assert mission.reason == "AgentNotConnected"
    assert harness.dispatcher.busy("default/a") == 0


async def test_sandbox_gone_makes_mission_lost(harness: Harness) -> None:
    await harness.add_executor("a")
    await harness.dispatch("m1")

    harness.tracker.forget("default/a")
    async with asyncio.timeout(DEADLINE):
        await harness.dispatcher.join()

    mission = await harness.store.missions.get("m1")
    assert mission.state == MissionState.LOST
    assert mission.reason == "SandboxGone"
    assert harness.runner.sessions[0].abandoned
    assert (await harness.event_names())[-1] == "mission.failed"


async def test_recover_marks_unfinished_lost(harness: Harness) -> None:
    await harness.add_executor("a")
    await harness.dispatch("m1")
    await harness.dispatcher.stop()
    restarted = MissionDispatcher(
        store=harness.store,
        missions=harness.store.missions,
        commands=harness.runner,
        agents=harness.tracker,
        recorder=EventRecorder(harness.store.events),
    )

    lost = await restarted.recover()

    assert [mission.id for mission in lost] == ["m1"]
    stored = await harness.store.missions.get("m1")
    assert stored.state == MissionState.LOST
    assert stored.reason == "ControllerRestarted"
    failed = (await harness.store.events.list(limit=1))[0]
    assert failed.name == "mission.failed"
    assert failed.instance == "default/a"
