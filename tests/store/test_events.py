"""SqliteEventLog: ids, filters, retention and subscriptions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from agentic_sandbox.crds.event import Event, EventName, EventSeverity
from agentic_sandbox.crds.meta import utcnow
from agentic_sandbox.store.sqlite import SqliteStore
from tests.store.conftest import DEADLINE, wait_until


def event(name: str = EventName.CONTAINER_CREATED, instance: str = "default/web") -> Event:
    return Event(name=name, instance=instance, message=f"{name} for {instance}")


async def next_event(events: AsyncIterator[Event]) -> Event:
    return await asyncio.wait_for(anext(events), DEADLINE)


async def test_append_assigns_increasing_ids(store: SqliteStore) -> None:
    appended = [await store.events.append(event()) for _ in range(5)]

    ids = [item.id or 0 for item in appended]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert [item.id or 0 for item in await store.events.list()] == ids


async def test_append_keeps_fields(store: SqliteStore) -> None:
    original = Event(
        name=EventName.INSTANCE_STALLED,
        severity=EventSeverity.WARNING,
        reason="ImageNotFound",
        message="image 'x' not found",
        instance="team/web",
        uid="1234",
        source="file:/srv/web.yaml",
        details={"image": "x"},
        id=999,
    )

    appended = await store.events.append(original)
    (listed,) = await store.events.list()

    assert appended.id != 999
    assert listed == appended
    assert listed.model_dump(exclude={"id"}) == original.model_dump(exclude={"id"})


async def test_list_since_id_pages_forward(store: SqliteStore) -> None:
    ids = [(await store.events.append(event())).id for _ in range(7)]

    first = await store.events.list(since_id=0, limit=3)
    second = await store.events.list(since_id=first[-1].id, limit=3)
    third = await store.events.list(since_id=second[-1].id, limit=3)

    assert [item.id for item in first + second + third] == ids


async def test_list_without_since_returns_newest(store: SqliteStore) -> None:
    ids = [(await store.events.append(event())).id for _ in range(7)]

    newest = await store.events.list(limit=3)

    assert [item.id for item in newest] == ids[-3:]


async def test_list_filters_instance_and_prefix(store: SqliteStore) -> None:
    await store.events.append(event(EventName.CONTAINER_CREATED, "default/a"))
    await store.events.append(event(EventName.INSTANCE_RUNNING, "default/a"))
    await store.events.append(event(EventName.CONTAINER_STARTED, "default/b"))
    await store.events.append(event(EventName.SOURCE_INVALID, None))  # type: ignore[arg-type]

    for_a = await store.events.list(instance="default/a")
    containers = await store.events.list(name_prefix="container.")
    containers_of_b = await store.events.list(instance="default/b", name_prefix="container.")

    assert [item.name for item in for_a] == ["container.created", "instance.running"]
    assert [item.name for item in containers] == ["container.created", "container.started"]
    assert [item.instance for item in containers_of_b] == ["default/b"]


async def test_list_limit_must_be_positive(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.events.list(limit=0)


async def test_events_survive_reopen(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        first = await store.events.append(event())
    async with SqliteStore(db_path) as store:
        listed = await store.events.list()
        second = await store.events.append(event())

    assert listed == [first]
    assert (second.id or 0) > (first.id or 0)


async def test_retention_keeps_newest_by_count(db_path: Path) -> None:
    async with SqliteStore(db_path, max_events=10) as store:
        ids = [(await store.events.append(event())).id for _ in range(25)]
        kept_before_prune = len(await store.events.list(limit=1000))
        await store.events.prune()
        kept = await store.events.list(limit=1000)

    assert kept_before_prune <= 10 + store.events.prune_interval
    assert [item.id for item in kept] == ids[-10:]


async def test_retention_drops_old_by_age(db_path: Path) -> None:
    async with SqliteStore(db_path, max_event_age=timedelta(days=7)) as store:
        old = event().model_copy(update={"time": utcnow() - timedelta(days=8)})
        await store.events.append(old)
        recent = await store.events.append(event())

        deleted = await store.events.prune()
        kept = await store.events.list()

    assert deleted == 1
    assert kept == [recent]


async def test_ids_not_reused_after_pruning(db_path: Path) -> None:
    async with SqliteStore(db_path, max_event_age=timedelta(days=1)) as store:
        old = event().model_copy(update={"time": utcnow() - timedelta(days=2)})
        pruned = await store.events.append(old)
        await store.events.prune()
        assert await store.events.list() == []
    async with SqliteStore(db_path) as store:
        fresh = await store.events.append(event())

    assert (fresh.id or 0) > (pruned.id or 0)


async def test_open_prunes(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        for _ in range(5):
            await store.events.append(event())
    async with SqliteStore(db_path, max_events=2) as store:
        kept = await store.events.list()

    assert len(kept) == 2


async def test_subscribe_yields_new_events(store: SqliteStore) -> None:
    await store.events.append(event(instance="default/old"))
    events = store.events.subscribe()
    waiting = asyncio.create_task(next_event(events))
    await wait_for_subscriber(store)

    appended = await store.events.append(event(instance="default/new"))

    assert await waiting == appended
    await events.aclose()


async def test_subscribe_since_replays(store: SqliteStore) -> None:
    appended = [await store.events.append(event()) for _ in range(3)]
    events = store.events.subscribe(since_id=appended[0].id)

    replayed = [await next_event(events), await next_event(events)]
    live_task = asyncio.create_task(next_event(events))
    live = await store.events.append(event())

    assert replayed == appended[1:]
    assert await live_task == live


async def test_subscribe_ends_on_close(db_path: Path) -> None:
    store = await SqliteStore(db_path).open()
    events = store.events.subscribe()
    waiting = asyncio.create_task(anext(events))
    await wait_for_subscriber(store)

    await store.close()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, DEADLINE)


async def wait_for_subscriber(store: SqliteStore) -> None:
    await wait_until(lambda: len(store.events._appended._waiters) > 0)


def test_max_events_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_events"):
        SqliteStore(tmp_path / "store.db", max_events=0)
