"""The images that images/build.sh imports without a registry, run on the real Docker Engine.

Every container here carries the label ``dev.agentic.sandbox.test=<run id>`` and is removed by
the ``run_container`` fixture; images built under a test tag are removed by ``test_tag``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container
from ruamel.yaml import YAML

from tests.conftest import (
    BASE_IMAGE,
    DEMO_IMAGE,
    REPO_ROOT,
    build_images,
    missing_component,
    require_docker,
)

TEST_LABEL = "dev.agentic.sandbox.test"
AGENT_UID = 10001
# Generous bounds for a busy machine; each wait returns as soon as its condition holds.
LOG_TIMEOUT_SECONDS = 30.0
EXIT_TIMEOUT_SECONDS = 30

RunContainer = Callable[..., Container]


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    require_docker()
    client = docker.from_env(timeout=60)
    yield client
    client.close()


@pytest.fixture
def run_container(docker_client: docker.DockerClient) -> Iterator[RunContainer]:
    """Start detached containers labelled for this test; remove them all afterwards."""
    run_id = uuid.uuid4().hex[:12]
    started: list[Container] = []

    def run(image: str, **options: Any) -> Container:
        name = f"images-test-{run_id}-{len(started)}"
        labels = {TEST_LABEL: run_id}
        container = docker_client.containers.run(
            image, name=name, labels=labels, detach=True, **options
        )
        started.append(container)
        return container

    yield run
    for container in docker_client.containers.list(
        all=True, filters={"label": f"{TEST_LABEL}={run_id}"}
    ):
        container.remove(force=True)


@pytest.fixture
def test_tag(docker_client: docker.DockerClient) -> Iterator[str]:
    """A unique image tag; the base and demo images built under it are removed afterwards."""
    tag = f"test-{uuid.uuid4().hex[:12]}"
    yield tag
    for repository in ("agentic/base", "agentic/demo"):
        try:
            docker_client.images.remove(f"{repository}:{tag}", force=True)
        except docker.errors.ImageNotFound:
            pass


def wait_for_log(container: Container, text: str) -> str:
    """Poll the container's output until it contains ``text``; return the output so far."""
    deadline = time.monotonic() + LOG_TIMEOUT_SECONDS
    while True:
        output = container.logs().decode()
        if text in output:
            return output
        container.reload()
        if container.status == "exited" or time.monotonic() >= deadline:
            pytest.fail(f"container {container.name} did not print {text!r}; output:\n{output}")
        time.sleep(0.1)


def run_to_exit(container: Container) -> tuple[int, str]:
    """Wait for the container to exit; return its exit code and output."""
    result = container.wait(timeout=EXIT_TIMEOUT_SECONDS)
    return int(result["StatusCode"]), container.logs().decode()


def image_layers(client: docker.DockerClient, reference: str) -> list[str]:
    return list(client.images.get(reference).attrs["RootFS"]["Layers"])


def image_labels(client: docker.DockerClient, reference: str) -> dict[str, str]:
    return dict(client.images.get(reference).attrs["Config"]["Labels"] or {})


# --- images/build.sh


@pytest.mark.docker
def test_build_skips_up_to_date_images(demo_image: str, docker_client: docker.DockerClient) -> None:
    before = {ref: docker_client.images.get(ref).id for ref in (BASE_IMAGE, demo_image)}

    result = build_images()

    assert result.returncode == 0, result.stderr
    assert f"{BASE_IMAGE} is up to date" in result.stdout
    assert f"{DEMO_IMAGE} is up to date" in result.stdout
    after = {ref: docker_client.images.get(ref).id for ref in (BASE_IMAGE, demo_image)}
    assert after == before


@pytest.mark.docker
def test_build_reproduces_layers(
    demo_image: str, docker_client: docker.DockerClient, test_tag: str
) -> None:
    result = build_images("--tag", test_tag)

    assert result.returncode == 0, result.stderr
    for repository in ("agentic/base", "agentic/demo"):
        assert image_layers(docker_client, f"{repository}:{test_tag}") == image_layers(
            docker_client, f"{repository}:dev"
        )


