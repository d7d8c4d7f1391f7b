"""The SourceSynced condition writer against a real store."""

from __future__ import annotations

from typing import Any

from agentic_sandbox.crds.manifest import load_manifests
from agentic_sandbox.crds.meta import Condition, Resource
from agentic_sandbox.sources.status import SOURCE_SYNCED, set_source_synced
from agentic_sandbox.store.sqlite import SqliteStore
from tests.sources.support import instance_doc

WEB = ("Instance", "default", "web")


async def create_web(store: SqliteStore) -> Resource:
    web = load_manifests(instance_doc("web"), source="<test>")[0].resource
    created = await store.create(web)
    ready = Condition(type="Ready", status="True", reason="Running")
    status = created.status.model_copy(update={"conditions": [ready]})
    return await store.update_status(created.model_copy(update={"status": status}))


async def test_set_keeps_other_conditions(store: SqliteStore) -> None:
    await create_web(store)

    await set_source_synced(store, WEB, synced=False, reason="InvalidManifest", message="bad")

    web = await store.get(*WEB)
    assert [condition.type for condition in web.status.conditions] == ["Ready", SOURCE_SYNCED]
    condition = web.status.condition(SOURCE_SYNCED)
    assert condition.status == "False"
    assert condition.reason == "InvalidManifest"
    assert condition.observed_generation == web.metadata.generation


async def test_set_same_condition_writes_nothing(store: SqliteStore) -> None:
    await create_web(store)
    await set_source_synced(store, WEB, synced=False, reason="InvalidManifest", message="bad")
    version = await store.current_resource_version()

    await set_source_synced(store, WEB, synced=False, reason="InvalidManifest", message="bad")

    assert await store.current_resource_version() == version


async def test_set_keeps_transition_time(store: SqliteStore) -> None:
    await create_web(store)
    await set_source_synced(store, WEB, synced=False, reason="InvalidManifest", message="bad")
    first = (await store.get(*WEB)).status.condition(SOURCE_SYNCED)

    await set_source_synced(store, WEB, synced=False, reason="InvalidManifest", message="worse")

    second = (await store.get(*WEB)).status.condition(SOURCE_SYNCED)
    assert second.message == "worse"
    assert second.last_transition_time == first.last_transition_time


async def test_set_missing_object(store: SqliteStore) -> None:
    assert not await set_source_synced(store, WEB, synced=True, reason="Applied", message="")


class RacingStore:
    """Writes a controller-owned condition just before the first status update lands."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_status(self, obj: Resource) -> Resource:
        if not self.raced:
            self.raced = True
            current = await self._store.get(*WEB)
            stalled = Condition(type="Stalled", status="False", reason="Healthy")
            conditions = [*current.status.conditions, stalled]
            status = current.status.model_copy(update={"conditions": conditions})
            await self._store.update_status(current.model_copy(update={"status": status}))
        return await self._store.update_status(obj)


async def test_set_retries_conflict(store: SqliteStore) -> None:
    await create_web(store)
    racing = RacingStore(store)

    await set_source_synced(racing, WEB, synced=True, reason="Applied", message="ok")  # type: ignore[arg-type]

    web = await store.get(*WEB)
    types = [condition.type for condition in web.status.conditions]
    assert types == ["Ready", "Stalled", SOURCE_SYNCED]
