"""Settings of a controller process, read from command-line options and environment variables.

Every option has an environment variable, so a service manager or a container can configure the
controller without a command line. Command-line values win over the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/agentic-sandbox")
DEFAULT_HTTP_PORT = 8122
DEFAULT_GRPC_PORT = 8120
DEFAULT_LIBVIRT_URI = "qemu:///system"
# Outside the state directory, because QEMU runs as its own user and must reach these files.
DEFAULT_VM_DIR = Path("/var/lib/agentic-sandbox/vms")
# Values of the libvirt URI setting that turn the libvirt runtime off.
LIBVIRT_OFF = frozenset({"", "none", "off"})
# The example loadouts of a source checkout; a package installed elsewhere has none there.
DEFAULT_LOADOUT_DIR = Path(__file__).resolve().parents[2] / "images" / "vm" / "loadouts"


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is invalid; expected true or false")


def _env_number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} is below the minimum of {minimum:g}")
    return value


@dataclass
class Settings:
    """Everything ``sandboxctl serve`` needs. See ``from_env`` for the variable of each field."""

    state_dir: Path = DEFAULT_STATE_DIR
    manifests_dir: Path | None = None
    # Directory of loadout files, read besides the store's Loadout resources.
    loadout_dir: Path = DEFAULT_LOADOUT_DIR
    # libvirt connection of the VM runtime; None runs Docker instances only.
    libvirt_uri: str | None = DEFAULT_LIBVIRT_URI
    vm_dir: Path = DEFAULT_VM_DIR
    host: str = "127.0.0.1"
    port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    docker_host: str | None = None
    # An operator-provided file with the API token. Required to bind the API to a non-loopback
    # address; without it the token is generated into the state directory.
    token_file: Path | None = None
    log_level: str = "info"
    controller_id: str | None = None
    node_name: str = field(default_factory=lambda: os.uname().nodename)
    # Host paths a mount may use. Empty means the defaults under the state directory.
    allowed_mount_roots: list[Path] = field(default_factory=list)
    allow_docker_socket: bool = False
    workers: int = 16
    # Seconds between full relists. A safety net only: changes arrive through watches and events.
    resync_interval: float = 300.0
    runtime_call_timeout: float = 30.0
    # Incumbent-compatible garbage collector settings.
    docker_monitor_enabled: bool = True
    docker_poll_interval: float = 30.0
    docker_orphaned_age: float = 3600.0
    # Garbage collector: the minimum age of an owned container or workspace before removal, the
    # name prefix that opts containers with only the agentic-sandbox=true marker in ("" turns
    # that off), and the wait before the first sweep (None: one poll interval, at least 30 s).
    gc_creation_grace: float = 60.0
    docker_orphan_name_prefix: str = "task-"
    gc_startup_delay: float | None = None
    # Address sandboxes dial for the agent gRPC server; None means host.docker.internal:grpc_port.
    management_server: str | None = None
    # Addresses the agent gRPC server listens on (with grpc_port). Empty means loopback plus
    # the Docker bridge gateway, the address host.docker.internal resolves to in containers.
    agent_hosts: list[str] = field(default_factory=list)
    # Seconds between an agent's heartbeats; an agent is stale after three missed ones.
    agent_heartbeat_interval: float = 10.0

    @property
    def agent_server_address(self) -> str:
        return self.management_server or f"host.docker.internal:{self.grpc_port}"

    @property
    def agent_socket_dir(self) -> Path:
        """Directory of the agent server's Unix socket, mounted into sandboxes without a network."""
        return self.state_dir / "agent"

    @property
    def database_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def token_path(self) -> Path:
        return self.state_dir / "api-token"

    @property
    def workspace_root(self) -> Path:
        return self.state_dir / "workspaces"

    @property
    def mount_roots(self) -> list[Path]:
        if self.allowed_mount_roots:
            return self.allowed_mount_roots
        return [self.workspace_root, Path("/srv/agentshare")]

    def set_libvirt_uri(self, value: str) -> None:
        """Set the libvirt URI; ``none``, ``off`` or an empty value turns libvirt off."""
        value = value.strip()
        self.libvirt_uri = None if value.lower() in LIBVIRT_OFF else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from environment variables; unset variables keep their defaults."""
        env = os.environ if env is None else env
        settings = cls()
        if env.get("AGENTIC_SANDBOX_STATE_DIR"):
            settings.state_dir = Path(env["AGENTIC_SANDBOX_STATE_DIR"])
        if env.get("AGENTIC_SANDBOX_MANIFESTS"):
            settings.manifests_dir = Path(env["AGENTIC_SANDBOX_MANIFESTS"])
        if env.get("AGENTIC_SANDBOX_LOADOUT_DIR"):
            settings.loadout_dir = Path(env["AGENTIC_SANDBOX_LOADOUT_DIR"])
        if "AGENTIC_SANDBOX_LIBVIRT_URI" in env:
            settings.set_libvirt_uri(env["AGENTIC_SANDBOX_LIBVIRT_URI"])
        if env.get("AGENTIC_SANDBOX_VM_DIR"):
            settings.vm_dir = Path(env["AGENTIC_SANDBOX_VM_DIR"])
        settings.host = env.get("AGENTIC_SANDBOX_HOST") or settings.host
        settings.port = int(_env_number(env, "AGENTIC_SANDBOX_PORT", settings.port, 0))
        settings.grpc_port = int(
            _env_number(env, "AGENTIC_SANDBOX_GRPC_PORT", settings.grpc_port, 0)
        )
        settings.docker_host = env.get("DOCKER_HOST") or None
        if env.get("AGENTIC_SANDBOX_TOKEN_FILE"):
            settings.token_file = Path(env["AGENTIC_SANDBOX_TOKEN_FILE"])
        settings.log_level = env.get("AGENTIC_SANDBOX_LOG_LEVEL") or settings.log_level
        settings.controller_id = env.get("AGENTIC_SANDBOX_CONTROLLER_ID") or None
        settings.node_name = env.get("AGENTIC_SANDBOX_NODE_NAME") or settings.node_name
        roots = env.get("AGENTIC_SANDBOX_ALLOWED_MOUNT_ROOTS", "")
        settings.allowed_mount_roots = [Path(part) for part in roots.split(":") if part]
        settings.allow_docker_socket = _env_bool(env, "AGENTIC_SANDBOX_ALLOW_DOCKER_SOCKET", False)
        settings.workers = int(_env_number(env, "AGENTIC_SANDBOX_WORKERS", settings.workers, 1))
        settings.resync_interval = _env_number(
            env, "AGENTIC_SANDBOX_RESYNC_SECS", settings.resync_interval, 1
        )
        settings.docker_monitor_enabled = _env_bool(env, "DOCKER_MONITOR_ENABLED", True)
        settings.docker_poll_interval = _env_number(env, "DOCKER_POLL_INTERVAL_SECS", 30.0, 1)
        settings.docker_orphaned_age = _env_number(env, "DOCKER_ORPHANED_AGE_SECS", 3600.0, 0)
        settings.gc_creation_grace = _env_number(env, "AGENTIC_SANDBOX_GC_GRACE_SECS", 60.0, 0)
        # Set but empty is meaningful here: it turns the name-prefix opt-in off.
        settings.docker_orphan_name_prefix = env.get("DOCKER_ORPHAN_NAME_PREFIX", "task-").strip()
        if env.get("AGENTIC_SANDBOX_GC_STARTUP_DELAY_SECS"):
            settings.gc_startup_delay = _env_number(
                env, "AGENTIC_SANDBOX_GC_STARTUP_DELAY_SECS", 0.0, 0
            )
        settings.management_server = env.get("AGENTIC_CONTAINER_GRPC_SERVER") or None
        hosts = env.get("AGENTIC_SANDBOX_AGENT_HOSTS", "")
        settings.agent_hosts = [part.strip() for part in hosts.split(",") if part.strip()]
        settings.agent_heartbeat_interval = _env_number(
            env, "AGENTIC_SANDBOX_AGENT_HEARTBEAT_SECS", settings.agent_heartbeat_interval, 1
        )
        return settings
