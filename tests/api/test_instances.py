"""The instance routes against a real SqliteStore."""

from __future__ import annotations

import httpx

from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.crds.meta import API_VERSION, RUNTIME_FINALIZER, SOURCE_ANNOTATION
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import assert_problem, manifest


async def put(client: httpx.AsyncClient, body: dict[str, object], **params: str) -> httpx.Response:
    name = body["metadata"]["name"]  # type: ignore[index]
    return await client.put(f"/api/v1/instances/{name}", json=body, params=params)


async def set_phase(store: SqliteStore, namespace: str, name: str, phase: Phase) -> None:
    stored = await store.get("Instance", namespace, name)
    assert isinstance(stored, Instance)
    stored.status.phase = phase
    await store.update_status(stored)


# List


async def test_list_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/instances")

    assert response.status_code == 200
    body = response.json()
    assert body["apiVersion"] == API_VERSION
    assert body["kind"] == "InstanceList"
    assert body["items"] == []
    assert body["metadata"]["resourceVersion"].isdigit()


async def test_list_all_namespaces_by_default(client: httpx.AsyncClient) -> None:
    await put(client, manifest("web"))
    await put(client, manifest("api"), namespace="team-a")

    response = await client.get("/api/v1/instances")

    keys = [
        (item["metadata"]["namespace"], item["metadata"]["name"])
        for item in response.json()["items"]
    ]
    assert keys == [("default", "web"), ("team-a", "api")]


async def test_list_one_namespace(client: httpx.AsyncClient) -> None:
    await put(client, manifest("web"))
    await put(client, manifest("api"), namespace="team-a")

    response = await client.get("/api/v1/instances", params={"namespace": "team-a"})

    assert [item["metadata"]["name"] for item in response.json()["items"]] == ["api"]


async def test_list_label_selector(client: httpx.AsyncClient) -> None:
    tagged = manifest("web")
    tagged["metadata"]["labels"] = {"app": "web", "tier": "agents"}
    await put(client, tagged)
    await put(client, manifest("api"))

    response = await client.get(
        "/api/v1/instances", params={"labelSelector": "tier=agents,app==web"}
    )

    assert [item["metadata"]["name"] for item in response.json()["items"]] == ["web"]


