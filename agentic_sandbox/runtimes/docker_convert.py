"""Conversions between the driver-neutral runtime models and Docker Engine API data.

Pure functions with no I/O, so the mapping is testable without a daemon: ``SandboxSpec`` to the
keywords of docker-py's ``create_container`` and ``create_host_config``, inspect and event JSON to
``SandboxState`` and ``RuntimeEvent``, and the daemon's error texts to the project's error types.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from docker.types import Mount

from agentic_sandbox.errors import InvalidRuntimeSpec
from agentic_sandbox.runtimes.base import (
    LABEL_MANAGED,
    RuntimeEvent,
    SandboxSpec,
    SandboxState,
    SandboxStatus,
)

# Network modes every Docker Engine has. Any other name must be an existing network.
BUILTIN_NETWORKS = frozenset({"bridge", "none", "host"})

# Default paths of the Docker socket on Linux. /var/run is a symlink to /run on most systems.
DEFAULT_SOCKET_PATHS = ("/var/run/docker.sock", "/run/docker.sock")

# Docker reports "never" as the zero time of Go.
_ZERO_TIME_PREFIX = "0001-01-01"

# Docker's event attributes that are not container labels.
_EVENT_ATTRIBUTES = frozenset({"name", "image", "exitCode", "signal", "execID", "execDuration"})

# Texts of an OCI runtime failure that mean the spec cannot work (the command or a mount target
# is wrong), as opposed to a transient daemon fault.
_SPEC_FAILURE_MARKERS = (
    "executable file not found",
    "no such file or directory",
    "permission denied",
    "not a directory",
    "are you trying to mount",
)

# docker-init (tini) prints this line and exits 127 or 126 when it cannot execute the command.
_TINI_EXEC_FAILURE = re.compile(
    r"\[FATAL tini \(\d+\)\] exec (?P<command>.+?) failed: (?P<reason>.+)"
)
TINI_EXEC_EXIT_CODES = frozenset({126, 127})


def container_labels(spec: SandboxSpec) -> dict[str, str]:
    """Return the spec's labels plus the managed marker that every object must carry."""
    return {**spec.labels, LABEL_MANAGED: "true"}


def label_filters(labels: Mapping[str, str]) -> list[str]:
    """Render labels as Docker ``label`` filter values, which the daemon combines with AND."""
    return [f"{key}={value}" for key, value in sorted(labels.items())]


def host_config_options(spec: SandboxSpec) -> dict[str, Any]:
    """Return the keywords of ``APIClient.create_host_config`` for ``spec``.

    Binds use the Mounts API, because the daemon rejects a missing source there, whereas the
    legacy ``-v`` form creates the missing host directory silently.
    """
    mounts = [
        Mount(target=m.path, source=m.host_path, type="bind", read_only=m.read_only)
        for m in spec.mounts
    ]
    return {
        "mounts": mounts,
        "network_mode": spec.network,
        "nano_cpus": round(spec.cpus * 1_000_000_000),
        "mem_limit": spec.memory_bytes,
        # Equal to the memory limit, so the sandbox gets no swap on top of it.
        "memswap_limit": spec.memory_bytes,
        "pids_limit": spec.pids,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        # docker-init (tini) as PID 1 reaps zombies and forwards signals to the command.
        "init": True,
        # The controller owns restarts, with backoff and crash-loop tracking.
        "restart_policy": {"Name": "no"},
        "extra_hosts": {"host.docker.internal": "host-gateway"},
        "privileged": False,
    }


def socket_paths(base_url: str | None) -> set[str]:
    """Return the resolved host paths of the Docker socket: the defaults plus a unix base URL."""
    paths = set(DEFAULT_SOCKET_PATHS)
    url = base_url if base_url is not None else os.environ.get("DOCKER_HOST", "")
    for prefix in ("unix://", "http+unix://"):
        if url.startswith(prefix):
            paths.add(url.removeprefix(prefix))
    return {os.path.realpath(path) for path in paths}


def reject_socket_mounts(spec: SandboxSpec, sockets: set[str]) -> None:
    """Raise InvalidRuntimeSpec when a bind would expose the Docker socket to the sandbox.

    A bind of the socket itself or of any directory that contains it (such as ``/run``) gives
    the sandbox root on the host, even when it lies inside the controller's allowed roots.
    """
    for mount in spec.mounts:
        source = os.path.realpath(mount.host_path)
        for sock in sockets:
            if sock == source or sock.startswith(source.rstrip("/") + "/"):
                raise InvalidRuntimeSpec(
                    f"mount of host path {mount.host_path!r} into sandbox {spec.name!r} would "
                    f"expose the Docker socket {sock}; mounting the socket is not allowed"
                )


