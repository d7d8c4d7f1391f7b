"""sandboxctl apply against a real API server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agentic_sandbox.crds.instance import Instance
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl, instance_yaml, write


def stored_names(server: ApiServer) -> list[str]:
    assert server.store is not None
    listing = server.call(server.store.list("Instance"))
    return [item.metadata.name for item in listing.items]


def test_apply_file_created_then_unchanged(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web"))

    first = sandboxctl("apply", "-f", str(path))
    second = sandboxctl("apply", "-f", str(path))

    assert first.code == 0, first.err
    assert first.out == "instance/web created\n"
    assert second.out == "instance/web unchanged\n"


def test_apply_change_prints_configured(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web", env="A: one\n"))
    sandboxctl("apply", "-f", str(path))
    write(path, instance_yaml("web", env="A: two\n"))

    result = sandboxctl("apply", "-f", str(path))

    assert result.out == "instance/web configured\n"
    assert client_env.store is not None
    stored = client_env.call(client_env.store.get("Instance", "default", "web"))
    assert isinstance(stored, Instance)
    assert stored.spec.env == {"A": "two"}


def test_apply_keeps_yaml_strings(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "web.yaml", instance_yaml("web", env="A: no\nB: 0755\nC: 1:30\n"))

    sandboxctl("apply", "-f", str(path))

    assert client_env.store is not None
    stored = client_env.call(client_env.store.get("Instance", "default", "web"))
    assert isinstance(stored, Instance)
    assert stored.spec.env == {"A": "no", "B": "0755", "C": "1:30"}


def test_apply_directory_recursive(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    write(tmp_path / "m" / "a.yaml", instance_yaml("alpha"))
    write(tmp_path / "m" / "nested" / "b.yml", instance_yaml("beta"))
    manifest = {
        "apiVersion": "sandbox.agentic.dev/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": "gamma"},
        "spec": {"image": "agentic/demo:dev"},
    }
    write(tmp_path / "m" / "nested" / "c.json", json.dumps(manifest))
    write(tmp_path / "m" / "notes.txt", "not a manifest")
    write(tmp_path / "m" / ".web.yaml.swp", "garbage: [")
    write(tmp_path / "m" / "..data" / "d.yaml", instance_yaml("hidden"))

    result = sandboxctl("apply", "-f", str(tmp_path / "m"))

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "instance/alpha created",
        "instance/beta created",
        "instance/gamma created",
    ]
    assert stored_names(client_env) == ["alpha", "beta", "gamma"]


def test_apply_multi_document_file(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "two.yaml", instance_yaml("one") + "---\n" + instance_yaml("two"))

    result = sandboxctl("apply", "-f", str(path))

    assert result.out.splitlines() == ["instance/one created", "instance/two created"]


def test_apply_stdin(
    client_env: ApiServer, sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(instance_yaml("piped")))

    result = sandboxctl("apply", "-f", "-")

    assert result.out == "instance/piped created\n"


def test_apply_invalid_reports_file_line_field(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    good = write(tmp_path / "m" / "good.yaml", instance_yaml("good"))
    bad = write(tmp_path / "m" / "bad.yaml", instance_yaml("bad").replace("  image:", "  imag:"))

    result = sandboxctl("apply", "-f", str(good.parent))

    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: ")
    assert f"{bad}:8: spec.imag: unknown field" in result.err
    assert "nothing was sent" in result.err
    assert stored_names(client_env) == []


def test_apply_yaml_syntax_error_names_line(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "broken.yaml", instance_yaml("web") + "  command: [sh, -c\n")

    result = sandboxctl("apply", "-f", str(path))

    assert result.code == 1
    assert f"{path}:" in result.err


def test_apply_missing_file(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    result = sandboxctl("apply", "-f", str(tmp_path / "absent.yaml"))

    assert result.code == 1
    assert "absent.yaml: no such file or directory" in result.err


def test_apply_empty_directory(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()

    result = sandboxctl("apply", "-f", str(tmp_path / "empty"))

    assert result.code == 1
    assert "no objects found" in result.err


def test_apply_requires_filename(sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("apply")

    assert result.code == 2
    assert "-f" in result.err


def test_apply_directory_symlink_loop(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    write(tmp_path / "m" / "web.yaml", instance_yaml("web"))
    (tmp_path / "m" / "loop").symlink_to(tmp_path / "m")

    result = sandboxctl("apply", "-f", str(tmp_path / "m"))

    assert result.code == 0, result.err
    assert result.out == "instance/web created\n"
