"""sandboxctl get: tables, wide columns, names, YAML and JSON, against a real API server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from agentic_sandbox.crds.event import Event, EventSeverity
from agentic_sandbox.crds.instance import Instance, Phase, RuntimeRef
from agentic_sandbox.crds.manifest import load_manifests
from agentic_sandbox.crds.meta import Condition
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl, instance_yaml, write

CONTAINER_ID = "0123456789abcdef0123456789abcdef"


def apply(sandboxctl: Sandboxctl, tmp_path: Path, text: str, name: str = "m.yaml") -> None:
    result = sandboxctl("apply", "-f", str(write(tmp_path / name, text)))
    assert result.code == 0, result.err


def mark_running(server: ApiServer, namespace: str, name: str) -> None:
    """Write the status a controller would write for a running container."""
    assert server.store is not None
    stored = server.call(server.store.get("Instance", namespace, name))
    assert isinstance(stored, Instance)
    stored.status.phase = Phase.RUNNING
    stored.status.restart_count = 2
    stored.status.node = "node-1"
    stored.status.ip = "172.17.0.5"
    stored.status.runtime_ref = RuntimeRef(runtime="docker", id=CONTAINER_ID, name=f"as-{name}")
    stored.status.conditions = [
        Condition(
            type="Ready",
            status="True",
            reason="Running",
            message="container is running",
            last_transition_time=datetime.now(UTC),
            observed_generation=1,
        )
    ]
    server.call(server.store.update_status(stored))


def lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_get_table(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web") + "---\n" + instance_yaml("api"))
    mark_running(client_env, "default", "web")

    result = sandboxctl("get", "instances")

    assert result.code == 0, result.err
    rows = lines(result.out)
    assert rows[0] == ["NAME", "RUNTIME", "PHASE", "READY", "IMAGE", "RESTARTS", "AGE"]
    assert rows[1][:6] == ["api", "docker", "Pending", "Unknown", "agentic/demo:dev", "0"]
    assert rows[2][:6] == ["web", "docker", "Running", "True", "agentic/demo:dev", "2"]
    assert rows[2][6].endswith("s")


def test_get_columns_aligned(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("a") + "---\n" + instance_yaml("longer-name"))

    result = sandboxctl("get", "inst")

    header, *rows = result.out.splitlines()
    column = header.index("RUNTIME")
    assert column == len("longer-name") + 3
    assert all(row[column:].startswith("docker") for row in rows)
    assert all(line == line.rstrip() for line in result.out.splitlines())


def test_get_wide(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web"))
    mark_running(client_env, "default", "web")

    result = sandboxctl("get", "instances", "-o", "wide")

    header, row = lines(result.out)
    assert header[-4:] == ["NODE", "IP", "CONTAINER", "SOURCE"]
    assert row[-4:] == ["node-1", "172.17.0.5", CONTAINER_ID[:12], "api"]


def test_get_wide_unset_is_none(
    client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path
) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web"))

    result = sandboxctl("get", "instances", "-o", "wide")

    assert lines(result.out)[1][-4:] == ["<none>", "<none>", "<none>", "api"]


def test_get_all_namespaces(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    team = instance_yaml("api").replace("  name: api\n", "  name: api\n  namespace: team-a\n")
    apply(sandboxctl, tmp_path, instance_yaml("web") + "---\n" + team)

    default_only = sandboxctl("get", "instances")
    everything = sandboxctl("get", "instances", "-A")
    team_only = sandboxctl("get", "instances", "-n", "team-a")

    assert [row[0] for row in lines(default_only.out)[1:]] == ["web"]
    assert lines(everything.out)[0][:2] == ["NAMESPACE", "NAME"]
    assert [row[:2] for row in lines(everything.out)[1:]] == [["default", "web"], ["team-a", "api"]]
    assert [row[0] for row in lines(team_only.out)[1:]] == ["api"]


def test_get_selector(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web") + "---\n" + instance_yaml("api"))

    result = sandboxctl("get", "instances", "-l", "app=api", "-o", "name")

    assert result.out == "instance/api\n"


def test_get_phase(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web") + "---\n" + instance_yaml("api"))
    mark_running(client_env, "default", "web")

    result = sandboxctl("get", "instances", "--phase", "Running", "-o", "name")

    assert result.out == "instance/web\n"


def test_get_one_by_name(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web") + "---\n" + instance_yaml("api"))

    result = sandboxctl("get", "instance", "web")

    assert [row[0] for row in lines(result.out)] == ["NAME", "web"]


def test_get_missing_name(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("get", "instance", "ghost")

    assert result.code == 1
    assert result.err == "error: Instance default/ghost not found\n"


def test_get_empty(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("get", "instances")

    assert result.code == 0
    assert result.out == ""
    assert result.err == "No instances found in namespace default.\n"


def test_get_yaml_reapplies(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    env = "A: no\nB: 0755\nC: 1:30\nD: 'on'\n"
    apply(sandboxctl, tmp_path, instance_yaml("web", env=env))

    result = sandboxctl("get", "instance", "web", "-o", "yaml")

    assert "A: 'no'" in result.out
    (document,) = load_manifests(result.out, source="<get>")
    assert isinstance(document.resource, Instance)
    assert document.resource.spec.env == {"A": "no", "B": "0755", "C": "1:30", "D": "on"}
    reapplied = sandboxctl("apply", "-f", str(write(tmp_path / "out.yaml", result.out)))
    assert reapplied.out == "instance/web unchanged\n"


def test_get_json_list(client_env: ApiServer, sandboxctl: Sandboxctl, tmp_path: Path) -> None:
    apply(sandboxctl, tmp_path, instance_yaml("web"))

    result = sandboxctl("get", "instances", "-o", "json")

    document = json.loads(result.out)
    assert document["kind"] == "InstanceList"
    assert [item["metadata"]["name"] for item in document["items"]] == ["web"]


def test_get_events_table(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    assert client_env.store is not None
    events = client_env.store.events
    client_env.call(
        events.append(
            Event(
                name="container.created",
                instance="default/web",
                reason="Created",
                message="created container\nas-web",
            )
        )
    )
    client_env.call(
        events.append(
            Event(
                name="source.invalid",
                severity=EventSeverity.WARNING,
                reason="InvalidManifest",
                source="file:/srv/m/bad.yaml",
                message="line 3: spec.imag: unknown field",
            )
        )
    )

    everything = sandboxctl("get", "events")
    of_web = sandboxctl("get", "events", "--instance", "web")

    header, first, second = everything.out.splitlines()
    assert header.split() == ["AGE", "TYPE", "EVENT", "REASON", "OBJECT", "MESSAGE"]
    assert first.split()[1:5] == ["Normal", "container.created", "Created", "instance/default/web"]
    assert first.endswith("created container as-web")
    assert second.split()[1:5] == [
        "Warning",
        "source.invalid",
        "InvalidManifest",
        "file:/srv/m/bad.yaml",
    ]
    assert len(of_web.out.splitlines()) == 2


def test_get_events_empty(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("get", "events")

    assert result.code == 0
    assert result.err == "No events found.\n"
