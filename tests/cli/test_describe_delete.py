"""sandboxctl describe and delete against a real API server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agentic_sandbox.cli.describe import describe_text
from agentic_sandbox.crds.event import Event
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl, instance_yaml, write
from tests.cli.test_get import CONTAINER_ID, apply, mark_running


def stored_names(server: ApiServer) -> list[str]:
    assert server.store is not None
    listing = server.call(server.store.list("Instance"))
    return [item.metadata.name for item in listing.items]


# Describe


def test_describe_sections(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    text = instance_yaml("web", env="GREETING: hello\n")
    text += "  mounts:\n    - /srv/agentshare/web:/data:ro\n"
    apply(sandboxctl, tmp_path, text)
    mark_running(client_env, "default", "web")
    assert client_env.store is not None
    client_env.call(
        client_env.store.events.append(
            Event(
                name="container.started",
                instance="default/web",
                reason="Started",
                message="started container",
            )
        )
    )

    result = sandboxctl("describe", "instance", "web")

    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("Name:")
    for expected in (
        "Namespace:",
        "Labels:",
        "app=web",
        "sandbox.agentic.dev/source=api",
        "Spec:",
        "Image:",
        "agentic/demo:dev",
        "GREETING=hello",
        "/srv/agentshare/web -> /data (ro)",
        "Status:",
        "Running",
        CONTAINER_ID,
        "Restart Count:",
        "Conditions:",
        "Events:",
    ):
        assert expected in out, expected
    conditions = out.split("Conditions:\n", 1)[1].splitlines()
    assert conditions[0].split() == ["TYPE", "STATUS", "REASON", "MESSAGE", "AGE"]
    assert conditions[1].split()[:3] == ["Ready", "True", "Running"]
    events = out.split("Events:\n", 1)[1].splitlines()
    assert events[0].split() == ["AGE", "TYPE", "EVENT", "REASON", "MESSAGE"]
    assert events[1].split()[1:4] == ["Normal", "container.started", "Started"]


def test_describe_without_status(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web"))

    result = sandboxctl("describe", "inst", "web")

    assert "Conditions:  <none>" in result.out
    assert "Events:  <none>" in result.out
    assert "Pending" in result.out


def test_describe_missing(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("describe", "instance", "ghost", "-n", "team-a")

    assert result.code == 1
    assert "team-a/ghost not found" in result.err


# Delete


def test_delete_by_names(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(
        sandboxctl,
        tmp_path,
        instance_yaml("a") + "---\n" + instance_yaml("b") + "---\n" + instance_yaml("c"),
    )

    result = sandboxctl("delete", "instance", "a", "b")

    assert result.code == 0, result.err
    assert result.out.splitlines() == ["instance/a deleted", "instance/b deleted"]
    assert stored_names(client_env) == ["c"]


def test_delete_missing_continues(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("a"))

    result = sandboxctl("delete", "instance", "ghost", "a")

    assert result.code == 1
    assert result.err == "error: instance/ghost: not found in namespace default\n"
    assert result.out == "instance/a deleted\n"
    assert stored_names(client_env) == []


def test_delete_by_file(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    path = write(tmp_path / "m" / "two.yaml", instance_yaml("a") + "---\n" + instance_yaml("b"))
    sandboxctl("apply", "-f", str(path))
    apply(sandboxctl, tmp_path, instance_yaml("keep"), name="keep.yaml")

    result = sandboxctl("delete", "-f", str(path.parent))

    assert result.out.splitlines() == ["instance/a deleted", "instance/b deleted"]
    assert stored_names(client_env) == ["keep"]


def test_delete_with_finalizer(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web"))
    assert client_env.store is not None
    stored = client_env.call(client_env.store.get("Instance", "default", "web"))
    stored.metadata.finalizers = [RUNTIME_FINALIZER]
    client_env.call(client_env.store.update(stored))

    result = sandboxctl("delete", "instance", "web")
    listed = sandboxctl("get", "instances")

    assert result.out == "instance/web deleted\n"
    assert lines_phase(listed.out) == "Terminating"


def lines_phase(table: str) -> str:
    return table.splitlines()[1].split()[2]


def test_delete_needs_target(sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("delete", "instance")

    assert result.code == 1
    assert "nothing to delete" in result.err


def test_delete_names_and_file_conflict(sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", instance_yaml("a"))

    result = sandboxctl("delete", "instance", "a", "-f", str(path))

    assert result.code == 1
    assert "not both" in result.err


def test_describe_shows_vm_details() -> None:
    item = {
        "metadata": {"name": "vm", "namespace": "default"},
        "spec": {"runtime": "libvirt", "loadout": "tiny"},
        "status": {
            "phase": "Running",
            "runtimeRef": {
                "runtime": "libvirt",
                "id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                "name": "vm",
                "details": {
                    "domain": "vm",
                    "accelerator": "tcg",
                    "serialLog": "/var/lib/agentic-sandbox/vms/vm/serial.log",
                },
            },
        },
    }
    text = describe_text(item, [], now=datetime.now(UTC))
    assert "Accelerator:" in text
    assert "tcg" in text
    assert "Serial Log:" in text
    assert "/var/lib/agentic-sandbox/vms/vm/serial.log" in text
    assert "Domain:" in text
