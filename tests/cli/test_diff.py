"""sandboxctl diff and apply --dry-run against a real API server."""

from __future__ import annotations

from pathlib import Path

from agentic_sandbox.crds.instance import Instance
from tests.api.runtime_support import add_sandbox
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl, instance_yaml, write


def stored(server: ApiServer) -> Instance:
    assert server.store is not None
    found = server.call(server.store.get("Instance", "default", "web"))
    assert isinstance(found, Instance)
    return found


# diff


def test_diff_new_object_exits_1(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web"))

    result = sandboxctl("diff", "-f", str(path))

    assert result.code == 1, result.err
    lines = result.out.splitlines()
    assert lines[:2] == ["--- live/instance/web", "+++ desired/instance/web"]
    assert "+  image: agentic/demo:dev" in lines


def test_diff_same_exits_0(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web", env="A: one\n"))
    sandboxctl("apply", "-f", str(path))

    result = sandboxctl("diff", "-f", str(path))

    assert result.code == 0, result.out + result.err
    assert result.out == ""


def test_diff_changed_env_shows_lines(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web", env="A: one\n"))
    sandboxctl("apply", "-f", str(path))
    write(path, instance_yaml("web", env="A: two\n"))

    result = sandboxctl("diff", "-f", str(path))

    assert result.code == 1
    assert "-    A: one" in result.out.splitlines()
    assert "+    A: two" in result.out.splitlines()
    assert stored(client_env).spec.env == {"A": "one"}


def test_diff_invalid_manifest_exits_2(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web").replace("  image:", "  imag:"))

    result = sandboxctl("diff", "-f", str(path))

    assert result.code == 2
    assert "spec.imag" in result.err


def test_diff_unreachable_server_exits_2(sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web"))

    result = sandboxctl(
        "diff", "-f", str(path), "--server", "http://127.0.0.1:9", "--token", "unused"
    )

    assert result.code == 2
    assert "cannot connect" in result.err


# apply --dry-run


def test_apply_server_dry_run_changes_nothing(
    runtime_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web", env="A: one\n"))

    result = sandboxctl("apply", "--dry-run=server", "-f", str(path))

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "instance/web created (server dry run)",
        "  planned operations:",
        "    create: no sandbox exists",
        "    start: run strategy Always",
    ]
    assert "nothing was changed" in result.err
    assert runtime_env.store is not None
    assert runtime_env.call(runtime_env.store.list("Instance")).items == []


def test_apply_server_dry_run_shows_diff_and_plan(
    runtime_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web"))
    sandboxctl("apply", "-f", str(path))
    assert runtime_env.runtime is not None
    sandbox = runtime_env.call(add_sandbox(runtime_env.runtime, stored(runtime_env)))
    write(path, instance_yaml("web", image="agentic/demo:v2"))

    result = sandboxctl("apply", "--dry-run=server", "-f", str(path))

    lines = result.out.splitlines()
    assert lines[0] == "instance/web configured (server dry run)"
    assert "  -  image: agentic/demo:dev" in lines
    assert "  +  image: agentic/demo:v2" in lines
    assert any(line.startswith(f"    remove {sandbox.id[:12]}: spec changed") for line in lines)
    assert stored(runtime_env).spec.image == "agentic/demo:dev"


def test_apply_client_dry_run_sends_nothing(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web"))

    result = sandboxctl("apply", "--dry-run=client", "-f", str(path))

    assert result.out == "instance/web valid (client dry run)\n"
    assert client_env.store is not None
    assert client_env.call(client_env.store.list("Instance")).items == []
