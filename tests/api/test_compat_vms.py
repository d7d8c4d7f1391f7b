"""The incumbent-compatible VM routes, as views over libvirt Instances in a real SqliteStore."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentic_sandbox.crds.instance import Instance, Phase, RunStrategy
from agentic_sandbox.crds.meta import STOP_GRACE_ANNOTATION
from agentic_sandbox.errors import NotFound
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import assert_problem

VMS = "/api/v1/vms"


async def create(client: httpx.AsyncClient, name: str = "agent-1", **fields: Any) -> httpx.Response:
    response = await client.post(VMS, json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response


async def stored(store: SqliteStore, name: str = "agent-1") -> Instance:
    instance = await store.get("Instance", "default", name)
    assert isinstance(instance, Instance)
    return instance


def field_errors(problem: dict[str, Any]) -> dict[str, str]:
    return {error["field"]: error["message"] for error in problem["errors"]}


async def test_create_applies_incumbent_defaults(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    response = await create(client)

    spec = (await stored(store)).spec
    assert spec.runtime == "libvirt"
    assert spec.loadout == "agentic-dev"
    assert spec.resources.cpus == 4
    assert spec.resources.memory == "8192Mi"
    assert spec.resources.disk == "50Gi"
    assert spec.agentshare is True
    assert spec.run_strategy == RunStrategy.ALWAYS
    vm = response.json()["vm"]
    assert vm["name"] == "agent-1"
    assert vm["vcpus"] == 4
    assert vm["memory_mb"] == 8192
    assert vm["state"] == "pending"
    assert vm["uuid"] is None
    assert vm["agent"] == {"connected": False, "connected_at": None}


async def test_create_maps_fields(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(
        client,
        profile="agentic-small",
        vcpus=2,
        memory_mb=2048,
        disk_gb=20,
        agentshare=False,
        start=False,
    )

    spec = (await stored(store)).spec
    assert spec.loadout == "agentic-small"
    assert spec.resources.cpus == 2
    assert spec.resources.memory == "2048Mi"
    assert spec.resources.disk == "20Gi"
    assert spec.agentshare is False
    assert spec.run_strategy == RunStrategy.HALTED


async def test_create_accepts_instance_quantities(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create(client, loadout="agentic-dev", cpus="1500m", memory="4Gi", disk="10Gi")

    resources = (await stored(store)).spec.resources
    assert resources.cpus == 1.5
    assert resources.memory == "4Gi"
    assert resources.disk == "10Gi"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"loadout": "a", "profile": "b"}, "profile", "not both"),
        ({"vcpus": 2, "cpus": 2}, "cpus", "not both"),
        ({"vcpus": "many"}, "vcpus", "whole number"),
        ({"memory_mb": True}, "memory_mb", "whole number"),
        ({"memory": "lots"}, "memory", "spec.resources.memory"),
        ({"start": "yes"}, "start", "true or false"),
        ({"ssh_key": "ssh-ed25519 AAAA"}, "ssh_key", "not injected"),
        ({"composition": {"init": "ubuntu"}}, "composition", "name a loadout"),
        ({"vcpu": 2}, "vcpu", "did you mean 'vcpus'"),
        ({"name": "Agent_1"}, "name", "DNS-1123"),
    ],
)
async def test_create_invalid_field(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post(VMS, json={"name": "agent-1", **fields})

    errors = field_errors(assert_problem(response, 422))
    assert field in errors, errors
    assert message in errors[field]


async def test_list_state_and_prefix(client: httpx.AsyncClient, store: SqliteStore) -> None:
    for name in ("agent-1", "agent-2", "task-1"):
        await create(client, name)
    await client.post("/api/v1/containers", json={"name": "web", "image": "agentic/demo:dev"})
    instance = await stored(store, "agent-2")
    instance.status.phase = Phase.RUNNING
    await store.update_status(instance)

    everything = (await client.get(VMS)).json()
    running = (await client.get(VMS, params={"state": "running"})).json()
    agents = (await client.get(VMS, params={"prefix": "agent-"})).json()

    assert everything["total"] == 3
    assert [vm["name"] for vm in running["vms"]] == ["agent-2"]
    assert sorted(vm["name"] for vm in agents["vms"]) == ["agent-1", "agent-2"]


async def test_list_bad_state_filter(client: httpx.AsyncClient) -> None:
    response = await client.get(VMS, params={"state": "paused"})

    assert_problem(response, 400)


async def test_get_container_instance_is_404(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/containers", json={"name": "web", "image": "agentic/demo:dev"})

    response = await client.get(f"{VMS}/web")

    assert_problem(response, 404)


async def test_stop_force_has_no_grace(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)

    response = await client.post(f"{VMS}/agent-1/stop", params={"force": "true", "timeout": "15"})

    assert response.status_code == 200
    assert response.json()["vm"]["name"] == "agent-1"
    instance = await stored(store)
    assert instance.spec.run_strategy == RunStrategy.HALTED
    assert instance.metadata.annotations[STOP_GRACE_ANNOTATION] == "0"


async def test_stop_with_timeout(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)

    await client.post(f"{VMS}/agent-1/stop", params={"timeout": "15"})

    assert (await stored(store)).metadata.annotations[STOP_GRACE_ANNOTATION] == "15"


async def test_destroy_stops_without_grace(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)

    response = await client.post(f"{VMS}/agent-1/destroy")

    assert response.status_code == 200
    instance = await stored(store)
    assert instance.spec.run_strategy == RunStrategy.HALTED
    assert instance.metadata.annotations[STOP_GRACE_ANNOTATION] == "0"


async def test_start_after_destroy(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)
    await client.post(f"{VMS}/agent-1/destroy")

    response = await client.post(f"{VMS}/agent-1/start")

    assert response.status_code == 200
    assert (await stored(store)).spec.run_strategy == RunStrategy.ALWAYS


@pytest.mark.parametrize("verb", ["start", "stop", "destroy"])
async def test_verb_unknown_name_is_404(client: httpx.AsyncClient, verb: str) -> None:
    response = await client.post(f"{VMS}/ghost/{verb}")

    assert_problem(response, 404)


async def test_delete_removes_instance(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create(client)

    response = await client.delete(f"{VMS}/agent-1", params={"delete_disk": "false"})

    assert response.json() == {"name": "agent-1", "deleted": True, "state": "removed"}
    with pytest.raises(NotFound):
        await store.get("Instance", "default", "agent-1")


async def test_delete_bad_flag(client: httpx.AsyncClient) -> None:
    await create(client)

    response = await client.delete(f"{VMS}/agent-1", params={"force": "maybe"})

    assert_problem(response, 400)
