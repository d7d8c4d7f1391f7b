"""The garbage collector against the real Docker Engine, in a real ``sandboxctl serve`` process.

The controller sweeps every second with a one-second grace. Unowned containers opt in by a name
prefix unique to the test, so containers that other tests make on the same daemon are never
candidates.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.store.sqlite import SqliteStore
from tests.e2e.controller_process import ControllerProcess, instance_yaml, wait_for

pytestmark = pytest.mark.docker

MANAGED = "agentic-sandbox"
CONTROLLER = "agentic-sandbox.controller"
INSTANCE = "agentic-sandbox.instance"
UID = "agentic-sandbox.uid"


class ForeignContainers:
    """Containers the test makes with docker-py, as another tool would; all removed at the end."""

    def __init__(self, controller: ControllerProcess, image: str) -> None:
        self.docker = controller.docker
        self.image = image
        self.tag = f"gc-test-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []

    def make(self, name: str, labels: dict[str, str], *, stopped: bool) -> str:
        # A stopped one runs a command that exits at once, so Docker records its finish time.
        command = ["sh", "-c", "exit 0"] if stopped else None
        created = self.docker.create_container(
            self.image,
            command=command,
            name=f"{name}-{self.tag}",
            labels={**labels, "gc-test": self.tag},
        )
        self.ids.append(created["Id"])
        self.docker.start(created["Id"])
        if stopped:
            self.docker.wait(created["Id"], timeout=60)
        return str(created["Id"])

    def exists(self, container_id: str) -> bool:
        try:
            self.docker.inspect_container(container_id)
        except docker.errors.NotFound:
            return False
        return True

    def cleanup(self) -> None:
        for container_id in self.ids:
            try:
                self.docker.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture
def orphan_prefix() -> str:
    return f"gc{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def controller(demo_image: str, tmp_path: Path, orphan_prefix: str) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.extra_env = {
        "DOCKER_MONITOR_ENABLED": "true",
        "DOCKER_POLL_INTERVAL_SECS": "1",
        "AGENTIC_SANDBOX_GC_STARTUP_DELAY_SECS": "1",
        "AGENTIC_SANDBOX_GC_GRACE_SECS": "1",
        # Age never protects an unowned container here: only the name prefix does.
        "DOCKER_ORPHANED_AGE_SECS": "0",
        "DOCKER_ORPHAN_NAME_PREFIX": orphan_prefix,
    }
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


@pytest.fixture
def foreign(controller: ControllerProcess, demo_image: str) -> Iterator[ForeignContainers]:
    containers = ForeignContainers(controller, demo_image)
    try:
        yield containers
    finally:
        containers.cleanup()


def container_state(controller: ControllerProcess, container_id: str) -> str | None:
    try:
        return str(controller.docker.inspect_container(container_id)["State"]["Status"])
    except docker.errors.NotFound:
        return None


def delete_record(state_db: Path, name: str) -> None:
    """Delete an instance straight from the store file, as if it vanished while no one watched."""

    async def delete() -> None:
        async with SqliteStore(state_db) as store:
            instance = await store.get("Instance", "default", name)
            assert isinstance(instance, Instance)
            instance.metadata.finalizers.clear()
            await store.update(instance)
            await store.delete("Instance", "default", name)

    asyncio.run(delete())


def gc_events(controller: ControllerProcess) -> list[dict[str, Any]]:
    return [
        event
        for event in controller.events()
        if event["name"] == "container.removed" and event.get("reason") == "GarbageCollected"
    ]


def test_gc_removes_only_proven_orphans(
    controller: ControllerProcess, foreign: ForeignContainers, orphan_prefix: str
) -> None:
    # An instance that ran and was then stopped, and one to be deleted while the controller is down.
    controller.write_manifest("keep.yaml", instance_yaml("keep"))
    controller.write_manifest("doomed.yaml", instance_yaml("doomed"))
    kept_id = controller.wait_running("keep")["Id"]
    doomed_id = controller.wait_running("doomed")["Id"]
    controller.write_manifest("keep.yaml", instance_yaml("keep") + "  runStrategy: Halted\n")
    wait_for(lambda: controller.phase("keep") == "Stopped", what="instance keep Stopped")
    assert container_state(controller, kept_id) == "exited"

    # Containers of other tools and of a second controller, all old enough to be collected.
    unowned = foreign.make("task-other-tool", {MANAGED: "true"}, stopped=True)
    opted_in = foreign.make(f"{orphan_prefix}done", {MANAGED: "true"}, stopped=True)
    second_labels = {
        MANAGED: "true",
        CONTROLLER: f"second-{foreign.tag}",
        INSTANCE: "default/gone",
        UID: str(uuid.uuid4()),
    }
    second_stopped = foreign.make(f"{orphan_prefix}second", second_labels, stopped=True)
    second_running = foreign.make("second-running", second_labels, stopped=False)

    # The instance vanishes while the controller is down, and its container stays behind.
    controller.stop()
    (controller.manifests / "doomed.yaml").unlink()
    delete_record(controller.state_dir / "state.db", "doomed")
    controller.start()

    wait_for(lambda: not foreign.exists(doomed_id), what="orphaned container removed")
    wait_for(lambda: not foreign.exists(opted_in), what="opted-in unowned container removed")

    # Every object the sweep listed with the orphan was judged in that pass and kept.
    assert container_state(controller, kept_id) == "exited"
    assert controller.phase("keep") == "Stopped"
    assert foreign.exists(unowned)
    assert foreign.exists(second_stopped)
    assert container_state(controller, second_running) == "running"

    events = {event["details"]["containerId"]: event for event in gc_events(controller)}
    assert events[doomed_id]["instance"] == "default/doomed"
    assert events[doomed_id]["details"]["cause"] == "InstanceGone"
    assert events[opted_in]["details"]["cause"] == "UnownedStopped"
    assert set(events) == {doomed_id, opted_in}

    result = controller.sandboxctl("gc", "--dry-run", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["items"] == []
