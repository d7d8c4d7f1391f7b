"""apply, delete_if_owned and list_by_source over a real SqliteStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER, SOURCE_ANNOTATION, Resource
from agentic_sandbox.errors import Conflict, NotFound
from agentic_sandbox.store.apply import (
    APPLY_ATTEMPTS,
    ApplyOutcome,
    apply,
    delete_if_owned,
    list_by_source,
)
from agentic_sandbox.store.sqlite import SqliteStore
from tests.store.conftest import make_instance

KIND = Instance.KIND
SOURCE = "file:/srv/manifests/web.yaml"


class RacingStore(SqliteStore):
    """A store where another writer changes the object right before the next updates."""

    races_left = 0

    async def update(self, obj: Resource) -> Resource:
        if self.races_left > 0:
            self.races_left -= 1
            current = await self.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
            assert isinstance(current, Instance)
            current.status.restart_count += 1
            await self.update_status(current)
        return await super().update(obj)


class HidingStore(SqliteStore):
    """A store whose first get misses an object that another writer has just created."""

    hide_once = True

    async def get(self, kind: str, namespace: str, name: str) -> Resource:
        if self.hide_once:
            self.hide_once = False
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return await super().get(kind, namespace, name)


async def test_apply_creates_missing(store: SqliteStore) -> None:
    applied, outcome = await apply(store, make_instance(), source=SOURCE)

    assert outcome == ApplyOutcome.CREATED
    assert applied.metadata.annotations[SOURCE_ANNOTATION] == SOURCE
    assert await store.get(KIND, "default", "web") == applied


async def test_apply_same_object_is_unchanged(store: SqliteStore) -> None:
    created, _ = await apply(store, make_instance(), source=SOURCE)

    again, outcome = await apply(store, make_instance(), source=SOURCE)

    assert outcome == ApplyOutcome.UNCHANGED
    assert again == created
    assert await store.current_resource_version() == 1


async def test_apply_spec_change_updates(store: SqliteStore) -> None:
    await apply(store, make_instance())
    desired = make_instance()
    desired.spec.env["MODE"] = "changed"

    applied, outcome = await apply(store, desired)

    assert outcome == ApplyOutcome.UPDATED
    assert applied.metadata.generation == 2
    assert isinstance(applied, Instance)
    assert applied.spec.env == {"MODE": "changed"}


async def test_apply_label_change_keeps_generation(store: SqliteStore) -> None:
    await apply(store, make_instance(labels={"tier": "a"}))

    applied, outcome = await apply(store, make_instance(labels={"tier": "b"}))

    assert outcome == ApplyOutcome.UPDATED
    assert applied.metadata.labels == {"tier": "b"}
    assert applied.metadata.generation == 1


async def test_apply_keeps_server_fields(store: SqliteStore) -> None:
    created, _ = await apply(store, make_instance())
    assert isinstance(created, Instance)
    created.metadata.finalizers.append(RUNTIME_FINALIZER)
    with_finalizer = await store.update(created)
    assert isinstance(with_finalizer, Instance)
    with_finalizer.status.phase = Phase.RUNNING
    await store.update_status(with_finalizer)

    applied, outcome = await apply(store, make_instance(annotations={"note": "x"}))

    assert outcome == ApplyOutcome.UPDATED
    assert isinstance(applied, Instance)
    assert applied.metadata.uid == created.metadata.uid
    assert applied.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert applied.metadata.finalizers == [RUNTIME_FINALIZER]
    assert applied.status.phase == Phase.RUNNING
    assert applied.metadata.annotations == {"note": "x"}


async def test_apply_retries_after_conflict(db_path: Path) -> None:
    async with RacingStore(db_path) as store:
        await apply(store, make_instance())
        store.races_left = 2
        desired = make_instance(labels={"tier": "b"})

        applied, outcome = await apply(store, desired)

    assert outcome == ApplyOutcome.UPDATED
    assert isinstance(applied, Instance)
    assert applied.metadata.labels == {"tier": "b"}
    assert applied.status.restart_count == 2


async def test_apply_gives_up_after_attempts(db_path: Path) -> None:
    async with RacingStore(db_path) as store:
        await apply(store, make_instance())
        store.races_left = APPLY_ATTEMPTS

        with pytest.raises(Conflict, match="Instance default/web"):
            await apply(store, make_instance(labels={"tier": "b"}))


async def test_apply_merges_when_create_races(db_path: Path) -> None:
    async with HidingStore(db_path) as store:
        await store.create(make_instance())
        store.hide_once = True

        applied, outcome = await apply(store, make_instance(labels={"tier": "b"}))

    assert outcome == ApplyOutcome.UPDATED
    assert applied.metadata.labels == {"tier": "b"}


async def test_delete_if_owned_deletes_own(store: SqliteStore) -> None:
    await apply(store, make_instance(), source=SOURCE)

    assert await delete_if_owned(store, KIND, "default", "web", SOURCE) is True

    with pytest.raises(NotFound):
        await store.get(KIND, "default", "web")


async def test_delete_if_owned_keeps_other_source(store: SqliteStore) -> None:
    await apply(store, make_instance(), source="api")

    assert await delete_if_owned(store, KIND, "default", "web", SOURCE) is False

    assert (await store.get(KIND, "default", "web")).metadata.deletion_timestamp is None


async def test_delete_if_owned_missing_is_false(store: SqliteStore) -> None:
    assert await delete_if_owned(store, KIND, "default", "web", SOURCE) is False


async def test_delete_if_owned_marks_finalized(store: SqliteStore) -> None:
    await apply(store, make_instance(finalizers=[RUNTIME_FINALIZER]), source=SOURCE)

    assert await delete_if_owned(store, KIND, "default", "web", SOURCE) is True

    marked = await store.get(KIND, "default", "web")
    assert marked.metadata.deletion_timestamp is not None


async def test_list_by_source_filters(store: SqliteStore) -> None:
    await apply(store, make_instance("a"), source=SOURCE)
    await apply(store, make_instance("b", "other"), source=SOURCE)
    await apply(store, make_instance("c"), source="api")
    await apply(store, make_instance("d"))

    owned = await list_by_source(store, KIND, SOURCE)

    assert [item.key for item in owned] == ["default/a", "other/b"]
