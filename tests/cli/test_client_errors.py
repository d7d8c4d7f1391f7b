"""Client failures: no server, wrong token, server problems, token lookup."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import httpx
import pytest

from agentic_sandbox.cli.changes import run_apply
from agentic_sandbox.cli.client import ApiClient, ApiError
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl, instance_yaml, write


def unused_port() -> int:
    """A loopback port with nothing listening: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_server_names_url_and_serve(
    sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    monkeypatch.setenv("SANDBOXCTL_TOKEN", "whatever")

    result = sandboxctl("get", "instances", "--server", url)

    assert result.code == 1
    assert result.err.startswith(f"error: cannot connect to the server at {url}")
    assert "sandboxctl serve" in result.err


def test_invalid_server_url(sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOXCTL_TOKEN", "whatever")

    result = sandboxctl("get", "instances", "--server", "127.0.0.1:8122")

    assert result.code == 1
    assert "server URL '127.0.0.1:8122' is invalid" in result.err


def test_wrong_token_rejected_not_printed(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("get", "instances", "--token", "wrong-secret-value")

    assert result.code == 1
    assert "error: the bearer token is not valid" in result.err
    assert "--token" in result.err
    assert "wrong-secret-value" not in result.err + result.out


def test_token_from_env_wins_over_file(
    client_env: ApiServer, sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOXCTL_TOKEN", "env-secret-value")

    result = sandboxctl("get", "instances")

    assert result.code == 1
    assert "SANDBOXCTL_TOKEN" in result.err
    assert "env-secret-value" not in result.err


def test_token_file_missing_hint(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    empty_state = tmp_path / "elsewhere"

    result = sandboxctl("get", "instances", "--state-dir", str(empty_state))

    assert result.code == 1
    assert f"{empty_state / 'api-token'} does not exist" in result.err


def test_token_read_from_state_dir(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("get", "instances")

    assert result.code == 0, result.err
    assert client_env.token not in result.out + result.err


def test_field_errors_printed(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("get", "instances", "-l", "app!=web")

    assert result.code == 1
    assert result.err.splitlines()[0].startswith("error: query parameter labelSelector=")
    assert result.err.splitlines()[1].startswith("  labelSelector: ")


def test_apply_prints_server_field_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = {
        "type": "https://sandbox.agentic.dev/problems/invalid",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "spec.image: image 'x y' is not an image reference",
        "errors": [
            {
                "field": "spec.image",
                "message": "is not an image reference",
                "value": "x y",
                "line": None,
            }
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422, json=problem, headers={"Content-Type": "application/problem+json"}
        )

    path = write(tmp_path / "m" / "web.yaml", instance_yaml("web"))
    write(tmp_path / "m" / "api.yaml", instance_yaml("api"))
    client = ApiClient("http://server.invalid", "t", transport=httpx.MockTransport(handler))

    code = run_apply(argparse.Namespace(filename=[str(path.parent)]), client)

    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: instance/api: spec.image: image 'x y' is not an image reference",
        "  spec.image: is not an image reference",
        "error: instance/web: spec.image: image 'x y' is not an image reference",
        "  spec.image: is not an image reference",
    ]


def test_problem_not_json_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    client = ApiClient("http://proxy.invalid", "t", transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError) as raised:
        client.get_instance("default", "web")

    assert raised.value.status == 502
    assert raised.value.message == "HTTP 502: <html>bad gateway</html>"
