"""scripts/lib.sh: starting the Docker Engine, tested with stand-in docker and dockerd programs.

The stand-ins live in a temporary directory put first on PATH. The fake ``docker version``
succeeds once a ready file exists, or after a given number of calls. The fake ``dockerd``
records that it ran, then creates the ready file, exits, or hangs, as FAKE_DOCKERD_MODE sets.
Every fake dockerd process is ended by its PID after the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LIB = REPO_ROOT / "scripts" / "lib.sh"

FAKE_DOCKER = """\
#!/usr/bin/env bash
[ "$1" = version ] || exit 2
count=$(( $(cat "$FAKE_DIR/docker-calls" 2>/dev/null || echo 0) + 1 ))
echo "$count" >"$FAKE_DIR/docker-calls"
[ -e "$FAKE_DIR/ready" ] && exit 0
[ -n "${FAKE_READY_AFTER:-}" ] && [ "$count" -ge "$FAKE_READY_AFTER" ] && exit 0
echo "Cannot connect to the Docker daemon" >&2
exit 1
"""

FAKE_DOCKERD = """\
#!/usr/bin/env bash
touch "$FAKE_DIR/dockerd-ran"
case "$FAKE_DOCKERD_MODE" in
    starts) touch "$FAKE_DIR/ready"; exec -a dockerd sleep 60 ;;
    dies) echo "failed to start daemon: invalid storage driver"; exit 1 ;;
    hangs) exec -a dockerd sleep 60 ;;
esac
"""


@dataclass
class Fakes:
    directory: Path
    env: dict[str, str]

    @property
    def pidfile(self) -> Path:
        return self.directory / "dockerd.pid"

    @property
    def log(self) -> Path:
        return self.directory / "dockerd.log"

    def ensure_dockerd(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", f"source {LIB} && ensure_dockerd"],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def _write_program(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))
    path.chmod(0o755)


def _end_fake_dockerd(pid: int) -> None:
    """Kill PID if it is still a fake dockerd; a PID reused by another process is left alone."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except FileNotFoundError:
        return
    if command == b"dockerd":
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[Fakes]:
    if os.geteuid() != 0:
        pytest.skip("ensure_dockerd starts dockerd only as root")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write_program(bin_dir / "docker", FAKE_DOCKER)
    _write_program(bin_dir / "dockerd", FAKE_DOCKERD)
    env = {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"}
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_DIR=str(tmp_path),
        AGENTIC_SANDBOX_DOCKERD_LOG=str(tmp_path / "dockerd.log"),
        AGENTIC_SANDBOX_DOCKERD_PIDFILE=str(tmp_path / "dockerd.pid"),
    )
    result = Fakes(directory=tmp_path, env=env)
    yield result
    if result.pidfile.exists():
        _end_fake_dockerd(int(result.pidfile.read_text()))


def test_ensure_dockerd_keeps_running_engine(fakes: Fakes) -> None:
    (fakes.directory / "ready").touch()

    result = fakes.ensure_dockerd()

    assert result.returncode == 0, result.stderr
    assert "Docker Engine is running" in result.stdout
    assert not (fakes.directory / "dockerd-ran").exists()


def test_ensure_dockerd_starts_engine(fakes: Fakes) -> None:
    result = fakes.ensure_dockerd(FAKE_DOCKERD_MODE="starts")

    assert result.returncode == 0, result.stderr
    assert "starting dockerd in the background" in result.stdout
    pid = int(fakes.pidfile.read_text())
    os.kill(pid, 0)
    assert f"Docker Engine is running (dockerd PID {pid})" in result.stdout


def test_ensure_dockerd_reports_early_exit(fakes: Fakes) -> None:
    result = fakes.ensure_dockerd(FAKE_DOCKERD_MODE="dies")

    assert result.returncode == 1
    assert "exited during start-up" in result.stderr
    assert "invalid storage driver" in result.stderr
    assert "invalid storage driver" in fakes.log.read_text()


def test_ensure_dockerd_times_out(fakes: Fakes) -> None:
    result = fakes.ensure_dockerd(FAKE_DOCKERD_MODE="hangs", AGENTIC_SANDBOX_DOCKERD_TIMEOUT="1")

    assert result.returncode == 1
    assert "did not respond within 1 s" in result.stderr


def test_ensure_dockerd_waits_for_starting_engine(fakes: Fakes) -> None:
    starting = subprocess.Popen(["bash", "-c", "exec -a dockerd sleep 60"])
    try:
        fakes.pidfile.write_text(f"{starting.pid}\n")

        result = fakes.ensure_dockerd(FAKE_READY_AFTER="3")

        assert result.returncode == 0, result.stderr
        assert f"dockerd (PID {starting.pid}) is starting; waiting for it" in result.stdout
        assert not (fakes.directory / "dockerd-ran").exists()
    finally:
        fakes.pidfile.unlink()
        starting.kill()
        starting.wait()


def test_ensure_dockerd_rejects_remote_host(fakes: Fakes) -> None:
    result = fakes.ensure_dockerd(DOCKER_HOST="tcp://127.0.0.1:1")

    assert result.returncode == 1
    assert "DOCKER_HOST=tcp://127.0.0.1:1 does not respond" in result.stderr
    assert not (fakes.directory / "dockerd-ran").exists()
