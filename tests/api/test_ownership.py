"""The API refuses to change or delete instances that a manifest file owns."""

from __future__ import annotations

import httpx

from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER, SOURCE_ANNOTATION
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import assert_problem, manifest

OWNER = "file:/srv/manifests/web.yaml"


async def create_file_owned(store: SqliteStore, *, finalizer: bool = False) -> None:
    body = manifest("web")
    body["metadata"]["annotations"] = {SOURCE_ANNOTATION: OWNER}
    if finalizer:
        body["metadata"]["finalizers"] = [RUNTIME_FINALIZER]
    await store.create(Instance.model_validate(body))


async def test_put_to_file_owned_instance_conflicts(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_file_owned(store)

    response = await client.put("/api/v1/instances/web", json=manifest("web", env={"A": "1"}))

    problem = assert_problem(response, 409)
    assert OWNER in problem["detail"]
    assert "takeover=true" in problem["detail"]
    stored = await store.get("Instance", "default", "web")
    assert stored.metadata.annotations[SOURCE_ANNOTATION] == OWNER


async def test_put_with_takeover_moves_ownership(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_file_owned(store)

    response = await client.put(
        "/api/v1/instances/web", params={"takeover": "true"}, json=manifest("web")
    )

    assert response.status_code == 200
    stored = await store.get("Instance", "default", "web")
    assert stored.metadata.annotations[SOURCE_ANNOTATION] == "api"


async def test_delete_of_file_owned_instance_conflicts(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_file_owned(store)

    response = await client.delete("/api/v1/instances/web", params={"takeover": "true"})

    problem = assert_problem(response, 409)
    assert "delete it there" in problem["detail"]
    stored = await store.get("Instance", "default", "web")
    assert stored.metadata.deletion_timestamp is None


async def test_force_delete_allowed_once_deletion_started(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_file_owned(store, finalizer=True)
    await store.delete("Instance", "default", "web")

    response = await client.delete("/api/v1/instances/web", params={"force": "true"})

    assert response.status_code == 200


async def test_api_owned_instance_accepts_writes(client: httpx.AsyncClient) -> None:
    await client.put("/api/v1/instances/web", json=manifest("web"))

    updated = await client.put("/api/v1/instances/web", json=manifest("web", env={"A": "2"}))
    deleted = await client.delete("/api/v1/instances/web")

    assert updated.status_code == 200
    assert deleted.status_code == 200
