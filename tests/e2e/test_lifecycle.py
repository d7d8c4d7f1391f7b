"""Run strategies, crash loops and lifecycle verbs against the real Docker Engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.controller_process import ControllerProcess, wait_for

pytestmark = pytest.mark.docker

EXIT_ZERO = ["sh", "-c", "exit 0"]
EXIT_ONE = ["sh", "-c", "exit 1"]
# Doubles a shell variable until the memory limit kills the process.
MEMORY_HOG = ["sh", "-c", "x=a; while :; do x=$x$x; done"]


@pytest.fixture
def controller(demo_image: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


def manifest(name: str, strategy: str, command: list[str], memory: str = "64Mi") -> str:
    quoted = ", ".join(f"'{part}'" for part in command)
    return (
        "apiVersion: sandbox.agentic.dev/v1alpha1\n"
        "kind: Instance\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        "  image: agentic/demo:dev\n"
        f"  runStrategy: {strategy}\n"
        f"  command: [{quoted}]\n"
        f"  resources:\n    memory: {memory}\n"
    )


def status_of(controller: ControllerProcess, name: str) -> dict[str, Any]:
    instance = controller.instance(name) or {}
    return dict(instance.get("status", {}))


def wait_phase(controller: ControllerProcess, name: str, phase: str) -> dict[str, Any]:
    wait_for(lambda: status_of(controller, name).get("phase") == phase, what=f"{name} {phase}")
    return status_of(controller, name)


@pytest.mark.parametrize(
    ("strategy", "command", "phase", "code", "reason"),
    [
        ("Once", EXIT_ZERO, "Succeeded", 0, "Completed"),
        ("Once", EXIT_ONE, "Failed", 1, "Error"),
        ("RerunOnFailure", EXIT_ZERO, "Succeeded", 0, "Completed"),
    ],
)
def test_terminal_exits(
    controller: ControllerProcess,
    strategy: str,
    command: list[str],
    phase: str,
    code: int,
    reason: str,
) -> None:
    controller.write_manifest("job.yaml", manifest("job", strategy, command))

    status = wait_phase(controller, "job", phase)

    assert status["lastExit"]["code"] == code
    assert status["lastExit"]["reason"] == reason
    assert status["restartCount"] == 0
    containers = controller.containers()
    assert len(containers) == 1
    assert containers[0]["State"] == "exited"


@pytest.mark.parametrize("strategy", ["Always", "RerunOnFailure"])
def test_failing_sandbox_enters_crash_loop(controller: ControllerProcess, strategy: str) -> None:
    controller.write_manifest("crash.yaml", manifest("crash", strategy, EXIT_ONE))

    status = wait_phase(controller, "crash", "CrashLoopBackOff")

    assert status["restartCount"] >= 1
    assert status["lastExit"]["code"] == 1
    assert status["nextRetryAt"]
    described = controller.sandboxctl("describe", "instance", "crash")
    assert "CrashLoopBackOff" in described.stdout
    assert "Next Retry:" in described.stdout
    assert "code 1" in described.stdout


def test_out_of_memory_reported(controller: ControllerProcess) -> None:
    controller.write_manifest("hog.yaml", manifest("hog", "Once", MEMORY_HOG, memory="16Mi"))

    wait_phase(controller, "hog", "Failed")
    # Docker sets the OOM flag from a cgroup event that can come just after the exit; its "oom"
    # event makes the controller look again.
    wait_for(
        lambda: status_of(controller, "hog").get("lastExit", {}).get("oomKilled") is True,
        what="lastExit.oomKilled",
    )
    status = status_of(controller, "hog")

    assert status["lastExit"]["oomKilled"] is True
    assert status["lastExit"]["reason"] == "OOMKilled"
    described = controller.sandboxctl("describe", "instance", "hog")
    assert "OOMKilled" in described.stdout


def test_always_restarts_clean_exit(controller: ControllerProcess) -> None:
    controller.write_manifest("loop.yaml", manifest("loop", "Always", EXIT_ZERO))

    wait_for(
        lambda: status_of(controller, "loop").get("restartCount", 0) >= 1,
        what="a restart after a clean exit",
    )
    assert len(controller.containers()) == 1


def test_stop_and_start_keep_container(controller: ControllerProcess) -> None:
    controller.write_manifest("web.yaml", manifest("web", "Always", ["demo-sandbox"]))
    first = controller.wait_running("web")["Id"]

    stopped = controller.sandboxctl("stop", "web", "--timeout", "5")
    assert stopped.returncode == 0, stopped.stderr
    wait_phase(controller, "web", "Stopped")
    (container,) = controller.containers()
    assert container["Id"] == first
    assert container["State"] == "exited"

    started = controller.sandboxctl("start", "web")
    assert started.returncode == 0, started.stderr
    wait_phase(controller, "web", "Running")
    assert controller.running_container("web")["Id"] == first  # type: ignore[index]
