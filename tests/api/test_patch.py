"""JSON merge patch and resourceVersion preconditions on the instance routes."""

from __future__ import annotations

from typing import Any

import httpx

from agentic_sandbox.api.patch import merge_patch
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import assert_problem, manifest

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
ITEM = "/api/v1/instances/web"


async def create_web(client: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    response = await client.put(ITEM, json=manifest("web", **spec))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def patch(client: httpx.AsyncClient, body: Any, **params: str) -> httpx.Response:
    return await client.patch(ITEM, json=body, headers=MERGE_PATCH, params=params)


# merge_patch


def test_merge_patch_null_deletes_key() -> None:
    assert merge_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_merge_patch_objects_merge() -> None:
    target = {"env": {"A": "1", "B": "2"}, "image": "x"}

    assert merge_patch(target, {"env": {"B": "3", "C": "4"}}) == {
        "env": {"A": "1", "B": "3", "C": "4"},
        "image": "x",
    }


def test_merge_patch_lists_replace() -> None:
    assert merge_patch({"command": ["a", "b"]}, {"command": ["c"]}) == {"command": ["c"]}


def test_merge_patch_non_object_replaces_target() -> None:
    assert merge_patch({"a": 1}, ["x"]) == ["x"]
    assert merge_patch("text", {"a": {"b": None}}) == {"a": {}}


def test_merge_patch_leaves_inputs_unchanged() -> None:
    target = {"env": {"A": "1"}}
    merge_patch(target, {"env": {"A": None}})

    assert target == {"env": {"A": "1"}}


# PATCH


async def test_patch_merges_env_and_deletes_label(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_web(client, env={"A": "1", "B": "2"})

    response = await patch(
        client, {"metadata": {"labels": {"app": None}}, "spec": {"env": {"B": None, "C": "3"}}}
    )

    assert response.status_code == 200, response.text
    assert response.headers["apply-outcome"] == "updated"
    stored = await store.get("Instance", "default", "web")
    assert isinstance(stored, Instance)
    assert stored.spec.env == {"A": "1", "C": "3"}
    assert stored.metadata.labels == {}
    assert stored.metadata.generation == 2
    assert stored.metadata.annotations[SOURCE_ANNOTATION] == "api"


async def test_patch_replaces_command_list(client: httpx.AsyncClient) -> None:
    await create_web(client, command=["sleep", "60"])

    response = await patch(client, {"spec": {"command": ["sleep", "5"]}})

    assert response.json()["spec"]["command"] == ["sleep", "5"]


async def test_patch_without_change_is_unchanged(client: httpx.AsyncClient) -> None:
    created = await create_web(client)

    response = await patch(client, {"spec": {"image": "agentic/demo:dev"}})

    assert response.headers["apply-outcome"] == "unchanged"
    assert response.json()["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_patch_json_media_type_is_415(client: httpx.AsyncClient) -> None:
    await create_web(client)

    response = await client.patch(ITEM, json={"spec": {"image": "other"}})

    problem = assert_problem(response, 415)
    assert "application/merge-patch+json" in problem["detail"]


async def test_patch_missing_instance_is_404(client: httpx.AsyncClient) -> None:
    response = await patch(client, {"spec": {"image": "other"}})

    assert_problem(response, 404)


async def test_patch_invalid_result_is_422_naming_field(client: httpx.AsyncClient) -> None:
    await create_web(client)

    response = await patch(client, {"spec": {"runStrategy": "Sometimes"}})

    problem = assert_problem(response, 422)
    assert [error["field"] for error in problem["errors"]] == ["spec.runStrategy"]


async def test_patch_rename_is_422(client: httpx.AsyncClient) -> None:
    await create_web(client)

    response = await patch(client, {"metadata": {"name": "other"}})

    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "metadata.name"


async def test_patch_file_owned_is_409(client: httpx.AsyncClient, store: SqliteStore) -> None:
    body = manifest("web")
    body["metadata"]["annotations"] = {SOURCE_ANNOTATION: "file:/srv/web.yaml"}
    await store.create(Instance.model_validate(body))

    response = await patch(client, {"spec": {"image": "other"}})

    assert_problem(response, 409)


async def test_patch_stale_resource_version_is_409(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    created = await create_web(client)
    await patch(client, {"spec": {"env": {"A": "1"}}})

    response = await patch(
        client,
        {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {}},
    )

    problem = assert_problem(response, 409)
    assert created["metadata"]["resourceVersion"] in problem["detail"]


async def test_patch_current_resource_version_applies(client: httpx.AsyncClient) -> None:
    created = await create_web(client)
    version = created["metadata"]["resourceVersion"]

    response = await patch(
        client, {"metadata": {"resourceVersion": version}, "spec": {"env": {"A": "1"}}}
    )

    assert response.status_code == 200, response.text
    assert response.json()["spec"]["env"] == {"A": "1"}


# Preconditions of PUT and DELETE


async def test_put_stale_resource_version_is_409(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    created = await create_web(client)
    await patch(client, {"spec": {"env": {"A": "1"}}})
    body = manifest("web", env={"A": "2"})
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]

    response = await client.put(ITEM, json=body)

    assert_problem(response, 409)
    stored = await store.get("Instance", "default", "web")
    assert isinstance(stored, Instance)
    assert stored.spec.env == {"A": "1"}


async def test_put_current_resource_version_updates(client: httpx.AsyncClient) -> None:
    created = await create_web(client)
    body = manifest("web", env={"A": "2"})
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]

    response = await client.put(ITEM, json=body)

    assert response.status_code == 200, response.text
    assert response.headers["apply-outcome"] == "updated"


async def test_put_resource_version_of_missing_is_409(client: httpx.AsyncClient) -> None:
    body = manifest("web")
    body["metadata"]["resourceVersion"] = "7"

    response = await client.put(ITEM, json=body)

    problem = assert_problem(response, 409)
    assert "does not exist" in problem["detail"]


async def test_delete_stale_resource_version_is_409(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    created = await create_web(client)
    await patch(client, {"spec": {"env": {"A": "1"}}})

    response = await client.delete(
        ITEM, params={"resourceVersion": created["metadata"]["resourceVersion"]}
    )

    assert_problem(response, 409)
    assert (await store.get("Instance", "default", "web")).metadata.name == "web"


async def test_delete_current_resource_version_deletes(client: httpx.AsyncClient) -> None:
    created = await create_web(client)

    response = await client.delete(
        ITEM, params={"resourceVersion": created["metadata"]["resourceVersion"]}
    )

    assert response.status_code == 200, response.text
    assert (await client.get(ITEM)).status_code == 404
