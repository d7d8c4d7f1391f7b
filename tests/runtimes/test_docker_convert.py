"""The pure mappings between runtime models and Docker Engine API data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentic_sandbox.errors import InvalidRuntimeSpec
from agentic_sandbox.runtimes.base import MountSpec, SandboxSpec, SandboxStatus
from agentic_sandbox.runtimes.docker_convert import (
    event_from_message,
    host_config_options,
    is_spec_start_failure,
    label_filters,
    missing_bind_source,
    parse_docker_time,
    reject_socket_mounts,
    socket_paths,
    state_from_inspect,
    tini_exec_failure,
)


def spec_with(**fields: Any) -> SandboxSpec:
    return SandboxSpec(name="web", image="busybox", labels={}, **fields)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-12-04T20:11:26.214851421Z",
            datetime(2026, 12, 4, 20, 11, 26, 214851, tzinfo=UTC),
        ),
        ("2026-12-04T20:11:26Z", datetime(2026, 12, 4, 20, 11, 26, tzinfo=UTC)),
        ("2026-12-04T21:11:26.5+01:00", datetime(2026, 12, 4, 20, 11, 26, 500000, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_docker_time(text: str | None, expected: datetime | None) -> None:
    assert parse_docker_time(text) == expected


def inspect_data(**state: Any) -> dict[str, Any]:
    return {
        "Id": "abc123",
        "Name": "/web",
        "Created": "2026-12-04T20:00:00.1Z",
        "Config": {"Image": "busybox:1", "Labels": {"a": "b"}},
        "State": {
            "Status": "running",
            "ExitCode": 0,
            "OOMKilled": False,
            "Error": "",
            "StartedAt": "2026-12-04T20:00:01Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
            **state,
        },
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.5"}}},
    }


def test_state_from_inspect_running() -> None:
    state = state_from_inspect(inspect_data())

    assert state.id == "abc123"
    assert state.name == "web"
    assert state.status is SandboxStatus.RUNNING
    assert state.labels == {"a": "b"}
    assert state.image == "busybox:1"
    assert state.ip == "172.17.0.5"
    assert state.created_at == datetime(2026, 12, 4, 20, 0, 0, 100000, tzinfo=UTC)
    assert state.started_at == datetime(2026, 12, 4, 20, 0, 1, tzinfo=UTC)
    assert state.finished_at is None
    assert state.exit_code is None


def test_state_from_inspect_exited() -> None:
    data = inspect_data(
        Status="exited", ExitCode=137, OOMKilled=True, FinishedAt="2026-12-04T20:00:02Z"
    )
    data["NetworkSettings"] = {"Networks": {"none": {"IPAddress": ""}}}

    state = state_from_inspect(data)

    assert state.status is SandboxStatus.EXITED
    assert state.exit_code == 137
    assert state.oom_killed is True
    assert state.finished_at == datetime(2026, 12, 4, 20, 0, 2, tzinfo=UTC)
    assert state.ip is None


def test_state_from_inspect_unknown_status() -> None:
    data = inspect_data(Status="hibernating")
    data["Config"]["Labels"] = None

    state = state_from_inspect(data)

    assert state.status is SandboxStatus.DEAD
    assert state.labels == {}


def test_event_from_message() -> None:
    message = {
        "Type": "container",
        "Action": "exec_start: sh -c true",
        "Actor": {
            "ID": "abc123",
            "Attributes": {"name": "web", "image": "busybox", "exitCode": "0", "team": "x"},
        },
        "time": 1700000000,
        "timeNano": 1700000000500000000,
    }

    event = event_from_message(message)

    assert event is not None
    assert event.action == "exec_start"
    assert event.sandbox_id == "abc123"
    assert event.labels == {"team": "x"}
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)


def test_event_from_message_skips_other_types() -> None:
    assert (
        event_from_message({"Type": "network", "Action": "connect", "Actor": {"ID": "n"}}) is None
    )
    assert event_from_message({"Type": "container", "Actor": {}}) is None


def test_host_config_options() -> None:
    spec = spec_with(
        cpus=0.5,
        memory_bytes=1 << 28,
        pids=64,
        network="none",
        mounts=[MountSpec("/srv/a", "/a", read_only=True), MountSpec("/srv/b", "/b")],
    )

    options = host_config_options(spec)

    assert options["nano_cpus"] == 500_000_000
    assert options["mem_limit"] == 1 << 28
    assert options["memswap_limit"] == 1 << 28
    assert options["pids_limit"] == 64
    assert options["network_mode"] == "none"
    assert options["init"] is True
    assert options["privileged"] is False
    assert [(m["Source"], m["Target"], m["Type"], m["ReadOnly"]) for m in options["mounts"]] == [
        ("/srv/a", "/a", "bind", True),
        ("/srv/b", "/b", "bind", False),
    ]


def test_label_filters() -> None:
    assert label_filters({"b": "2", "a": "1"}) == ["a=1", "b=2"]


@pytest.mark.parametrize("host_path", ["/var/run/docker.sock", "/run/docker.sock", "/run", "/"])
def test_reject_socket_mounts_blocks(host_path: str) -> None:
    spec = spec_with(mounts=[MountSpec(host_path, "/x")])

    with pytest.raises(InvalidRuntimeSpec, match="Docker socket"):
        reject_socket_mounts(spec, socket_paths(None))


@pytest.mark.parametrize("host_path", ["/var", "/srv/work", "/runner"])
def test_reject_socket_mounts_allows(host_path: str) -> None:
    reject_socket_mounts(spec_with(mounts=[MountSpec(host_path, "/x")]), socket_paths(None))


def test_socket_paths_include_custom_socket() -> None:
    spec = spec_with(mounts=[MountSpec("/srv/docker", "/x")])

    with pytest.raises(InvalidRuntimeSpec):
        reject_socket_mounts(spec, socket_paths("unix:///srv/docker/engine.sock"))


def test_missing_bind_source() -> None:
    spec = spec_with(mounts=[MountSpec("/srv/absent/", "/x")])
    message = 'invalid mount config for type "bind": bind source path does not exist: /srv/absent'

    error = missing_bind_source(spec, message)

    assert error is not None
    assert "'/srv/absent/'" in str(error)
    assert missing_bind_source(spec, "some other complaint") is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            'OCI runtime create failed: exec: "nope": executable file not found in $PATH',
            True,
        ),
        ("OCI runtime create failed: mount /a:/b: not a directory: unknown", True),
        ("OCI runtime create failed: cgroup write: device or resource busy", False),
        ("Cannot connect to the Docker daemon", False),
    ],
)
def test_is_spec_start_failure(message: str, expected: bool) -> None:
    assert is_spec_start_failure(message) is expected


def test_tini_exec_failure() -> None:
    log = "some output\n[FATAL tini (7)] exec /app/run failed: Permission denied\n"

    assert tini_exec_failure(log) == ("command '/app/run' could not be executed: Permission denied")
    assert tini_exec_failure("exit 127 from a shell script\n") is None
