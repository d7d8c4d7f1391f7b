"""GitOps end to end: a real ``sandboxctl serve`` follows a local git repository with the real
Docker Engine: commits become running containers, a removed manifest and the webhook remove
one, and an unreachable remote deletes nothing and shows the reason in ``describe gitsource``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controller_process import ControllerProcess, instance_yaml, wait_for
from tests.sources.git_support import Repository, free_port, gitsource_doc

pytestmark = pytest.mark.docker


@pytest.fixture
def controller(demo_image: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


def applied_commit(controller: ControllerProcess, name: str = "fleet") -> str | None:
    response = controller.client.get(f"/api/v1/gitsources/{name}")
    response.raise_for_status()
    return response.json().get("status", {}).get("lastAppliedCommit")


def test_gitsource_lifecycle(controller: ControllerProcess, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "git")
    repo.write("fleet/web.yaml", instance_yaml("web"))
    repo.write("fleet/api.yaml", instance_yaml("api"))
    first = repo.commit("web and api")
    response = controller.client.post(
        "/api/v1/gitsources", json=gitsource_doc("fleet", repo.url, path="fleet")
    )
    assert response.status_code == 201, response.text

    # A commit converges to running containers.
    controller.wait_running("web")
    controller.wait_running("api")
    assert applied_commit(controller) == first
    listing = controller.sandboxctl("get", "gitsources")
    assert listing.returncode == 0, listing.stderr
    assert "fleet" in listing.stdout
    assert first[:12] in listing.stdout

    # A deleted manifest and the webhook remove that instance at once.
    repo.remove("fleet/api.yaml")
    second = repo.commit("remove api")
    diff = controller.sandboxctl("diff", "--gitsource", "fleet")
    assert diff.returncode == 1, diff.stderr
    assert "-  image: agentic/demo:dev" in diff.stdout
    synced = controller.sandboxctl("sync", "fleet")
    assert synced.returncode == 0, synced.stderr
    wait_for(lambda: controller.instance("api") is None, what="api removed")
    wait_for(lambda: controller.running_container("api") is None, what="api container gone")
    assert applied_commit(controller) == second
    assert controller.phase("web") == "Running"

    # An unreachable remote deletes nothing and shows the reason.
    unreachable = f"git://127.0.0.1:{free_port()}/origin.git"
    response = controller.client.put(
        "/api/v1/gitsources/fleet", json=gitsource_doc("fleet", unreachable, path="fleet")
    )
    assert response.status_code == 200, response.text

    def describe_shows_failure() -> str | None:
        result = controller.sandboxctl("describe", "gitsource", "fleet")
        return result.stdout if "FetchFailed" in result.stdout else None

    described = wait_for(describe_shows_failure, what="FetchFailed in describe")
    assert "Connection refused" in described
    assert "nothing was applied or pruned" in described
    assert controller.phase("web") == "Running"
    assert controller.running_container("web") is not None