async def test_list_phase_filter(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await put(client, manifest("web"))
    await put(client, manifest("api"))
    await set_phase(store, "default", "web", Phase.RUNNING)

    response = await client.get("/api/v1/instances", params={"phase": "Running"})

    assert [item["metadata"]["name"] for item in response.json()["items"]] == ["web"]


async def test_list_bad_selector_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/instances", params={"labelSelector": "app!=web"})

    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "labelSelector"
    assert body["errors"][0]["value"] == "app!=web"


async def test_list_bad_phase_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/instances", params={"phase": "Runing"})

    body = assert_problem(response, 400)
    assert "Running" in body["detail"]


async def test_list_bad_namespace_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/instances", params={"namespace": "Team_A"})

    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "namespace"


# Create


async def test_create_returns_201(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/instances", json=manifest("web"))

    assert response.status_code == 201
    body = response.json()
    assert body["metadata"]["uid"]
    assert body["metadata"]["generation"] == 1
    assert body["metadata"]["annotations"][SOURCE_ANNOTATION] == "api"
    assert response.headers["location"] == "/api/v1/instances/web?namespace=default"


async def test_create_namespace_from_query(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/instances", json=manifest("web"), params={"namespace": "team-a"}
    )

    assert response.status_code == 201
    assert response.json()["metadata"]["namespace"] == "team-a"


async def test_create_existing_is_409(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/instances", json=manifest("web"))

    response = await client.post("/api/v1/instances", json=manifest("web"))

    body = assert_problem(response, 409)
    assert "default/web" in body["detail"]


async def test_create_drops_status(client: httpx.AsyncClient) -> None:
    body = manifest("web")
    body["status"] = {"phase": "Running"}

    response = await client.post("/api/v1/instances", json=body)

    assert response.json()["status"]["phase"] == "Pending"


async def test_create_wrong_kind_is_422(client: httpx.AsyncClient) -> None:
    body = manifest("web")
    body["kind"] = "Loadout"

    response = await client.post("/api/v1/instances", json=body)

    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "kind"


# Get


async def test_get_returns_wire_form(client: httpx.AsyncClient) -> None:
    await put(client, manifest("web", env={"ANSWER": "no"}))

    response = await client.get("/api/v1/instances/web")

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "Instance"
    assert body["spec"]["env"] == {"ANSWER": "no"}
    assert body["spec"]["runStrategy"] == "Always"


async def test_get_other_namespace(client: httpx.AsyncClient) -> None:
    await put(client, manifest("web"), namespace="team-a")

    response = await client.get("/api/v1/instances/web", params={"namespace": "team-a"})

    assert response.status_code == 200
    assert response.json()["metadata"]["namespace"] == "team-a"


async def test_get_missing_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/instances/ghost")

    body = assert_problem(response, 404)
    assert "default/ghost" in body["detail"]
    assert body["type"].endswith("/not-found")


# Apply (PUT)


async def test_put_creates_then_unchanged(client: httpx.AsyncClient) -> None:
    first = await put(client, manifest("web"))
    second = await put(client, manifest("web"))

    assert first.status_code == 201
    assert first.headers["apply-outcome"] == "created"
    assert second.status_code == 200
    assert second.headers["apply-outcome"] == "unchanged"
    assert (
        second.json()["metadata"]["resourceVersion"] == first.json()["metadata"]["resourceVersion"]
    )


async def test_put_spec_change_updates(client: httpx.AsyncClient) -> None:
    await put(client, manifest("web", env={"A": "1"}))

    response = await put(client, manifest("web", env={"A": "2"}))

    assert response.status_code == 200
    assert response.headers["apply-outcome"] == "updated"
    assert response.json()["metadata"]["generation"] == 2
    assert response.json()["spec"]["env"] == {"A": "2"}


async def test_put_label_change_keeps_generation(client: httpx.AsyncClient) -> None:
    await put(client, manifest("web"))
    relabelled = manifest("web")
    relabelled["metadata"]["labels"] = {"app": "web", "tier": "agents"}

    response = await put(client, relabelled)

    assert response.headers["apply-outcome"] == "updated"
    assert response.json()["metadata"]["generation"] == 1


async def test_put_records_api_source(client: httpx.AsyncClient) -> None:
    response = await put(client, manifest("web"))

    assert response.json()["metadata"]["annotations"][SOURCE_ANNOTATION] == "api"


async def test_put_name_mismatch_is_422(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/instances/other", json=manifest("web"))

    body = assert_problem(response, 422)
    assert "default/web" in body["detail"]
    assert "default/other" in body["detail"]
    assert body["errors"][0]["field"] == "metadata.name"
    assert body["errors"][0]["value"] == "web"


async def test_put_namespace_mismatch_is_422(client: httpx.AsyncClient) -> None:
    body = manifest("web")
    body["metadata"]["namespace"] = "team-a"

    response = await client.put("/api/v1/instances/web", json=body, params={"namespace": "team-b"})

    problem = assert_problem(response, 422)
    assert "team-a/web" in problem["detail"]
    assert "team-b/web" in problem["detail"]
    assert [error["field"] for error in problem["errors"]] == ["metadata.namespace"]


async def test_put_invalid_field_is_422(client: httpx.AsyncClient) -> None:
    body = manifest("web")
    body["spec"]["imag"] = "typo"

    response = await client.put("/api/v1/instances/web", json=body)

    problem = assert_problem(response, 422)
    error = problem["errors"][0]
    assert error["field"] == "spec.imag"
    assert "image" in error["message"]
    assert error["value"] == "typo"
    assert "line" in error


async def test_put_invalid_leaves_stored_object(client: httpx.AsyncClient) -> None:
    await put(client, manifest("web", env={"A": "1"}))

    rejected = await put(client, manifest("web", env={"A": 1}))

    assert_problem(rejected, 422)
    response = await client.get("/api/v1/instances/web")
    assert response.json()["spec"]["env"] == {"A": "1"}


# Delete


async def test_delete_returns_object(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await put(client, manifest("web"))

    response = await client.delete("/api/v1/instances/web")

    assert response.status_code == 200
    assert response.json()["metadata"]["name"] == "web"
    listing = await store.list("Instance")
    assert listing.items == []


async def test_delete_with_finalizer_marks(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await put(client, manifest("web"))
    stored = await store.get("Instance", "default", "web")
    stored.metadata.finalizers = [RUNTIME_FINALIZER]
    await store.update(stored)

    response = await client.delete("/api/v1/instances/web")

    assert response.status_code == 200
    assert response.json()["metadata"]["deletionTimestamp"]
    remaining = await store.get("Instance", "default", "web")
    assert remaining.metadata.deletion_timestamp is not None


async def test_delete_missing_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/instances/ghost", params={"namespace": "team-a"})

    body = assert_problem(response, 404)
    assert "team-a/ghost" in body["detail"]
