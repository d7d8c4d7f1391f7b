"""The incumbent-compatible container routes against a real controller and Docker Engine.

The tests drive ``/api/v1/containers`` with plain httpx calls, as a client written against the
incumbent server would, and check the result in the resource API and in Docker itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.controller_process import ControllerProcess, wait_for

pytestmark = pytest.mark.docker

CONTAINERS = "/api/v1/containers"
# Label on the unmanaged container, so that cleanup removes exactly what the test made.
TEST_LABEL = "agentic-test.compat"


@pytest.fixture
def controller(demo_image: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


@pytest.fixture
def unmanaged(demo_image: str) -> Iterator[dict[str, Any]]:
    """A running container made with docker-py, carrying only the incumbent's marker label."""
    client = docker.APIClient(version="auto", timeout=60)
    run = uuid.uuid4().hex[:8]
    name = f"unmanaged-{run}"
    created = client.create_container(
        demo_image, name=name, labels={"agentic-sandbox": "true", TEST_LABEL: run}
    )
    client.start(created["Id"])
    try:
        yield dict(client.inspect_container(created["Id"]))
    finally:
        for container in client.containers(all=True, filters={"label": f"{TEST_LABEL}={run}"}):
            client.remove_container(container["Id"], force=True)
        client.close()


def view(controller: ControllerProcess, name: str) -> dict[str, Any] | None:
    response = controller.client.get(f"{CONTAINERS}/{name}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return dict(response.json())


def wait_status(controller: ControllerProcess, name: str, status: str) -> dict[str, Any]:
    return wait_for(
        lambda: (found := view(controller, name)) and found["status"] == status and found,
        what=f"container {name} {status}",
    )


def listed_names(controller: ControllerProcess, status: str = "all") -> list[str]:
    response = controller.client.get(CONTAINERS, params={"status": status})
    response.raise_for_status()
    return [item["name"] for item in response.json()["containers"]]


def test_container_lifecycle(controller: ControllerProcess, demo_image: str) -> None:
    name = f"compat-{uuid.uuid4().hex[:8]}"
    data = controller.mount_root / "data"
    data.mkdir()
    body = {
        "name": name,
        "image": demo_image,
        "env": ["GREETING=hello", {"key": "MODE", "value": "compat"}],
        "mounts": [f"{data}:/data:ro"],
        "network": "bridge",
    }

    created = controller.client.post(CONTAINERS, json=body)

    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    running = wait_status(controller, name, "running")
    container_id = running["id"]
    assert container_id
    assert name in listed_names(controller, "running")
    assert name not in listed_names(controller, "stopped")

    # The same sandbox is an Instance written by the API, and a labelled container.
    instance = controller.instance(name)
    assert instance is not None
    assert instance["spec"]["runtime"] == "docker"
    assert instance["metadata"]["annotations"]["sandbox.agentic.dev/source"] == "api"
    assert instance["status"]["runtimeRef"]["id"] == container_id
    inspected = controller.docker.inspect_container(container_id)
    labels = inspected["Config"]["Labels"]
    assert labels["agentic-sandbox"] == "true"
    assert labels["agentic-sandbox.controller"] == controller.controller_id
    assert labels["agentic-sandbox.instance"] == f"default/{name}"
    assert labels["agentic-sandbox.uid"] == instance["metadata"]["uid"]
    assert "GREETING=hello" in inspected["Config"]["Env"]
    assert "MODE=compat" in inspected["Config"]["Env"]
    mounts = {mount["Destination"]: mount for mount in inspected["Mounts"]}
    assert mounts["/data"]["Source"] == str(data)
    assert mounts["/data"]["RW"] is False

    # Stop keeps the container; start runs the same one again.
    stopped = controller.client.post(f"{CONTAINERS}/{name}/stop", params={"timeout": "2"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["timeout"] == 2
    assert wait_status(controller, name, "stopped")["id"] == container_id
    assert controller.docker.inspect_container(container_id)["State"]["Running"] is False
    assert name in listed_names(controller, "stopped")

    started = controller.client.post(f"{CONTAINERS}/{name}/start")
    assert started.status_code == 200, started.text
    assert wait_status(controller, name, "running")["id"] == container_id

    # Delete removes the container, then the Instance.
    deleted = controller.client.delete(f"{CONTAINERS}/{name}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True
    wait_for(lambda: view(controller, name) is None, what=f"container {name} gone")
    assert controller.instance(name) is None
    assert controller.containers(**{"agentic-sandbox.instance": f"default/{name}"}) == []


def test_unmanaged_container_untouched(
    controller: ControllerProcess, unmanaged: dict[str, Any]
) -> None:
    name = unmanaged["Name"].lstrip("/")
    requests = [
        ("GET", f"{CONTAINERS}/{name}"),
        ("POST", f"{CONTAINERS}/{name}/stop"),
        ("POST", f"{CONTAINERS}/{name}/start"),
        ("DELETE", f"{CONTAINERS}/{name}"),
    ]

    statuses = [controller.client.request(method, path).status_code for method, path in requests]

    assert statuses == [404, 404, 404, 404]
    assert name not in listed_names(controller)
    after = controller.docker.inspect_container(unmanaged["Id"])
    assert after["State"]["Running"] is True
    assert after["State"]["StartedAt"] == unmanaged["State"]["StartedAt"]
    assert controller.instance(name) is None


def test_catalog_reports_built_images(controller: ControllerProcess, demo_image: str) -> None:
    response = controller.client.get("/api/v1/container-images")

    assert response.status_code == 200
    images = {image["ref"]: image for image in response.json()["images"]}
    assert images[demo_image]["present"] is True
    assert images[demo_image]["label"] == "demo"