@pytest.mark.docker
def test_build_force_replaces_image(
    demo_image: str, docker_client: docker.DockerClient, test_tag: str
) -> None:
    first = build_images("--tag", test_tag)
    assert first.returncode == 0, first.stderr
    first_id = docker_client.images.get(f"agentic/demo:{test_tag}").id
    assert first_id is not None

    second = build_images("--tag", test_tag, "--force")

    assert second.returncode == 0, second.stderr
    assert f"building agentic/demo:{test_tag}" in second.stdout
    assert docker_client.images.get(f"agentic/demo:{test_tag}").id != first_id
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(first_id)


@pytest.mark.docker
def test_build_rejects_missing_busybox(docker_client: docker.DockerClient, test_tag: str) -> None:
    result = build_images(
        "--tag", test_tag, env={"AGENTIC_SANDBOX_BUSYBOX": "/nonexistent/busybox"}
    )

    assert result.returncode == 1
    assert "busybox is missing at /nonexistent/busybox" in result.stderr
    assert "busybox-static" in result.stderr


@pytest.mark.docker
def test_build_rejects_dynamic_busybox(docker_client: docker.DockerClient, test_tag: str) -> None:
    # /bin/sh is dynamically linked, which is all that the check looks at.
    result = build_images("--tag", test_tag, env={"AGENTIC_SANDBOX_BUSYBOX": "/bin/sh"})

    assert result.returncode == 1
    assert "is dynamically linked" in result.stderr


