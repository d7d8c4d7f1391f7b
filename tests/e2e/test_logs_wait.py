"""sandboxctl wait and logs -f against a real controller and the real Docker Engine."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controller_process import WAIT_SECONDS, ControllerProcess

pytestmark = pytest.mark.docker

# Prints "started", waits until /tmp/go exists, prints "finished" and exits 0.
COMMAND = "['sh', '-c', 'echo started; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo finished']"
MANIFEST = f"""\
apiVersion: sandbox.agentic.dev/v1alpha1
kind: Instance
metadata:
  name: talker
spec:
  image: agentic/demo:dev
  runStrategy: Once
  command: {COMMAND}
"""


@pytest.fixture
def controller(demo_image: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


def start_sandboxctl(controller: ControllerProcess, *args: str) -> subprocess.Popen[str]:
    """Start sandboxctl against ``controller`` with its standard output piped, unbuffered."""
    sandboxctl = Path(sys.executable).parent / "sandboxctl"
    env = {
        **os.environ,
        "SANDBOXCTL_SERVER": f"http://127.0.0.1:{controller.port}",
        "AGENTIC_SANDBOX_STATE_DIR": str(controller.state_dir),
    }
    return subprocess.Popen(
        [str(sandboxctl), *args], env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    )


def read_until(stream: subprocess.Popen[str], text: str) -> str:
    """Read the process's standard output line by line until a line contains ``text``."""
    assert stream.stdout is not None
    seen = ""
    while text not in seen:
        line = stream.stdout.readline()
        if not line:
            raise AssertionError(f"output ended before {text!r}; got {seen!r}")
        seen += line
    return seen


def test_wait_then_follow_logs(controller: ControllerProcess, tmp_path: Path) -> None:
    path = tmp_path / "talker.yaml"
    path.write_text(MANIFEST)
    applied = controller.sandboxctl("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr

    waited = controller.sandboxctl("wait", "--for=condition=Ready", "--timeout=60s", "talker")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == "instance/talker condition Ready=True met\n"

    follower = start_sandboxctl(controller, "logs", "-f", "talker")
    # A deadline against a hang: reads of a follower that never prints block until it is killed.
    watchdog = threading.Timer(WAIT_SECONDS, follower.kill)
    watchdog.start()
    try:
        assert "started" in read_until(follower, "started")
        container = controller.running_container("talker")
        assert container is not None
        exec_id = controller.docker.exec_create(container["Id"], ["touch", "/tmp/go"])
        controller.docker.exec_start(exec_id["Id"])
        rest = read_until(follower, "finished")
        assert follower.wait(timeout=WAIT_SECONDS) == 0
    finally:
        watchdog.cancel()
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        if follower.stdout is not None:
            follower.stdout.close()
    assert rest.strip() == "finished"

    stopped = controller.sandboxctl("wait", "--for=phase=Succeeded", "--timeout=60s", "talker")
    assert stopped.returncode == 0, stopped.stderr


def test_wait_times_out_with_message(controller: ControllerProcess, tmp_path: Path) -> None:
    path = tmp_path / "talker.yaml"
    path.write_text(MANIFEST)
    controller.sandboxctl("apply", "-f", str(path))

    result = controller.sandboxctl("wait", "--for=phase=Failed", "--timeout=1s", "talker")

    assert result.returncode == 1
    assert "timed out after 1s waiting for phase Failed of instance/talker" in result.stderr