def missing_bind_source(spec: SandboxSpec, explanation: str) -> InvalidRuntimeSpec | None:
    """Return the error for a create the daemon rejected because a bind source is missing."""
    if "bind source path does not exist" not in explanation:
        return None
    path = explanation.rsplit(":", 1)[-1].strip()
    for mount in spec.mounts:
        if mount.host_path.rstrip("/") == path.rstrip("/"):
            path = mount.host_path
            break
    return InvalidRuntimeSpec(
        f"host path {path!r} of a mount of sandbox {spec.name!r} does not exist; "
        "create it on the host first (it is never created automatically)"
    )


def is_spec_start_failure(explanation: str) -> bool:
    """Tell whether a failed start means the spec cannot run, not a transient daemon fault."""
    text = explanation.lower()
    return "oci runtime" in text and any(marker in text for marker in _SPEC_FAILURE_MARKERS)


def tini_exec_failure(log_text: str) -> str | None:
    """Return the reason docker-init printed when it could not execute the command, if any."""
    for line in reversed(log_text.splitlines()):
        match = _TINI_EXEC_FAILURE.search(line)
        if match is not None:
            return f"command {match['command']!r} could not be executed: {match['reason'].strip()}"
    return None


def parse_docker_time(value: str | None) -> datetime | None:
    """Parse Docker's RFC 3339 timestamp (nanoseconds are cut to microseconds). Zero means never."""
    if not value or value.startswith(_ZERO_TIME_PREFIX):
        return None
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value)
    if match is None:
        return None
    fraction = f".{match[2][:6]}" if match[2] else ""
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(match[1] + fraction + zone).astimezone(UTC)


def _status(value: object) -> SandboxStatus:
    try:
        return SandboxStatus(str(value))
    except ValueError:
        # The Engine API documents exactly the seven states of SandboxStatus; anything else is
        # a container the daemon cannot run.
        return SandboxStatus.DEAD


def _first_ip(networks: Mapping[str, Any] | None) -> str | None:
    for endpoint in (networks or {}).values():
        address = (endpoint or {}).get("IPAddress")
        if address:
            return str(address)
    return None


def state_from_summary(summary: Mapping[str, Any]) -> SandboxState:
    """Build a SandboxState from one entry of a container listing (no exit facts)."""
    names = summary.get("Names") or [""]
    created = summary.get("Created")
    return SandboxState(
        id=str(summary["Id"]),
        name=str(names[0]).lstrip("/"),
        labels=dict(summary.get("Labels") or {}),
        status=_status(str(summary.get("State", ""))),
        created_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None,
        image=str(summary.get("Image", "")),
    )


def state_from_inspect(data: Mapping[str, Any]) -> SandboxState:
    """Map the JSON of ``GET /containers/{id}/json`` to a SandboxState.

    ``exit_code`` is set only once the container has finished: Docker reports 0 for a container
    that is created or running, which would read as a clean exit.
    """
    state = data.get("State") or {}
    config = data.get("Config") or {}
    status = _status(state.get("Status"))
    finished = status in (SandboxStatus.EXITED, SandboxStatus.DEAD)
    return SandboxState(
        id=str(data["Id"]),
        name=str(data.get("Name", "")).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        status=status,
        created_at=parse_docker_time(data.get("Created")),
        started_at=parse_docker_time(state.get("StartedAt")),
        finished_at=parse_docker_time(state.get("FinishedAt")),
        exit_code=int(state.get("ExitCode", 0)) if finished else None,
        oom_killed=bool(state.get("OOMKilled", False)),
        error=str(state.get("Error") or ""),
        ip=_first_ip((data.get("NetworkSettings") or {}).get("Networks")),
        image=str(config.get("Image", "")),
    )


def event_from_message(message: Mapping[str, Any]) -> RuntimeEvent | None:
    """Map one message of ``GET /events`` to a RuntimeEvent; None for non-container messages.

    The action keeps only the word before a colon (``exec_start: sh`` becomes ``exec_start``).
    The labels are the actor's attributes without Docker's own keys (name, image, exitCode...).
    """
    if message.get("Type", "container") != "container":
        return None
    actor = message.get("Actor") or {}
    sandbox_id = actor.get("ID") or message.get("id")
    action = message.get("Action") or message.get("status")
    if not sandbox_id or not action:
        return None
    attributes = actor.get("Attributes") or {}
    labels = {k: str(v) for k, v in attributes.items() if k not in _EVENT_ATTRIBUTES}
    time: datetime | None = None
    if message.get("timeNano"):
        time = datetime.fromtimestamp(int(message["timeNano"]) / 1e9, tz=UTC)
    elif message.get("time"):
        time = datetime.fromtimestamp(int(message["time"]), tz=UTC)
    return RuntimeEvent(
        action=str(action).split(":", 1)[0].strip(),
        sandbox_id=str(sandbox_id),
        labels=labels,
        time=time,
    )
