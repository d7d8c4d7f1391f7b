"""The mission log: records, the output cap, following output, and survival across reopen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentic_sandbox.crds.meta import utcnow
from agentic_sandbox.crds.mission import Mission, MissionState
from agentic_sandbox.errors import AlreadyExists, NotFound
from agentic_sandbox.store.missions import SqliteMissionLog
from agentic_sandbox.store.sqlite import SqliteStore

DEADLINE = 5.0


def mission(mission_id: str = "m1", *, session: str = "s1") -> Mission:
    return Mission(
        id=mission_id,
        session_id=session,
        objective="echo hi",
        command=["/bin/sh", "-c", "echo hi"],
        instance="default/web",
        agent_id="web",
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "state.db") as opened:
        yield opened


async def test_create_get_and_duplicate(store: SqliteStore) -> None:
    await store.missions.create(mission())

    stored = await store.missions.get("m1")

    assert stored.state == MissionState.DISPATCHED
    assert stored.objective == "echo hi"
    with pytest.raises(AlreadyExists):
        await store.missions.create(mission())
    with pytest.raises(NotFound):
        await store.missions.get("missing")


async def test_list_filters_by_session_and_state(store: SqliteStore) -> None:
    await store.missions.create(mission("a", session="s1"))
    await store.missions.create(mission("b", session="s2"))
    running = (await store.missions.get("b")).model_copy(update={"state": MissionState.RUNNING})
    await store.missions.update(running)
    await store.missions.create(mission("c", session="s1"))

    everything = await store.missions.list()
    first_session = await store.missions.list(session_id="s1")
    running_only = await store.missions.list(states=[MissionState.RUNNING])
    newest = await store.missions.list(limit=2)

    assert [item.id for item in everything] == ["a", "b", "c"]
    assert [item.id for item in first_session] == ["a", "c"]
    assert [item.id for item in running_only] == ["b"]
    assert [item.id for item in newest] == ["b", "c"]


async def test_output_is_cut_at_cap(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        log = SqliteMissionLog(store._db, max_output_bytes=10)
        await log.create(mission())

        first = await log.append_output("m1", "stdout", b"12345678")
        second = await log.append_output("m1", "stderr", b"abcdef")
        third = await log.append_output("m1", "stdout", b"zz")
        chunks = await log.read_output("m1")

    assert (first.stored, first.truncated) == (8, False)
    assert (second.stored, second.truncated) == (2, True)
    assert (third.stored, third.truncated) == (0, True)
    assert b"".join(chunk.data for chunk in chunks) == b"12345678ab"
    assert [chunk.stream for chunk in chunks] == ["stdout", "stderr"]


async def test_follow_output_ends_when_mission_ends(store: SqliteStore) -> None:
    record = await store.missions.create(mission())
    await store.missions.append_output("m1", "stdout", b"one\n")
    received: list[bytes] = []
    first_seen = asyncio.Event()

    async def follow() -> None:
        async for chunk in store.missions.follow_output("m1"):
            received.append(chunk.data)
            first_seen.set()

    follower = asyncio.create_task(follow())
    async with asyncio.timeout(DEADLINE):
        await first_seen.wait()
        await store.missions.append_output("m1", "stdout", b"two\n")
        ended = record.model_copy(update={"state": MissionState.SUCCEEDED, "exit_code": 0})
        await store.missions.update(ended)
        await follower

    assert received == [b"one\n", b"two\n"]


async def test_follow_output_of_unknown_mission(store: SqliteStore) -> None:
    with pytest.raises(NotFound):
        async for _ in store.missions.follow_output("missing"):
            pass


async def test_end_unfinished_marks_lost(store: SqliteStore) -> None:
    await store.missions.create(mission("running"))
    done = await store.missions.create(mission("done"))
    await store.missions.update(done.model_copy(update={"state": MissionState.SUCCEEDED}))

    ended = await store.missions.end_unfinished(
        state=MissionState.LOST, reason="ControllerRestarted", message="gone", finished_at=utcnow()
    )

    assert [item.id for item in ended] == ["running"]
    stored = await store.missions.get("running")
    assert stored.state == MissionState.LOST
    assert stored.reason == "ControllerRestarted"
    assert stored.finished_at is not None
    assert (await store.missions.get("done")).state == MissionState.SUCCEEDED


async def test_missions_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStore(path) as store:
        await store.missions.create(mission())
        await store.missions.append_output("m1", "stdout", b"kept")

    async with SqliteStore(path) as reopened:
        stored = await reopened.missions.get("m1")
        chunks = await reopened.missions.read_output("m1")

    assert stored.id == "m1"
    assert [chunk.data for chunk in chunks] == [b"kept"]


async def test_prune_keeps_unfinished(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        log = SqliteMissionLog(store._db, max_missions=1)
        for name in ("old", "newer"):
            record = await log.create(mission(name))
            await log.update(record.model_copy(update={"state": MissionState.FAILED}))
        await log.append_output("old", "stdout", b"x")
        await log.create(mission("running"))

        remaining = [item.id for item in await log.list()]
        old_output = await log.read_output("old")

    assert remaining == ["newer", "running"]
    assert old_output == []