def test_build_rejects_unreachable_docker(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        missing_component("the docker command is missing; install it with scripts/setup")
    socket = f"unix://{tmp_path}/missing.sock"

    result = build_images(env={"DOCKER_HOST": socket})

    assert result.returncode == 1
    assert "the Docker Engine is not reachable" in result.stderr
    assert "scripts/setup" in result.stderr


def test_build_rejects_unknown_argument() -> None:
    result = build_images("--frobnicate")

    assert result.returncode == 1
    assert "unknown argument '--frobnicate'" in result.stderr


# --- agentic/base


@pytest.mark.docker
def test_base_has_agent_user(demo_image: str, run_container: RunContainer) -> None:
    container = run_container(BASE_IMAGE, command=["id", "agent"])

    code, output = run_to_exit(container)

    assert code == 0
    assert (
        output.strip() == f"uid={AGENT_UID}(agent) gid={AGENT_UID}(agent) groups={AGENT_UID}(agent)"
    )


@pytest.mark.docker
def test_base_agent_can_write(demo_image: str, run_container: RunContainer) -> None:
    script = "touch /tmp/probe /workspace/probe /home/agent/probe && id -u && pwd"
    container = run_container(BASE_IMAGE, command=["sh", "-c", script], user="agent")

    code, output = run_to_exit(container)

    assert code == 0, output
    assert output.split() == [str(AGENT_UID), "/workspace"]


@pytest.mark.docker
def test_base_directory_modes(demo_image: str, run_container: RunContainer) -> None:
    paths = ["/tmp", "/var/tmp", "/workspace", "/home/agent", "/root", "/etc/shadow"]
    container = run_container(BASE_IMAGE, command=["stat", "-c", "%n %a %u:%g", *paths])

    code, output = run_to_exit(container)

    assert code == 0, output
    assert output.splitlines() == [
        "/tmp 1777 0:0",
        "/var/tmp 1777 0:0",
        f"/workspace 755 {AGENT_UID}:{AGENT_UID}",
        f"/home/agent 755 {AGENT_UID}:{AGENT_UID}",
        "/root 700 0:0",
        "/etc/shadow 600 0:0",
    ]


@pytest.mark.docker
def test_base_labels(demo_image: str, docker_client: docker.DockerClient) -> None:
    labels = image_labels(docker_client, BASE_IMAGE)

    assert labels["org.opencontainers.image.title"] == "agentic-sandbox-base"
    assert labels["org.opencontainers.image.version"] == "dev"
    assert len(labels["dev.agentic.sandbox.inputs"]) == 64


# --- agentic/demo


@pytest.mark.docker
def test_demo_config(demo_image: str, docker_client: docker.DockerClient) -> None:
    config = docker_client.images.get(demo_image).attrs["Config"]

    assert config["Cmd"] == ["/usr/local/bin/demo-sandbox"]
    assert config["WorkingDir"] == "/workspace"
    assert config["Labels"]["org.opencontainers.image.base.name"] == BASE_IMAGE


@pytest.mark.docker
def test_demo_stops_on_sigterm(demo_image: str, run_container: RunContainer) -> None:
    container = run_container(demo_image, environment={"DEMO_INTERVAL": "1"})
    wait_for_log(container, "demo-sandbox heartbeat n=1")

    # Without a handled SIGTERM, Docker kills the container after 5 s and it exits with 137.
    container.stop(timeout=5)

    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    assert container.attrs["State"]["OOMKilled"] is False
    assert "demo-sandbox stopping signal=TERM" in container.logs().decode()


@pytest.mark.docker
def test_demo_stops_on_sigint(demo_image: str, run_container: RunContainer) -> None:
    container = run_container(demo_image)
    wait_for_log(container, "demo-sandbox started")

    container.kill(signal="SIGINT")
    code, output = run_to_exit(container)

    assert code == 0
    assert "demo-sandbox stopping signal=INT" in output


@pytest.mark.docker
def test_demo_start_line(demo_image: str, run_container: RunContainer) -> None:
    environment = {"DEBUG": "no", "FILE_MODE": "0755", "AGENT_SECRET": "hunter2-value"}
    container = run_container(demo_image, hostname="demo-host", environment=environment)

    output = wait_for_log(container, "demo-sandbox env FILE_MODE")

    assert "demo-sandbox started host=demo-host pid=1 uid=0" in output
    assert "demo-sandbox env DEBUG=no\n" in output
    assert "demo-sandbox env FILE_MODE=0755\n" in output
    assert "demo-sandbox env AGENT_SECRET=<redacted>\n" in output
    assert "hunter2-value" not in output


@pytest.mark.docker
def test_demo_exit_after_heartbeats(demo_image: str, run_container: RunContainer) -> None:
    environment = {"DEMO_INTERVAL": "1", "DEMO_EXIT_AFTER": "2", "DEMO_EXIT_CODE": "3"}
    container = run_container(demo_image, environment=environment)

    code, output = run_to_exit(container)

    assert code == 3
    assert "demo-sandbox heartbeat n=2" in output
    assert "demo-sandbox exiting code=3 after=2 heartbeats" in output


@pytest.mark.docker
def test_demo_rejects_invalid_interval(demo_image: str, run_container: RunContainer) -> None:
    container = run_container(demo_image, environment={"DEMO_INTERVAL": "soon"})

    code, output = run_to_exit(container)

    assert code == 64
    assert "DEMO_INTERVAL=soon is invalid" in output


# --- images/catalog.yaml


@pytest.mark.docker
def test_catalog_images_exist(demo_image: str, docker_client: docker.DockerClient) -> None:
    catalog = YAML(typ="safe").load((REPO_ROOT / "images" / "catalog.yaml").read_text())
    entries = catalog["images"]

    assert [entry["name"] for entry in entries] == [
        "base",
        "demo",
        "agent",
        "claude",
        "codex",
        "opencode",
        "automation-control",
    ]
    for entry in entries:
        assert set(entry) == {"name", "image", "description", "runtime"}
        assert entry["runtime"] == "docker"
        assert entry["description"].strip()
    # images/build.sh builds these two; the agent and provider images have their own scripts.
    for entry in entries[:2]:
        docker_client.images.get(entry["image"])
