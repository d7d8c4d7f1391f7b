"""dryRun=All on every write route: checks run, nothing changes, the plan is returned."""

from __future__ import annotations

from typing import Any

import httpx

from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER, SOURCE_ANNOTATION
from agentic_sandbox.runtimes.fake import FakeRuntime
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.runtime_support import add_sandbox
from tests.api.support import assert_problem, manifest

ITEM = "/api/v1/instances/web"
DRY_RUN = {"dryRun": "All"}


async def stored_web(store: SqliteStore) -> Instance:
    found = await store.get("Instance", "default", "web")
    assert isinstance(found, Instance)
    return found


async def create_web(store: SqliteStore, **spec: Any) -> Instance:
    body = manifest("web", **spec)
    body["metadata"]["annotations"] = {SOURCE_ANNOTATION: "api"}
    body["metadata"]["finalizers"] = [RUNTIME_FINALIZER]
    created = await store.create(Instance.model_validate(body))
    assert isinstance(created, Instance)
    return created


def operations(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(op["kind"], op["sandboxId"]) for op in body["plannedOperations"]]


async def test_create_dry_run_stores_nothing(
    runtime_client: httpx.AsyncClient, store: SqliteStore
) -> None:
    response = await runtime_client.post("/api/v1/instances", json=manifest("web"), params=DRY_RUN)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "DryRunResult"
    assert body["action"] == "create"
    assert body["outcome"] == "created"
    assert body["object"]["metadata"]["generation"] == 1
    assert "uid" not in body["object"]["metadata"]
    assert operations(body) == [("create", None), ("start", None)]
    assert body["warnings"] == []
    assert (await store.list("Instance")).items == []


async def test_create_dry_run_of_existing_is_409(
    runtime_client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_web(store)

    response = await runtime_client.post("/api/v1/instances", json=manifest("web"), params=DRY_RUN)

    assert_problem(response, 409)


async def test_put_dry_run_plans_recreate(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    created = await create_web(store)
    sandbox = await add_sandbox(runtime, created)

    response = await runtime_client.put(
        ITEM, json=manifest("web", image="agentic/demo:v2"), params=DRY_RUN
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "updated"
    assert response.headers["apply-outcome"] == "updated"
    assert body["object"]["spec"]["image"] == "agentic/demo:v2"
    assert body["object"]["metadata"]["generation"] == 2
    assert operations(body) == [("remove", sandbox.id), ("create", None), ("start", None)]
    assert "spec changed" in body["plannedOperations"][0]["cause"]
    stored = await stored_web(store)
    assert stored.spec.image == "agentic/demo:dev"
    assert stored.metadata.resource_version == created.metadata.resource_version


async def test_put_dry_run_unchanged_plans_nothing(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    created = await create_web(store)
    await add_sandbox(runtime, created)

    response = await runtime_client.put(ITEM, json=manifest("web"), params=DRY_RUN)

    body = response.json()
    assert body["outcome"] == "unchanged"
    assert body["plannedOperations"] == []


async def test_patch_dry_run_checks_precondition(
    runtime_client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_web(store)

    response = await runtime_client.patch(
        ITEM,
        json={"metadata": {"resourceVersion": "999"}, "spec": {"image": "other"}},
        headers={"Content-Type": "application/merge-patch+json"},
        params=DRY_RUN,
    )

    assert_problem(response, 409)


async def test_patch_dry_run_returns_patched_object(
    runtime_client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_web(store)

    response = await runtime_client.patch(
        ITEM,
        json={"spec": {"env": {"A": "1"}}},
        headers={"Content-Type": "application/merge-patch+json"},
        params=DRY_RUN,
    )

    assert response.status_code == 200, response.text
    assert response.json()["object"]["spec"]["env"] == {"A": "1"}
    assert (await stored_web(store)).spec.env == {}


async def test_delete_dry_run_keeps_record(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    created = await create_web(store)
    sandbox = await add_sandbox(runtime, created)

    response = await runtime_client.delete(ITEM, params=DRY_RUN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "marked"
    assert "deletionTimestamp" in body["object"]["metadata"]
    assert operations(body) == [("remove", sandbox.id)]
    assert (await stored_web(store)).metadata.deletion_timestamp is None
    assert runtime.by_name("web") is not None


async def test_delete_dry_run_file_owned_is_409(
    runtime_client: httpx.AsyncClient, store: SqliteStore
) -> None:
    body = manifest("web")
    body["metadata"]["annotations"] = {SOURCE_ANNOTATION: "file:/srv/web.yaml"}
    await store.create(Instance.model_validate(body))

    response = await runtime_client.delete(ITEM, params=DRY_RUN)

    assert_problem(response, 409)


async def test_stop_dry_run_plans_stop_records_nothing(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    created = await create_web(store)
    sandbox = await add_sandbox(runtime, created)

    response = await runtime_client.post(f"{ITEM}/stop", params=DRY_RUN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"] == "stop"
    assert body["object"]["spec"]["runStrategy"] == "Halted"
    assert operations(body) == [("stop", sandbox.id)]
    assert (await stored_web(store)).spec.run_strategy == "Always"
    assert await store.events.list() == []


async def test_dry_run_invalid_value_is_400(runtime_client: httpx.AsyncClient) -> None:
    response = await runtime_client.post(
        "/api/v1/instances", json=manifest("web"), params={"dryRun": "Some"}
    )

    problem = assert_problem(response, 400)
    assert problem["errors"][0]["field"] == "dryRun"


async def test_dry_run_invalid_body_is_422(runtime_client: httpx.AsyncClient) -> None:
    response = await runtime_client.post(
        "/api/v1/instances", json=manifest("web", runStrategy="Sometimes"), params=DRY_RUN
    )

    assert_problem(response, 422)


async def test_dry_run_runtime_down_warns(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    await create_web(store)
    runtime.set_available(False)

    response = await runtime_client.put(ITEM, json=manifest("web", image="x:1"), params=DRY_RUN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["plannedOperations"] is None
    assert "runtime could not be read" in body["warnings"][0]


async def test_dry_run_without_runtime_warns(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/instances", json=manifest("web"), params=DRY_RUN)

    body = response.json()
    assert response.status_code == 201
    assert body["plannedOperations"] is None
    assert "no runtime access" in body["warnings"][0]


async def test_force_delete_dry_run_keeps_finalizer(
    runtime_client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_web(store)

    response = await runtime_client.delete(ITEM, params={"force": "true", **DRY_RUN})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "deleted"
    assert body["plannedOperations"] == []
    stored = await stored_web(store)
    assert stored.metadata.finalizers == [RUNTIME_FINALIZER]
    assert stored.metadata.deletion_timestamp is None
    assert await store.events.list() == []
