"""Mission dispatch against a real controller and two agentic/agent:dev containers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.controller_process import ControllerProcess, free_port, wait_for
from tests.e2e.test_agent import AGENT_IMAGE, agent_image  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CAPABILITY_LABEL = "capability.sandbox.agentic.dev/special"


def manifest(name: str, *, special: bool) -> str:
    labels = f'  labels:\n    {CAPABILITY_LABEL}: "true"\n' if special else ""
    return (
        "apiVersion: sandbox.agentic.dev/v1alpha1\n"
        "kind: Instance\n"
        f"metadata:\n  name: {name}\n{labels}"
        f"spec:\n  image: {AGENT_IMAGE}\n"
    )


@pytest.fixture
def controller(agent_image: str, tmp_path: Path) -> Iterator[ControllerProcess]:  # noqa: F811
    process = ControllerProcess(tmp_path)
    process.grpc_port = free_port()
    process.extra_args = ["--grpc-port", str(process.grpc_port)]
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


def _mission(controller: ControllerProcess, mission_id: str) -> dict[str, Any]:
    response = controller.client.get(f"/api/v1/missions/{mission_id}")
    response.raise_for_status()
    return dict(response.json())


def _ended(controller: ControllerProcess, mission_id: str) -> dict[str, Any] | None:
    mission = _mission(controller, mission_id)
    return mission if mission["state"] not in ("Dispatched", "Running") else None


def _start_two(controller: ControllerProcess) -> None:
    controller.write_manifest("plain.yaml", manifest("plain", special=False))
    controller.write_manifest("special.yaml", manifest("special", special=True))
    for name in ("plain", "special"):
        waited = controller.sandboxctl("wait", "--for=condition=Ready", "--timeout=120s", name)
        assert waited.returncode == 0, waited.stderr


def test_dispatch_runs_on_matching_agent(controller: ControllerProcess) -> None:
    _start_two(controller)

    response = controller.client.post(
        "/api/v1/sessions/s1/dispatch",
        json={
            "mission_id": "m1",
            "objective": "hostname; echo to-stderr >&2; exit 4",
            "executor_filter": {"capabilities": ["special", "exec"]},
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["instance"] == "default/special"

    mission = wait_for(lambda: _ended(controller, "m1"), what="mission m1 to end")
    assert mission["state"] == "Failed"
    assert mission["reason"] == "NonZeroExit"
    assert mission["exitCode"] == 4
    assert mission["agentId"] == "special"
    output = controller.client.get("/api/v1/missions/m1/output")
    assert output.status_code == 200
    assert b"to-stderr\n" in output.content
    assert len(output.content.splitlines()) == 2

    names = [event["name"] for event in controller.events("default/special")]
    assert names.index("mission.dispatched") < names.index("mission.completed")
    completed = next(
        event
        for event in controller.events("default/special")
        if event["name"] == "mission.completed"
    )
    assert completed["details"]["exitCode"] == "4"
    assert "durationMs" in completed["details"]
    assert "mission.dispatched" not in [
        event["name"] for event in controller.events("default/plain")
    ]


def test_dispatch_cli_follow_exit_code(controller: ControllerProcess) -> None:
    _start_two(controller)

    result = controller.sandboxctl(
        "dispatch", "s2", "--mission-id", "cli-1", "--agent-id", "plain", "--follow",
        "--", "echo hello from $MISSION_ID; exit 3",
    )  # fmt: skip

    assert result.returncode == 3, result.stderr
    assert result.stdout == "hello from cli-1\n"
    listed = controller.sandboxctl("get", "missions", "--session", "s2")
    assert listed.returncode == 0, listed.stderr
    assert "cli-1" in listed.stdout
    assert "default/plain" in listed.stdout


def test_restart_marks_running_mission_lost(controller: ControllerProcess) -> None:
    _start_two(controller)
    response = controller.client.post(
        "/api/v1/sessions/s3/dispatch", json={"mission_id": "long", "objective": "sleep 300"}
    )
    assert response.status_code == 201, response.text

    controller.kill()
    controller.start()

    mission = _mission(controller, "long")
    assert mission["state"] == "Lost"
    assert mission["reason"] == "ControllerRestarted"
    failed = [event for event in controller.events() if event["name"] == "mission.failed"]
    assert [event["details"]["missionId"] for event in failed] == ["long"]
