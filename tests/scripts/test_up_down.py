"""scripts/up and scripts/down around a stand-in controller process.

The stand-in is ``sleep`` started under the name ``sandboxctl``, so that the scripts' PID check
accepts it; each test ends its own stand-in by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# Ends the stand-in on its own if a test fails before the scripts stop it.
STAND_IN_SECONDS = 120

StartStandIn = Callable[..., "subprocess.Popen[bytes]"]


def run_script(name: str, state_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / name)],
        env={**os.environ, "AGENTIC_SANDBOX_STATE_DIR": str(state_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture
def start_stand_in(tmp_path: Path) -> Iterator[StartStandIn]:
    """Start stand-in controllers with their PID in tmp_path/controller.pid; end them after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*, ignore_sigterm: bool = False) -> subprocess.Popen[bytes]:
        # An ignored signal stays ignored across exec, so `sleep` then ignores SIGTERM too.
        trap = 'trap "" TERM; ' if ignore_sigterm else ""
        process = subprocess.Popen(
            ["bash", "-c", f"{trap}exec -a sandboxctl sleep {STAND_IN_SECONDS}"]
        )
        started.append(process)
        (tmp_path / "controller.pid").write_text(f"{process.pid}\n")
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_down_stops_controller(tmp_path: Path, start_stand_in: StartStandIn) -> None:
    controller = start_stand_in()

    result = run_script("down", tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"stopping the controller (PID {controller.pid}) with SIGTERM" in result.stdout
    assert controller.wait(timeout=10) == -signal.SIGTERM
    assert not (tmp_path / "controller.pid").exists()


def test_down_kills_after_timeout(tmp_path: Path, start_stand_in: StartStandIn) -> None:
    controller = start_stand_in(ignore_sigterm=True)

    result = run_script("down", tmp_path, AGENTIC_SANDBOX_STOP_TIMEOUT="1")

    assert result.returncode == 0, result.stderr
    assert "did not exit within 1 s of SIGTERM; sending SIGKILL" in result.stderr
    assert controller.wait(timeout=10) == -signal.SIGKILL
    assert not (tmp_path / "controller.pid").exists()


def test_down_without_pidfile(tmp_path: Path) -> None:
    result = run_script("down", tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no controller is running" in result.stdout


def test_down_ignores_unrelated_pid(tmp_path: Path) -> None:
    # The test process itself is alive but is no sandboxctl, so down must not signal it.
    (tmp_path / "controller.pid").write_text(f"{os.getpid()}\n")

    result = run_script("down", tmp_path)

    assert result.returncode == 0, result.stderr
    assert "is not a running sandboxctl; removing the stale PID file" in result.stdout
    assert not (tmp_path / "controller.pid").exists()


def test_up_rejects_second_controller(tmp_path: Path, start_stand_in: StartStandIn) -> None:
    controller = start_stand_in()

    result = run_script("up", tmp_path)

    assert result.returncode == 1
    assert f"a controller is already running with PID {controller.pid}" in result.stderr
    assert "scripts/down" in result.stderr
    assert controller.poll() is None
