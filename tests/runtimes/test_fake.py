"""FakeRuntime: the in-memory driver follows the Docker driver's contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentic_sandbox.errors import (
    ImageNotFound,
    InvalidRuntimeSpec,
    NameConflict,
    RuntimeAPIError,
    RuntimeObjectNotFound,
    RuntimeUnavailable,
)
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_MANAGED,
    LABEL_UID,
    STREAM_CONNECTED,
    Runtime,
    RuntimeEvent,
    SandboxSpec,
    SandboxStatus,
)
from agentic_sandbox.runtimes.fake import Call, FakeClock, FakeRuntime


def make_spec(
    name: str = "web", *, uid: str = "uid-1", controller: str = "c1", **fields: Any
) -> SandboxSpec:
    labels = {LABEL_CONTROLLER: controller, LABEL_UID: uid}
    return SandboxSpec(name=name, image="busybox", labels=labels, **fields)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeRuntime:
    return FakeRuntime(clock=clock.now)


async def take(stream: AsyncIterator[RuntimeEvent], count: int) -> list[RuntimeEvent]:
    return [await anext(stream) for _ in range(count)]


def test_fake_satisfies_protocol(fake: FakeRuntime) -> None:
    runtime: Runtime = fake
    assert runtime.name == "fake"


async def test_create_start_inspect(fake: FakeRuntime, clock: FakeClock) -> None:
    created = await fake.create(make_spec())
    clock.advance(5)
    await fake.start(created.id)

    state = await fake.inspect(created.id)

    assert created.status is SandboxStatus.CREATED
    assert created.labels[LABEL_MANAGED] == "true"
    assert state is not None
    assert state.status is SandboxStatus.RUNNING
    assert state.created_at == FakeClock().now()
    assert state.started_at is not None
    assert (state.started_at - state.created_at).total_seconds() == 5
    assert state.ip is not None
    assert state.exit_code is None
    assert await fake.inspect("web") == state


async def test_create_adopts_same_uid(fake: FakeRuntime) -> None:
    first = await fake.create(make_spec())

    again = await fake.create(make_spec())

    assert again.id == first.id
    assert len(fake.sandboxes) == 1


async def test_create_name_conflict(fake: FakeRuntime) -> None:
    await fake.create(make_spec(uid="uid-1"))

    with pytest.raises(NameConflict, match="does not own"):
        await fake.create(make_spec(uid="uid-2"))


async def test_create_missing_image_and_network() -> None:
    fake = FakeRuntime(images=["busybox:other"], networks=["lab"])

    with pytest.raises(ImageNotFound, match="busybox"):
        await fake.create(make_spec())
    fake.images = None
    with pytest.raises(InvalidRuntimeSpec, match="absent"):
        await fake.create(make_spec(network="absent"))
    assert (await fake.create(make_spec(network="lab"))).status is SandboxStatus.CREATED


async def test_stop_remove_idempotent(fake: FakeRuntime) -> None:
    state = await fake.create(make_spec())
    await fake.start(state.id)
    await fake.start(state.id)

    await fake.stop(state.id, timeout=1)
    await fake.stop(state.id, timeout=1)
    stopped = await fake.inspect(state.id)
    await fake.remove(state.id)
    await fake.remove(state.id)
    await fake.stop(state.id, timeout=1)

    assert stopped is not None
    assert stopped.status is SandboxStatus.EXITED
    assert stopped.exit_code == 143
    assert stopped.ip is None
    assert await fake.inspect(state.id) is None
    with pytest.raises(RuntimeObjectNotFound):
        await fake.start(state.id)


async def test_exit_with_oom(fake: FakeRuntime, clock: FakeClock) -> None:
    state = await fake.create(make_spec())
    await fake.start(state.id)
    clock.advance(3)

    fake.exit(state.id, 137, oom=True)
    exited = await fake.inspect(state.id)

    assert exited is not None
    assert exited.status is SandboxStatus.EXITED
    assert exited.exit_code == 137
    assert exited.oom_killed is True
    assert exited.finished_at == clock.now()
    with pytest.raises(ValueError, match="not running"):
        fake.exit(state.id, 0)


async def test_restart_clears_exit(fake: FakeRuntime) -> None:
    state = await fake.create(make_spec())
    await fake.start(state.id)
    fake.exit(state.id, 1, oom=True)

    await fake.start(state.id)
    restarted = await fake.inspect(state.id)

    assert restarted is not None
    assert restarted.running
    assert restarted.exit_code is None
    assert restarted.oom_killed is False


async def test_list_owned_filters(fake: FakeRuntime) -> None:
    mine = await fake.create(make_spec("a", uid="u-a", controller="c1"))
    await fake.create(make_spec("b", uid="u-b", controller="c2"))

    own = await fake.list_owned({LABEL_CONTROLLER: "c1"})
    by_uid = await fake.list_owned({LABEL_CONTROLLER: "c1", LABEL_UID: "u-b"})

    assert [state.id for state in own] == [mine.id]
    assert by_uid == []


async def test_events_follow_changes(fake: FakeRuntime) -> None:
    stream = fake.events({LABEL_CONTROLLER: "c1"})
    opened = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # one loop step, so the stream subscribes before the first change

    state = await fake.create(make_spec())
    await fake.create(make_spec("other", uid="u-2", controller="c2"))
    await fake.start(state.id)
    fake.exit(state.id, 1, oom=True)
    fake.remove_out_of_band(state.id)

    events = [await opened, *await take(stream, 5)]
    await stream.aclose()

    assert [event.action for event in events] == [
        STREAM_CONNECTED,
        "create",
        "start",
        "oom",
        "die",
        "destroy",
    ]
    events = events[1:]
    assert {event.sandbox_id for event in events} == {state.id}
    assert events[0].labels[LABEL_UID] == "uid-1"


async def test_outage_breaks_calls_and_streams(fake: FakeRuntime) -> None:
    state = await fake.create(make_spec())
    stream = fake.events({})
    assert (await anext(stream)).action == STREAM_CONNECTED
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)

    fake.set_available(False)

    with pytest.raises(RuntimeUnavailable):
        await pending
    for call in (fake.ping(), fake.inspect(state.id), fake.list_owned({}), fake.start(state.id)):
        with pytest.raises(RuntimeUnavailable):
            await call
    with pytest.raises(RuntimeUnavailable):
        await anext(fake.events({}))

    fake.set_available(True)
    await fake.start(state.id)
    running = await fake.inspect(state.id)
    assert running is not None
    assert running.running


async def test_fail_next_raises_once(fake: FakeRuntime) -> None:
    state = await fake.create(make_spec())
    fake.fail_next("start", RuntimeAPIError("boom"))

    with pytest.raises(RuntimeAPIError, match="boom"):
        await fake.start(state.id)
    await fake.start(state.id)

    running = await fake.inspect(state.id)
    assert running is not None
    assert running.running


async def test_calls_recorded(fake: FakeRuntime) -> None:
    state = await fake.create(make_spec())
    await fake.start(state.id)
    await fake.list_owned({LABEL_UID: "uid-1", LABEL_CONTROLLER: "c1"})
    fake.set_available(False)
    with pytest.raises(RuntimeUnavailable):
        await fake.stop(state.id, timeout=1)

    assert fake.calls == [
        Call("create", "web"),
        Call("start", state.id),
        Call("list_owned", f"{LABEL_CONTROLLER}=c1,{LABEL_UID}=uid-1"),
        Call("stop", state.id),
    ]
    assert fake.methods_called() == ["create", "start", "list_owned", "stop"]


async def test_close_ends_streams(fake: FakeRuntime) -> None:
    stream = fake.events({})
    assert (await anext(stream)).action == STREAM_CONNECTED
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)

    await fake.close()

    with pytest.raises(RuntimeUnavailable):
        await pending
    with pytest.raises(RuntimeUnavailable, match="closed"):
        await fake.ping()
