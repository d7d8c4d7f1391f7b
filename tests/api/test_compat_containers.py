"""The incumbent-compatible container routes, as views over Instances in a real SqliteStore."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentic_sandbox.crds.instance import Instance, Phase, RunStrategy, RuntimeRef
from agentic_sandbox.crds.meta import (
    PREVIOUS_RUN_STRATEGY_ANNOTATION,
    RUNTIME_FINALIZER,
    SOURCE_ANNOTATION,
    STOP_GRACE_ANNOTATION,
)
from agentic_sandbox.errors import NotFound
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import assert_problem, manifest

CONTAINERS = "/api/v1/containers"


def container_body(name: str = "web", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "agentic/demo:dev", **fields}


async def create(client: httpx.AsyncClient, name: str = "web", **fields: Any) -> httpx.Response:
    response = await client.post(CONTAINERS, json=container_body(name, **fields))
    assert response.status_code == 201, response.text
    return response


async def stored(store: SqliteStore, name: str, namespace: str = "default") -> Instance:
    instance = await store.get("Instance", namespace, name)
    assert isinstance(instance, Instance)
    return instance


async def observe(
    store: SqliteStore, name: str, phase: Phase, container_id: str | None = None
) -> None:
    """Write the status the controller would write after observing the container."""
    instance = await stored(store, name)
    instance.status.phase = phase
    if container_id is not None:
        instance.status.runtime_ref = RuntimeRef(runtime="docker", id=container_id, name=name)
    await store.update_status(instance)


def field_errors(problem: dict[str, Any]) -> dict[str, str]:
    return {error["field"]: error["message"] for error in problem["errors"]}


# Create


async def test_create_returns_pending_view(client: httpx.AsyncClient, store: SqliteStore) -> None:
    response = await create(client, labels={"team": "a"})

    view = response.json()
    instance = await stored(store, "web")
    assert view["name"] == "web"
    assert view["image"] == "agentic/demo:dev"
    assert view["status"] == "pending"
    assert view["id"] is None
    assert view["instance_id"] == instance.metadata.uid
    assert view["labels"] == {"team": "a"}
    assert view["created"]
    assert response.headers["location"] == "/api/v1/containers/web?namespace=default"


async def test_create_writes_docker_instance(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(
        client,
        env=["A=1", {"key": "B", "value": "x=y"}, "EMPTY="],
        mounts=["/srv/data:/data:ro", "/srv/cache:/cache"],
        network="none",
        cmd=["sh", "-c", "sleep 1"],
    )

    instance = await stored(store, "web")
    spec = instance.spec
    assert spec.runtime == "docker"
    assert spec.env == {"A": "1", "B": "x=y", "EMPTY": ""}
    assert [(m.host_path, m.path, m.read_only) for m in spec.mounts] == [
        ("/srv/data", "/data", True),
        ("/srv/cache", "/cache", False),
    ]
    assert spec.network == "none"
    assert spec.command == ["sh", "-c", "sleep 1"]
    assert instance.metadata.annotations[SOURCE_ANNOTATION] == "api"


async def test_create_empty_cmd_keeps_image_command(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create(client, cmd=[])

    assert (await stored(store, "web")).spec.command is None


async def test_create_drops_matching_agent_id(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create(client, env=["AGENT_ID=web", "A=1"])

    assert (await stored(store, "web")).spec.env == {"A": "1"}


async def test_create_in_namespace(client: httpx.AsyncClient, store: SqliteStore) -> None:
    response = await client.post(CONTAINERS, params={"namespace": "team-a"}, json=container_body())

    assert response.status_code == 201
    assert response.json()["namespace"] == "team-a"
    assert (await stored(store, "web", "team-a")).spec.runtime == "docker"


async def test_create_duplicate_conflicts(client: httpx.AsyncClient) -> None:
    await create(client)

    response = await client.post(CONTAINERS, json=container_body())

    problem = assert_problem(response, 409)
    assert "'web' already exists" in problem["detail"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"env": ["A=1", "NOEQUALS"]}, "env[1]", "expected 'KEY=VALUE'"),
        ({"env": ["A=1", "A=2"]}, "env[1]", "already set by env[0]"),
        ({"env": ["1X=v"]}, "env[0]", "spec.env"),
        ({"env": ["AGENT_SECRET=s"]}, "env[0]", "set by the controller"),
        ({"env": ["AGENT_ID=other"]}, "env[0]", "set by the controller"),
        ({"env": [{"key": "A", "value": 3}]}, "env[0]", "not a string"),
        ({"env": [{"key": "A"}]}, "env[0]", "object with key and value"),
        ({"env": {"A": "1"}}, "env", "expected a list"),
        ({"cmd": "sleep 1"}, "cmd", "expected a list of arguments"),
        ({"cmd": ["sh", 5]}, "cmd[1]", "spec.command[1]"),
        ({"mounts": ["data:/data"]}, "mounts[0].hostPath", "not absolute"),
        ({"mounts": ["/a:/b:rx"]}, "mounts[0]", "HOST_PATH:CONTAINER_PATH"),
        ({"network": "bad net"}, "network", "is invalid"),
        ({"network": 5}, "network", "expected a string"),
        ({"labels": {"bad key!": "x"}}, "labels['bad key!']", "invalid"),
        ({"imagee": "x"}, "imagee", "did you mean 'image'"),
        ({"image": "a b"}, "image", "not an image reference"),
        ({"name": "Web_1"}, "name", "DNS-1123"),
    ],
)
async def test_create_invalid_field(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post(CONTAINERS, json={**container_body(), **fields})

    errors = field_errors(assert_problem(response, 422))
    assert field in errors, errors
    assert message in errors[field]


async def test_create_missing_name_and_image(client: httpx.AsyncClient) -> None:
    response = await client.post(CONTAINERS, json={"env": []})

    errors = field_errors(assert_problem(response, 422))
    assert errors["name"] == "missing required field"
    assert errors["image"] == "missing required field"


async def test_create_invalid_stores_nothing(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await client.post(CONTAINERS, json=container_body(env=["BAD"]))

    with pytest.raises(NotFound):
        await store.get("Instance", "default", "web")


# List and get


async def test_list_shows_docker_instances(client: httpx.AsyncClient) -> None:
    await create(client, "web")
    await create(client, "api")
    await client.post("/api/v1/vms", json={"name": "vm-1"})

    response = await client.get(CONTAINERS)

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2
    assert sorted(view["name"] for view in body["containers"]) == ["api", "web"]


@pytest.mark.parametrize(
    ("status", "names"),
    [("running", ["web"]), ("stopped", ["api", "job"]), ("all", ["api", "job", "new", "web"])],
)
async def test_list_status_filter(
    client: httpx.AsyncClient, store: SqliteStore, status: str, names: list[str]
) -> None:
    for name in ("web", "api", "job", "new"):
        await create(client, name)
    await observe(store, "web", Phase.RUNNING)
    await observe(store, "api", Phase.STOPPED)
    await observe(store, "job", Phase.SUCCEEDED)

    response = await client.get(CONTAINERS, params={"status": status})

    assert sorted(view["name"] for view in response.json()["containers"]) == names


async def test_list_other_namespace(client: httpx.AsyncClient) -> None:
    await create(client, "web")
    await client.post(CONTAINERS, params={"namespace": "team-a"}, json=container_body("api"))

    response = await client.get(CONTAINERS, params={"namespace": "team-a"})

    assert [view["name"] for view in response.json()["containers"]] == ["api"]


async def test_list_bad_status_filter(client: httpx.AsyncClient) -> None:
    response = await client.get(CONTAINERS, params={"status": "paused"})

    problem = assert_problem(response, 400)
    assert "running, stopped, all" in problem["detail"]


async def test_get_shows_container_id(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)
    await observe(store, "web", Phase.RUNNING, container_id="c0ffee")

    response = await client.get(f"{CONTAINERS}/web")

    view = response.json()
    assert view["id"] == "c0ffee"
    assert view["status"] == "running"
    assert view["phase"] == "Running"


async def test_get_unknown_name_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{CONTAINERS}/ghost")

    problem = assert_problem(response, 404)
    assert "'ghost'" in problem["detail"]


async def test_get_vm_instance_is_404(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/vms", json={"name": "vm-1"})

    response = await client.get(f"{CONTAINERS}/vm-1")

    assert_problem(response, 404)


# Start, stop and delete


async def test_stop_records_halted(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)

    response = await client.post(f"{CONTAINERS}/web/stop", params={"timeout": "3"})

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "web"
    assert body["action"] == "stop"
    assert body["timeout"] == 3
    assert body["status"] == body["container"]["status"]
    instance = await stored(store, "web")
    assert instance.spec.run_strategy == RunStrategy.HALTED
    assert instance.metadata.annotations[STOP_GRACE_ANNOTATION] == "3"


async def test_stop_default_timeout(client: httpx.AsyncClient) -> None:
    await create(client)

    response = await client.post(f"{CONTAINERS}/web/stop")

    assert response.json()["timeout"] == 10


async def test_start_restores_strategy(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)
    await client.post(f"{CONTAINERS}/web/stop")

    response = await client.post(f"{CONTAINERS}/web/start")

    assert response.status_code == 200
    assert response.json()["action"] == "start"
    instance = await stored(store, "web")
    assert instance.spec.run_strategy == RunStrategy.ALWAYS
    assert PREVIOUS_RUN_STRATEGY_ANNOTATION not in instance.metadata.annotations


async def test_stop_bad_timeout(client: httpx.AsyncClient) -> None:
    await create(client)

    response = await client.post(f"{CONTAINERS}/web/stop", params={"timeout": "-1"})

    assert_problem(response, 400)


@pytest.mark.parametrize("verb", ["start", "stop"])
async def test_verb_unknown_name_is_404(client: httpx.AsyncClient, verb: str) -> None:
    response = await client.post(f"{CONTAINERS}/ghost/{verb}")

    assert_problem(response, 404)


async def test_delete_removes_instance(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)

    response = await client.delete(f"{CONTAINERS}/web")

    assert response.status_code == 200
    assert response.json() == {"name": "web", "deleted": True, "status": "removed"}
    with pytest.raises(NotFound):
        await store.get("Instance", "default", "web")


async def test_delete_waits_for_finalizer(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)
    instance = await stored(store, "web")
    instance.metadata.finalizers.append(RUNTIME_FINALIZER)
    await store.update(instance)

    response = await client.delete(f"{CONTAINERS}/web")

    assert response.json()["status"] == "terminating"
    assert (await stored(store, "web")).metadata.deletion_timestamp is not None


async def test_delete_file_owned_conflicts(client: httpx.AsyncClient, store: SqliteStore) -> None:
    body = manifest("web")
    body["metadata"]["annotations"] = {SOURCE_ANNOTATION: "file:/srv/web.yaml"}
    await store.create(Instance.model_validate(body))

    response = await client.delete(f"{CONTAINERS}/web")

    problem = assert_problem(response, 409)
    assert "file:/srv/web.yaml" in problem["detail"]
    assert (await stored(store, "web")).metadata.deletion_timestamp is None


async def test_delete_unknown_name_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{CONTAINERS}/ghost")

    assert_problem(response, 404)
