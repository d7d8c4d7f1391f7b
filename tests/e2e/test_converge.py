"""Whole-system convergence: manifests in a directory become real Docker containers and stay so.

Each test runs its own ``sandboxctl serve`` process against the real Docker Engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controller_process import ControllerProcess, instance_yaml, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def controller(demo_image: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


def created_events(controller: ControllerProcess, name: str) -> int:
    events = controller.events(instance=name)
    return sum(1 for event in events if event["name"] == "container.created")


def test_dropped_manifest_runs_with_ownership_labels(controller: ControllerProcess) -> None:
    controller.write_manifest("web.yaml", instance_yaml("web"))

    container = controller.wait_running("web")
    labels = container["Labels"]
    instance = controller.instance("web")
    assert instance is not None
    assert labels["agentic-sandbox"] == "true"
    assert labels["agentic-sandbox.controller"] == controller.controller_id
    assert labels["agentic-sandbox.instance"] == "default/web"
    assert labels["agentic-sandbox.uid"] == instance["metadata"]["uid"]
    assert labels["agentic-sandbox.spec-hash"] == instance["status"]["specHash"]
    assert instance["status"]["runtimeRef"]["id"] == container["Id"]
    annotations = instance["metadata"]["annotations"]
    assert annotations["sandbox.agentic.dev/source"] == f"file:{controller.manifests}/web.yaml"


def test_env_change_recreates_once(controller: ControllerProcess) -> None:
    controller.write_manifest("web.yaml", instance_yaml("web", env={"MODE": '"a"'}))
    first = controller.wait_running("web")["Id"]

    controller.write_manifest("web.yaml", instance_yaml("web", env={"MODE": "0755", "DEBUG": "no"}))

    def replaced() -> str | None:
        container = controller.running_container("web")
        return container["Id"] if container and container["Id"] != first else None

    second = wait_for(replaced, what="replacement container")
    env = controller.docker.inspect_container(second)["Config"]["Env"]
    assert "MODE=0755" in env
    assert "DEBUG=no" in env
    wait_for(lambda: controller.phase("web") == "Running", what="web Running again")
    assert created_events(controller, "web") == 2
    assert len(controller.containers()) == 1


def test_label_change_keeps_container(controller: ControllerProcess) -> None:
    controller.write_manifest("web.yaml", instance_yaml("web", labels="tier: one"))
    first = controller.wait_running("web")["Id"]

    controller.write_manifest("web.yaml", instance_yaml("web", labels="tier: two"))

    def relabelled() -> bool:
        instance = controller.instance("web")
        return instance is not None and instance["metadata"]["labels"].get("tier") == "two"

    wait_for(relabelled, what="label update in the store")
    # A later manifest proves the controller has processed the label edit before we look.
    controller.write_manifest("marker.yaml", instance_yaml("marker"))
    controller.wait_running("marker")
    assert controller.running_container("web")["Id"] == first  # type: ignore[index]
    assert created_events(controller, "web") == 1


def test_file_deletion_removes_container(controller: ControllerProcess) -> None:
    path = controller.write_manifest("web.yaml", instance_yaml("web"))
    controller.wait_running("web")

    path.unlink()

    wait_for(lambda: controller.instance("web") is None, what="instance deleted")
    assert controller.containers() == []


def test_syntax_error_keeps_instances_and_others_converge(controller: ControllerProcess) -> None:
    controller.write_manifest("web.yaml", instance_yaml("web"))
    first = controller.wait_running("web")["Id"]

    controller.write_manifest("web.yaml", instance_yaml("web") + "  env: [unclosed\n")
    controller.write_manifest("other.yaml", instance_yaml("other"))
    controller.wait_running("other")

    invalid = wait_for(
        lambda: [e for e in controller.events() if e["name"] == "source.invalid"],
        what="source.invalid event",
    )
    message = invalid[0]["message"]
    assert f"{controller.manifests}/web.yaml:" in message
    assert controller.phase("web") == "Running"
    assert controller.running_container("web")["Id"] == first  # type: ignore[index]


def test_removed_container_is_repaired(controller: ControllerProcess) -> None:
    controller.write_manifest("web.yaml", instance_yaml("web"))
    first = controller.wait_running("web")["Id"]

    controller.docker.remove_container(first, force=True)

    def repaired() -> str | None:
        container = controller.running_container("web")
        return container["Id"] if container and container["Id"] != first else None

    wait_for(repaired, what="repaired container")
    assert len(controller.containers()) == 1


def test_kill9_during_apply_leaves_exactly_twenty(controller: ControllerProcess) -> None:
    names = [f"batch-{index:02d}" for index in range(20)]
    documents = "---\n".join(instance_yaml(name) for name in names)
    controller.write_manifest("batch.yaml", documents)
    wait_for(lambda: len(controller.containers()) >= 3, what="first containers of the batch")

    controller.kill()
    controller.start()

    for name in names:
        wait_for(lambda n=name: controller.phase(n) == "Running", what=f"{name} Running")
    containers = controller.containers()
    instances = sorted(c["Labels"]["agentic-sandbox.instance"] for c in containers)
    assert instances == sorted(f"default/{name}" for name in names)
    assert all(c["State"] == "running" for c in containers)


def test_apply_command_creates_instance(controller: ControllerProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "api.yaml"
    manifest.write_text(instance_yaml("from-cli"))

    result = controller.sandboxctl("apply", "-f", str(manifest))

    assert result.returncode == 0, result.stderr
    assert "instance/from-cli created" in result.stdout
    controller.wait_running("from-cli")
    listing = controller.sandboxctl("get", "instances")
    assert "from-cli" in listing.stdout
    assert "Running" in listing.stdout


def test_missing_command_stalls_then_recovers(controller: ControllerProcess) -> None:
    broken = instance_yaml("web") + "  command: [no-such-command]\n"
    controller.write_manifest("web.yaml", broken)

    def stalled() -> dict[str, object] | None:
        instance = controller.instance("web")
        conditions = (instance or {}).get("status", {}).get("conditions", [])
        return next(
            (c for c in conditions if c["type"] == "Stalled" and c["status"] == "True"), None
        )

    condition = wait_for(stalled, what="Stalled condition")
    assert "no-such-command" in str(condition["message"])
    # Marker instance: once it runs, the controller has had time to act on any hot loop.
    controller.write_manifest("marker.yaml", instance_yaml("marker"))
    controller.wait_running("marker")
    starts = [e for e in controller.events("web") if e["name"] == "container.started"]
    assert len(starts) == 1

    controller.write_manifest("web.yaml", instance_yaml("web"))
    controller.wait_running("web")
    assert stalled() is None
