"""scripts/up and scripts/down with the real controller, on free ports and a temporary state.

The controller gets a unique controller id. scripts/down leaves its containers running by
design, so the fixture removes them after the test by that id's ownership label.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.conftest import REPO_ROOT, require_docker

LABEL_CONTROLLER = "agentic-sandbox.controller"
# Bounds for a busy machine; each wait returns as soon as its condition holds.
SCRIPT_TIMEOUT_SECONDS = 300
CONTAINER_TIMEOUT_SECONDS = 30.0


@dataclass
class Deployment:
    state_dir: Path
    port: int
    instance: str
    env: dict[str, str]

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / script)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def controller_pid(self) -> int:
        return int((self.state_dir / "controller.pid").read_text())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_running(pid: int) -> bool:
    """Tell whether PID is a live process and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def deployment(tmp_path: Path, demo_image: str) -> Iterator[Deployment]:
    require_docker()
    run_id = uuid.uuid4().hex[:12]
    controller_id = f"up-test-{run_id}"
    # The example manifest under a unique name, so that its container name is unique too.
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    example = (REPO_ROOT / "manifests" / "hello.yaml").read_text()
    instance = f"up-test-{run_id}"
    (manifests / "hello.yaml").write_text(example.replace("name: hello", f"name: {instance}"))
    port = free_port()
    env = {
        **os.environ,
        "AGENTIC_SANDBOX_STATE_DIR": str(tmp_path / "state"),
        "AGENTIC_SANDBOX_MANIFESTS": str(manifests),
        "AGENTIC_SANDBOX_PORT": str(port),
        "AGENTIC_SANDBOX_GRPC_PORT": str(free_port()),
        "AGENTIC_SANDBOX_CONTROLLER_ID": controller_id,
    }
    result = Deployment(state_dir=tmp_path / "state", port=port, instance=instance, env=env)
    yield result

    result.run("down")
    client = docker.from_env()
    try:
        owned = client.containers.list(
            all=True, filters={"label": f"{LABEL_CONTROLLER}={controller_id}"}
        )
        for container in owned:
            container.remove(force=True)
    finally:
        client.close()


def wait_for_owned_container(controller_id: str) -> dict[str, str]:
    """Poll until a running container carries this controller's label; return its labels."""
    client = docker.from_env()
    deadline = time.monotonic() + CONTAINER_TIMEOUT_SECONDS
    try:
        while True:
            running = client.containers.list(
                filters={"label": f"{LABEL_CONTROLLER}={controller_id}"}
            )
            if running:
                return dict(running[0].labels)
            if time.monotonic() >= deadline:
                pytest.fail(f"no running container of controller {controller_id} appeared")
            time.sleep(0.2)
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.slow
def test_up_starts_controller(deployment: Deployment) -> None:
    result = deployment.run("up")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"The controller is running (PID {deployment.controller_pid()})" in result.stdout
    assert f"export SANDBOXCTL_SERVER=http://127.0.0.1:{deployment.port}" in result.stdout
    assert f"export AGENTIC_SANDBOX_STATE_DIR={deployment.state_dir}" in result.stdout
    assert process_running(deployment.controller_pid())
    labels = wait_for_owned_container(deployment.env["AGENTIC_SANDBOX_CONTROLLER_ID"])
    assert labels["agentic-sandbox.instance"] == f"default/{deployment.instance}"
    assert labels["agentic-sandbox"] == "true"


@pytest.mark.docker
@pytest.mark.slow
def test_up_then_down(deployment: Deployment) -> None:
    assert deployment.run("up").returncode == 0
    pid = deployment.controller_pid()

    second = deployment.run("up")
    stopped = deployment.run("down")

    assert second.returncode == 1
    assert f"a controller is already running with PID {pid}" in second.stderr
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopping the controller (PID {pid}) with SIGTERM" in stopped.stdout
    assert not process_running(pid)
    assert not (deployment.state_dir / "controller.pid").exists()
