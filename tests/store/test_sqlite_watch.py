"""SqliteStore watch: replay, live changes, compaction, close and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import Field

from agentic_sandbox.crds import registry
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER, ObjectMeta, Resource
from agentic_sandbox.errors import Expired
from agentic_sandbox.store import sqlite
from agentic_sandbox.store.base import WatchEvent, WatchEventType
from agentic_sandbox.store.sqlite import SqliteStore
from tests.store.conftest import DEADLINE, make_instance, wait_until

KIND = Instance.KIND


class Probe(Resource):
    """A second kind, to check that a watch yields only its own kind."""

    KIND: ClassVar[str] = "Probe"

    kind: Literal["Probe"] = "Probe"
    spec: dict[str, str] = Field(default_factory=dict)
    status: dict[str, str] = Field(default_factory=dict)


@pytest.fixture
def probe_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.KINDS, Probe.KIND, Probe)


async def next_event(events: AsyncIterator[WatchEvent]) -> WatchEvent:
    return await asyncio.wait_for(anext(events), DEADLINE)


async def collect(events: AsyncIterator[WatchEvent], count: int) -> list[WatchEvent]:
    return [await next_event(events) for _ in range(count)]


def summary(events: list[WatchEvent]) -> list[tuple[str, str, int]]:
    return [(e.type.value, e.object.metadata.name, e.resource_version) for e in events]


async def test_watch_replays_history(store: SqliteStore) -> None:
    created = await store.create(make_instance("a", finalizers=[RUNTIME_FINALIZER]))
    await store.create(make_instance("b"))
    created.metadata.labels["x"] = "y"
    await store.update(created)
    await store.delete(KIND, "default", "b")
    await store.delete(KIND, "default", "a")

    events = await collect(store.watch(KIND, 0), 5)

    assert summary(events) == [
        ("ADDED", "a", 1),
        ("ADDED", "b", 2),
        ("MODIFIED", "a", 3),
        ("DELETED", "b", 4),
        ("MODIFIED", "a", 5),
    ]
    assert events[4].object.metadata.deletion_timestamp is not None
    assert all(e.object.metadata.resource_version == str(e.resource_version) for e in events)


async def test_watch_from_list_version_sees_later_changes(store: SqliteStore) -> None:
    await store.create(make_instance("a"))
    listing = await store.list(KIND)
    watch = store.watch(KIND, listing.resource_version)

    await store.create(make_instance("b"))

    event = await next_event(watch)
    assert (event.type, event.object.metadata.name) == (WatchEventType.ADDED, "b")


async def test_watch_delivers_live_changes(store: SqliteStore) -> None:
    await store.create(make_instance("a"))
    watch = store.watch(KIND, 0)
    replayed = await next_event(watch)
    waiting = asyncio.create_task(next_event(watch))

    created = await store.create(make_instance("b"))
    event = await waiting

    assert replayed.object.metadata.name == "a"
    assert event.type == WatchEventType.ADDED
    assert event.object == created


async def test_watch_deleted_carries_last_state(store: SqliteStore) -> None:
    await store.create(make_instance(finalizers=[RUNTIME_FINALIZER]))
    marked = await store.delete(KIND, "default", "web")
    assert marked is not None
    watch = store.watch(KIND, int(marked.metadata.resource_version or 0))

    marked.metadata.finalizers.clear()
    await store.update(marked)

    event = await next_event(watch)
    assert event.type == WatchEventType.DELETED
    assert event.resource_version == 3
    assert event.object.metadata.deletion_timestamp == marked.metadata.deletion_timestamp


async def test_watch_skips_other_kinds(store: SqliteStore, probe_kind: None) -> None:
    await store.create(Probe(metadata=ObjectMeta(name="p")))
    await store.create(make_instance("a"))
    await store.create(Probe(metadata=ObjectMeta(name="q")))
    await store.create(make_instance("b"))

    events = await collect(store.watch(KIND, 0), 2)
    probes = await collect(store.watch(Probe.KIND, 0), 2)

    assert summary(events) == [("ADDED", "a", 2), ("ADDED", "b", 4)]
    assert summary(probes) == [("ADDED", "p", 1), ("ADDED", "q", 3)]


async def test_watch_concurrent_watchers_see_all(store: SqliteStore) -> None:
    watches = [store.watch(KIND, 0) for _ in range(3)]
    readers = [asyncio.create_task(collect(watch, 10)) for watch in watches]

    for index in range(10):
        await store.create(make_instance(f"w-{index}"))

    results = await asyncio.gather(*readers)
    expected = [("ADDED", f"w-{index}", index + 1) for index in range(10)]
    for events in results:
        assert summary(events) == expected


async def test_watch_misses_no_concurrent_write(store: SqliteStore) -> None:
    """Writers race the watch's read-then-wait step; every write must still arrive once."""
    count = 200
    watch = store.watch(KIND, 0)
    reader = asyncio.create_task(collect(watch, count))

    async def write(index: int) -> None:
        created = await store.create(make_instance(f"w-{index}"))
        created.metadata.labels["n"] = str(index)
        await store.update(created)

    await asyncio.gather(*(write(index) for index in range(count // 2)))
    events = await reader

    versions = [event.resource_version for event in events]
    assert versions == list(range(1, count + 1))


async def test_watch_reads_past_one_batch(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "WATCH_BATCH", 3)
    for index in range(8):
        await store.create(make_instance(f"w-{index}"))

    events = await collect(store.watch(KIND, 0), 8)

    assert [event.resource_version for event in events] == list(range(1, 9))


async def test_watch_compacted_history_raises_expired(db_path: Path) -> None:
    async with SqliteStore(db_path, history_limit=3) as store:
        for index in range(6):
            await store.create(make_instance(f"w-{index}"))

        with pytest.raises(Expired, match="resourceVersion 2 is too old"):
            await next_event(store.watch(KIND, 2))
        # The oldest kept change is 4, so a watch from 3 replays everything kept.
        events = await collect(store.watch(KIND, 3), 3)

    assert [event.resource_version for event in events] == [4, 5, 6]


async def test_watch_falling_behind_raises_expired(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "WATCH_BATCH", 1)
    async with SqliteStore(db_path, history_limit=2) as store:
        await store.create(make_instance("w-0"))
        await store.create(make_instance("w-1"))
        watch = store.watch(KIND, 0)
        first = await next_event(watch)

        for index in range(2, 6):
            await store.create(make_instance(f"w-{index}"))

        with pytest.raises(Expired):
            await next_event(watch)

    assert first.resource_version == 1


async def test_watch_ends_when_store_closes(db_path: Path) -> None:
    store = await SqliteStore(db_path).open()
    watch = store.watch(KIND, 0)
    waiting = asyncio.create_task(anext(watch))
    await wait_until(lambda: len(store._changed._waiters) == 1)

    await store.close()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, DEADLINE)


async def test_watch_cancelled_unsubscribes(store: SqliteStore) -> None:
    watch = store.watch(KIND, 0)
    waiting = asyncio.create_task(anext(watch))
    await wait_until(lambda: len(store._changed._waiters) == 1)

    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(store._changed._waiters) == 0


async def test_watch_negative_version_raises(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        store.watch(KIND, -1)
