"""SqliteStore object semantics: create, get, list, update, update_status, delete."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER, ObjectMeta, Resource
from agentic_sandbox.errors import (
    AlreadyExists,
    Conflict,
    InvalidResource,
    NotFound,
    StoreUnavailable,
)
from agentic_sandbox.store.base import Store
from agentic_sandbox.store.sqlite import SqliteStore
from tests.store.conftest import make_instance

KIND = Instance.KIND


def as_instance(obj: object) -> Instance:
    assert isinstance(obj, Instance)
    return obj


async def test_store_satisfies_protocol(store: SqliteStore) -> None:
    protocol_user: Store = store
    assert protocol_user is store


async def test_create_sets_server_fields(store: SqliteStore) -> None:
    before = datetime.now(UTC)
    created = as_instance(await store.create(make_instance()))

    assert uuid.UUID(created.metadata.uid or "").version == 4
    assert created.metadata.resource_version == "1"
    assert created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.creation_timestamp.utcoffset() == timedelta(0)
    assert created.metadata.creation_timestamp >= before - timedelta(seconds=1)
    assert created.metadata.deletion_timestamp is None
    assert created.status.phase == Phase.PENDING


async def test_create_ignores_caller_server_fields(store: SqliteStore) -> None:
    obj = make_instance(
        uid="not-a-uuid",
        resourceVersion="77",
        generation=9,
        creationTimestamp="2001-01-01T00:00:00Z",
        deletionTimestamp="2001-01-02T00:00:00Z",
    )
    obj.status.phase = Phase.RUNNING

    created = as_instance(await store.create(obj))

    assert created.metadata.uid != "not-a-uuid"
    assert created.metadata.resource_version == "1"
    assert created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.creation_timestamp.year > 2001
    assert created.metadata.deletion_timestamp is None
    assert created.status.phase == Phase.PENDING


async def test_create_keeps_caller_metadata(store: SqliteStore) -> None:
    obj = make_instance(
        labels={"team": "a"}, annotations={"note": "x"}, finalizers=[RUNTIME_FINALIZER]
    )
    created = await store.create(obj)
    fetched = await store.get(KIND, "default", "web")

    assert created == fetched
    assert fetched.metadata.labels == {"team": "a"}
    assert fetched.metadata.annotations == {"note": "x"}
    assert fetched.metadata.finalizers == [RUNTIME_FINALIZER]
    assert fetched.spec == obj.spec


async def test_create_existing_key_raises(store: SqliteStore) -> None:
    await store.create(make_instance())
    with pytest.raises(AlreadyExists, match="Instance default/web already exists"):
        await store.create(make_instance())


async def test_create_unknown_kind_raises(store: SqliteStore) -> None:
    widget = Resource(kind="Widget", metadata=ObjectMeta(name="w"))

    with pytest.raises(InvalidResource, match="kind 'Widget' is not served"):
        await store.create(widget)


async def test_namespaces_are_separate_keys(store: SqliteStore) -> None:
    first = await store.create(make_instance("web", "default"))
    second = await store.create(make_instance("web", "team-b"))

    assert first.metadata.uid != second.metadata.uid
    assert (await store.get(KIND, "team-b", "web")).metadata.uid == second.metadata.uid


async def test_get_missing_raises_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFound, match="Instance default/nope not found"):
        await store.get(KIND, "default", "nope")


async def test_resource_version_grows_with_every_write(store: SqliteStore) -> None:
    versions = []
    created = await store.create(make_instance("a", finalizers=[RUNTIME_FINALIZER]))
    versions.append(created.metadata.resource_version)
    other = await store.create(make_instance("b", "other"))
    versions.append(other.metadata.resource_version)
    created.metadata.labels["x"] = "y"
    updated = await store.update(created)
    versions.append(updated.metadata.resource_version)
    as_instance(updated).status.phase = Phase.RUNNING
    status = await store.update_status(updated)
    versions.append(status.metadata.resource_version)
    marked = await store.delete(KIND, "default", "a")
    assert marked is not None
    versions.append(marked.metadata.resource_version)

    assert versions == ["1", "2", "3", "4", "5"]
    assert await store.current_resource_version() == 5


async def test_list_filters_and_sorts(store: SqliteStore) -> None:
    await store.create(make_instance("b", labels={"app": "web", "tier": "front"}))
    await store.create(make_instance("a", labels={"app": "web"}))
    await store.create(make_instance("c", "other", labels={"app": "web"}))
    await store.create(make_instance("d", labels={"app": "db"}))

    everything = await store.list(KIND)
    in_default = await store.list(KIND, namespace="default")
    web = await store.list(KIND, labels={"app": "web"})
    front = await store.list(KIND, labels={"app": "web", "tier": "front"})

    assert [item.key for item in everything.items] == [
        "default/a",
        "default/b",
        "default/d",
        "other/c",
    ]
    assert [item.key for item in in_default.items] == ["default/a", "default/b", "default/d"]
    assert [item.key for item in web.items] == ["default/a", "default/b", "other/c"]
    assert [item.key for item in front.items] == ["default/b"]
    assert everything.resource_version == 4


async def test_list_empty_has_current_version(store: SqliteStore) -> None:
    await store.create(make_instance())
    await store.delete(KIND, "default", "web")

    result = await store.list(KIND)

    assert result.items == []
    assert result.resource_version == 2


async def test_update_stale_version_raises_conflict(store: SqliteStore) -> None:
    created = await store.create(make_instance())
    created.metadata.labels["a"] = "1"
    await store.update(created)

    created.metadata.labels["a"] = "2"
    with pytest.raises(Conflict) as caught:
        await store.update(created)

    message = str(caught.value)
    assert "Instance default/web" in message
    assert "resourceVersion 1" in message
    assert "has 2" in message
    stored = await store.get(KIND, "default", "web")
    assert stored.metadata.labels == {"a": "1"}


async def test_update_without_version_is_unconditional(store: SqliteStore) -> None:
    created = as_instance(await store.create(make_instance()))
    created.status.phase = Phase.RUNNING
    await store.update_status(created)

    request = make_instance(labels={"b": "2"})
    updated = await store.update(request)

    assert updated.metadata.labels == {"b": "2"}
    assert updated.metadata.resource_version == "3"


async def test_update_other_uid_raises_conflict(store: SqliteStore) -> None:
    created = await store.create(make_instance())
    await store.delete(KIND, "default", "web")
    await store.create(make_instance())

    created.metadata.resource_version = None
    with pytest.raises(Conflict, match="deleted and created again"):
        await store.update(created)


async def test_update_missing_raises_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFound):
        await store.update(make_instance())


async def test_update_spec_bumps_generation(store: SqliteStore) -> None:
    created = as_instance(await store.create(make_instance()))
    created.spec.env["MODE"] = "changed"

    updated = await store.update(created)

    assert updated.metadata.generation == 2
    assert updated.spec.env == {"MODE": "changed"}


async def test_update_metadata_keeps_generation(store: SqliteStore) -> None:
    created = await store.create(make_instance())
    created.metadata.labels["tier"] = "front"
    created.metadata.annotations["note"] = "hello"
    created.metadata.finalizers.append(RUNTIME_FINALIZER)

    updated = await store.update(created)

    assert updated.metadata.generation == 1
    assert updated.metadata.resource_version == "2"
    assert updated.metadata.labels == {"tier": "front"}
    assert updated.metadata.annotations == {"note": "hello"}
    assert updated.metadata.finalizers == [RUNTIME_FINALIZER]


async def test_update_ignores_status(store: SqliteStore) -> None:
    created = as_instance(await store.create(make_instance()))
    created.status.phase = Phase.FAILED
    created.metadata.labels["x"] = "y"

    updated = as_instance(await store.update(created))

    assert updated.status.phase == Phase.PENDING
    assert updated.metadata.labels == {"x": "y"}


async def test_update_keeps_server_fields(store: SqliteStore) -> None:
    created = await store.create(make_instance())
    request = created.model_copy(deep=True)
    request.metadata.generation = 40
    request.metadata.creation_timestamp = datetime(2001, 1, 1, tzinfo=UTC)
    request.metadata.deletion_timestamp = datetime(2001, 1, 2, tzinfo=UTC)
    request.metadata.labels["x"] = "y"

    updated = await store.update(request)

    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.generation == 1
    assert updated.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert updated.metadata.deletion_timestamp is None
    assert updated.metadata.labels == {"x": "y"}


async def test_update_unchanged_writes_nothing(store: SqliteStore) -> None:
    created = await store.create(make_instance())

    again = await store.update(created)

    assert again == created
    assert await store.current_resource_version() == 1


async def test_update_status_keeps_spec_and_metadata(store: SqliteStore) -> None:
    created = as_instance(await store.create(make_instance()))
    request = created.model_copy(deep=True)
    request.spec.env["MODE"] = "ignored"
    request.metadata.labels["ignored"] = "yes"
    request.status.phase = Phase.RUNNING
    request.status.observed_generation = 1

    updated = as_instance(await store.update_status(request))

    assert updated.status.phase == Phase.RUNNING
    assert updated.status.observed_generation == 1
    assert updated.spec == created.spec
    assert updated.metadata.labels == {}
    assert updated.metadata.generation == 1
    assert updated.metadata.resource_version == "2"


async def test_update_status_stale_version_raises_conflict(store: SqliteStore) -> None:
    created = as_instance(await store.create(make_instance()))
    created.metadata.labels["a"] = "1"
    await store.update(created)
    created.status.phase = Phase.RUNNING

    with pytest.raises(Conflict, match="Instance default/web"):
        await store.update_status(created)


async def test_update_status_unchanged_writes_nothing(store: SqliteStore) -> None:
    created = await store.create(make_instance())

    again = await store.update_status(created)

    assert again.metadata.resource_version == "1"
    assert await store.current_resource_version() == 1


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
async def test_update_status_rejects_invalid_status(store: SqliteStore) -> None:
    created = await store.create(make_instance())
    request = created.model_copy(update={"status": {"phase": "Sleeping"}})

    with pytest.raises(InvalidResource, match="Instance default/web is invalid"):
        await store.update_status(request)
    assert await store.current_resource_version() == 1


async def test_delete_without_finalizers_removes(store: SqliteStore) -> None:
    await store.create(make_instance())

    result = await store.delete(KIND, "default", "web")

    assert result is None
    with pytest.raises(NotFound):
        await store.get(KIND, "default", "web")


async def test_delete_missing_raises_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFound, match="Instance default/web not found"):
        await store.delete(KIND, "default", "web")


async def test_delete_stale_version_raises_conflict(store: SqliteStore) -> None:
    created = await store.create(make_instance())
    created.metadata.labels["a"] = "1"
    await store.update(created)

    with pytest.raises(Conflict, match="resourceVersion 1"):
        await store.delete(KIND, "default", "web", resource_version="1")
    assert await store.delete(KIND, "default", "web", resource_version="2") is None


async def test_delete_with_finalizer_marks_once(store: SqliteStore) -> None:
    await store.create(make_instance(finalizers=[RUNTIME_FINALIZER]))

    marked = await store.delete(KIND, "default", "web")
    again = await store.delete(KIND, "default", "web")

    assert marked is not None
    assert again is not None
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.resource_version == "2"
    assert again.metadata.deletion_timestamp == marked.metadata.deletion_timestamp
    assert again.metadata.resource_version == "2"
    assert marked.metadata.generation == 1


async def test_removing_last_finalizer_deletes(store: SqliteStore) -> None:
    await store.create(make_instance(finalizers=[RUNTIME_FINALIZER, "example.com/other"]))
    marked = await store.delete(KIND, "default", "web")
    assert marked is not None

    marked.metadata.finalizers.remove(RUNTIME_FINALIZER)
    still_there = await store.update(marked)
    assert still_there.metadata.finalizers == ["example.com/other"]
    assert (await store.get(KIND, "default", "web")) == still_there

    still_there.metadata.finalizers.clear()
    gone = await store.update(still_there)

    assert gone.metadata.finalizers == []
    assert gone.metadata.resource_version == "4"
    with pytest.raises(NotFound):
        await store.get(KIND, "default", "web")


async def test_status_update_allowed_while_deleting(store: SqliteStore) -> None:
    await store.create(make_instance(finalizers=[RUNTIME_FINALIZER]))
    marked = as_instance(await store.delete(KIND, "default", "web"))
    marked.status.phase = Phase.TERMINATING

    updated = as_instance(await store.update_status(marked))

    assert updated.status.phase == Phase.TERMINATING
    assert updated.metadata.deletion_timestamp == marked.metadata.deletion_timestamp


async def test_finalizer_cannot_be_added_while_deleting(store: SqliteStore) -> None:
    await store.create(make_instance(finalizers=[RUNTIME_FINALIZER]))
    marked = await store.delete(KIND, "default", "web")
    assert marked is not None
    marked.metadata.finalizers.append("example.com/late")

    with pytest.raises(InvalidResource, match="being deleted"):
        await store.update(marked)


async def test_reopen_keeps_objects_and_counter(db_path: Path) -> None:
    async with SqliteStore(db_path) as first:
        created = await first.create(make_instance())
    async with SqliteStore(db_path) as second:
        fetched = await second.get(KIND, "default", "web")
        other = await second.create(make_instance("other"))

    assert fetched == created
    assert other.metadata.resource_version == "2"


async def test_closed_store_raises_unavailable(db_path: Path) -> None:
    store = await SqliteStore(db_path).open()
    await store.close()

    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get(KIND, "default", "web")


async def test_corrupt_file_raises_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not an SQLite database" * 100)

    with pytest.raises(StoreUnavailable) as caught:
        await SqliteStore(path).open()

    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_pragmas_are_set(store: SqliteStore) -> None:
    def read_pragmas(connection: sqlite3.Connection) -> tuple[str, int, int]:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        (synchronous,) = connection.execute("PRAGMA synchronous").fetchone()
        (timeout,) = connection.execute("PRAGMA busy_timeout").fetchone()
        return mode, synchronous, timeout

    mode, synchronous, timeout = await store._db.run(read_pragmas)

    assert mode == "wal"
    assert synchronous == 2  # FULL
    assert timeout > 0


def test_history_limit_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="history_limit"):
        SqliteStore(tmp_path / "store.db", history_limit=0)
