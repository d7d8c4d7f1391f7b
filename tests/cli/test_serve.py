"""sandboxctl serve: settings from the environment overlaid with options, and help text."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_sandbox.cli.main import run_cli
from agentic_sandbox.controller.config import Settings
from tests.cli.support import Sandboxctl

SERVE_VARIABLES = [
    "AGENTIC_SANDBOX_STATE_DIR",
    "AGENTIC_SANDBOX_MANIFESTS",
    "AGENTIC_SANDBOX_HOST",
    "AGENTIC_SANDBOX_PORT",
    "AGENTIC_SANDBOX_GRPC_PORT",
    "DOCKER_HOST",
    "AGENTIC_SANDBOX_LOG_LEVEL",
    "AGENTIC_SANDBOX_CONTROLLER_ID",
    "AGENTIC_SANDBOX_ALLOWED_MOUNT_ROOTS",
    "AGENTIC_SANDBOX_WORKERS",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SERVE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class Recorder:
    """A stand-in for the composition root's serve function."""

    def __init__(self, exit_code: int = 0) -> None:
        self.exit_code = exit_code
        self.settings: list[Settings] = []

    def __call__(self, settings: Settings) -> int:
        self.settings.append(settings)
        return self.exit_code


def test_serve_defaults(clean_env: pytest.MonkeyPatch) -> None:
    recorder = Recorder()

    code = run_cli(["serve"], serve=recorder)

    assert code == 0
    (settings,) = recorder.settings
    assert settings.port == 8122
    assert settings.grpc_port == 8120
    assert settings.state_dir == Path("/var/lib/agentic-sandbox")
    assert settings.manifests_dir is None


def test_serve_options_override_env(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("AGENTIC_SANDBOX_PORT", "9000")
    clean_env.setenv("AGENTIC_SANDBOX_GRPC_PORT", "9001")
    clean_env.setenv("AGENTIC_SANDBOX_WORKERS", "3")
    recorder = Recorder()

    run_cli(
        [
            "serve",
            "--state-dir", str(tmp_path / "state"),
            "--manifests", str(tmp_path / "manifests"),
            "--port", "9100",
            "--docker-host", "unix:///tmp/docker.sock",
            "--log-level", "DEBUG",
            "--controller-id", "ctl-test",
            "--allowed-mount-root", "/srv/a",
            "--allowed-mount-root", "/srv/b",
        ],
        serve=recorder,
    )  # fmt: skip

    (settings,) = recorder.settings
    assert settings.state_dir == tmp_path / "state"
    assert settings.manifests_dir == tmp_path / "manifests"
    assert settings.port == 9100
    assert settings.grpc_port == 9001
    assert settings.workers == 3
    assert settings.docker_host == "unix:///tmp/docker.sock"
    assert settings.log_level == "debug"
    assert settings.controller_id == "ctl-test"
    assert settings.allowed_mount_roots == [Path("/srv/a"), Path("/srv/b")]


def test_serve_reads_env(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("AGENTIC_SANDBOX_STATE_DIR", str(tmp_path))
    clean_env.setenv("AGENTIC_SANDBOX_MANIFESTS", str(tmp_path / "m"))
    clean_env.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    clean_env.setenv("AGENTIC_SANDBOX_ALLOWED_MOUNT_ROOTS", "/srv/x:/srv/y")
    recorder = Recorder()

    run_cli(["serve"], serve=recorder)

    (settings,) = recorder.settings
    assert settings.state_dir == tmp_path
    assert settings.manifests_dir == tmp_path / "m"
    assert settings.docker_host == "tcp://127.0.0.1:2375"
    assert settings.allowed_mount_roots == [Path("/srv/x"), Path("/srv/y")]


def test_serve_returns_exit_code(clean_env: pytest.MonkeyPatch) -> None:
    assert run_cli(["serve"], serve=Recorder(exit_code=3)) == 3


def test_serve_invalid_env(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("AGENTIC_SANDBOX_PORT", "eighty")
    recorder = Recorder()

    code = run_cli(["serve"], serve=recorder)

    assert code == 1
    assert recorder.settings == []
    assert "error: invalid environment: AGENTIC_SANDBOX_PORT='eighty'" in capsys.readouterr().err


def test_serve_invalid_log_level_env(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("AGENTIC_SANDBOX_LOG_LEVEL", "chatty")
    recorder = Recorder()

    code = run_cli(["serve"], serve=recorder)

    assert code == 1
    assert recorder.settings == []
    assert "AGENTIC_SANDBOX_LOG_LEVEL='chatty' is invalid" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["serve", "--port", "70000"], ["serve", "--workers", "0"], ["serve", "--log-level", "x"]],
)
def test_serve_invalid_option(clean_env: pytest.MonkeyPatch, argv: list[str]) -> None:
    recorder = Recorder()

    assert run_cli(argv, serve=recorder) == 2
    assert recorder.settings == []


def test_serve_without_function(clean_env: pytest.MonkeyPatch, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("serve")

    assert result.code == 1
    assert "not available" in result.err


def test_serve_help_names_variables(sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("serve", "--help")

    assert result.code == 0
    text = " ".join(result.out.split())
    for name in SERVE_VARIABLES:
        assert f"env {name}" in text, name
    assert "default 8122" in text
    assert "default 8120" in text
    assert "default /var/lib/agentic-sandbox" in text


@pytest.mark.parametrize("command", ["get", "apply", "describe", "delete"])
def test_client_help_names_variables(sandboxctl: Sandboxctl, command: str) -> None:
    result = sandboxctl(command, "--help")

    assert result.code == 0
    text = " ".join(result.out.split())
    assert "env SANDBOXCTL_SERVER" in text
    assert "default http://127.0.0.1:8122" in text
    assert "env SANDBOXCTL_TOKEN" in text
    assert "env AGENTIC_SANDBOX_STATE_DIR" in text


def test_top_help_lists_commands(sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("--help")

    for command in ("serve", "apply", "get", "describe", "delete"):
        assert command in result.out


def test_no_command_is_usage_error(sandboxctl: Sandboxctl) -> None:
    result = sandboxctl()

    assert result.code == 2
    assert "usage:" in result.err
