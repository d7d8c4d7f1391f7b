"""Forced deletion releases the runtime finalizer and records an audit event."""

from __future__ import annotations

import httpx

from agentic_sandbox.crds.meta import RUNTIME_FINALIZER
from agentic_sandbox.errors import NotFound
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import manifest


async def add_finalizer(store: SqliteStore, name: str) -> None:
    instance = await store.get("Instance", "default", name)
    instance.metadata.finalizers.append(RUNTIME_FINALIZER)
    await store.update(instance)


async def test_plain_delete_waits_for_finalizer(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await client.put("/api/v1/instances/web", json=manifest("web"))
    await add_finalizer(store, "web")

    response = await client.delete("/api/v1/instances/web")

    assert response.status_code == 200
    assert response.json()["metadata"]["deletionTimestamp"]
    stored = await store.get("Instance", "default", "web")
    assert stored.metadata.finalizers == [RUNTIME_FINALIZER]


async def test_force_delete_releases_finalizer(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await client.put("/api/v1/instances/web", json=manifest("web"))
    await add_finalizer(store, "web")

    response = await client.delete("/api/v1/instances/web", params={"force": "true"})

    assert response.status_code == 200
    try:
        await store.get("Instance", "default", "web")
        raise AssertionError("the record should be gone")
    except NotFound:
        pass
    events = await store.events.list(instance="default/web")
    forced = [event for event in events if event.name == "instance.force_deleted"]
    assert len(forced) == 1
    assert forced[0].severity == "Warning"
    assert forced[0].details["requestedBy"] == "api"


async def test_force_delete_of_missing_instance_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/instances/absent", params={"force": "true"})

    assert response.status_code == 404


async def test_force_parameter_must_be_boolean(client: httpx.AsyncClient) -> None:
    await client.put("/api/v1/instances/web", json=manifest("web"))

    response = await client.delete("/api/v1/instances/web", params={"force": "maybe"})

    assert response.status_code == 400
