"""The Instance kind: one agent sandbox on a Docker or libvirt runtime."""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from agentic_sandbox.crds.meta import Condition, Model, Resource
from agentic_sandbox.crds.quantity import parse_cpus, parse_memory

KIND = "Instance"

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names the controller injects into every sandbox; a spec may not set them.
RESERVED_ENV = frozenset({"AGENT_ID", "AGENT_SECRET", "MANAGEMENT_SERVER"})
# Docker network names: the same characters Docker accepts for container names.
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

DEFAULT_CPUS = 1.0
DEFAULT_MEMORY = "1Gi"
DEFAULT_PIDS = 512
DEFAULT_STOP_GRACE_SECONDS = 10


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    TERMINATING = "Terminating"
    UNKNOWN = "Unknown"


class RunStrategy(StrEnum):
    ALWAYS = "Always"
    RERUN_ON_FAILURE = "RerunOnFailure"
    ONCE = "Once"
    MANUAL = "Manual"
    HALTED = "Halted"


class ConditionType(StrEnum):
    READY = "Ready"
    RUNTIME_READY = "RuntimeReady"
    AGENT_CONNECTED = "AgentConnected"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class Mount(Model):
    """A bind mount of a host directory or file into the sandbox.

    The short form ``"/host/path:/container/path[:ro|:rw]"`` is accepted wherever a mount is.
    """

    host_path: str
    path: str
    read_only: bool = False

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise ValueError(
                f"mount {value!r} is neither a mapping with hostPath and path nor a string "
                "'HOST_PATH:CONTAINER_PATH[:ro]'"
            )
        parts = value.split(":")
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            return {"hostPath": parts[0], "path": parts[1], "readOnly": parts[2] == "ro"}
        if len(parts) == 2:
            return {"hostPath": parts[0], "path": parts[1]}
        raise ValueError(
            f"mount {value!r} is not in the form 'HOST_PATH:CONTAINER_PATH' or "
            "'HOST_PATH:CONTAINER_PATH:ro'"
        )

    @field_validator("host_path", "path")
    @classmethod
    def _check_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} is not absolute; write it starting with '/'")
        if "\x00" in value:
            raise ValueError("path contains a NUL character")
        normalized = posixpath.normpath(value)
        # normpath keeps a leading '//' (POSIX allows it a special meaning); fold it to '/'.
        return "/" + normalized.lstrip("/")


class Resources(Model):
    """CPU, memory, disk and process limits. Every sandbox gets limits, even when unset."""

    cpus: float = DEFAULT_CPUS
    memory: str = DEFAULT_MEMORY
    disk: str | None = None
    pids: int = DEFAULT_PIDS

    @field_validator("cpus", mode="before")
    @classmethod
    def _check_cpus(cls, value: Any) -> float:
        return parse_cpus(value)

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _check_size(cls, value: Any) -> Any:
        if value is None:
            return value
        parse_memory(value)
        return str(value)

    @field_validator("pids")
    @classmethod
    def _check_pids(cls, value: int) -> int:
        if value < 16:
            raise ValueError(f"pids {value} is too small; set at least 16")
        return value

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)


def _check_env_name(name: str) -> str:
    if not ENV_NAME.match(name):
        raise ValueError(
            f"env name {name!r} is invalid; use letters, digits and '_', not starting with a digit"
        )
    if name in RESERVED_ENV:
        raise ValueError(f"env name {name!r} is set by the controller; remove it")
    return name


def _check_env_value(value: str) -> str:
    # The runtime passes env as NAME=VALUE C strings, which cannot hold a NUL character.
    if "\x00" in value:
        raise ValueError(
            "env value contains a NUL character, which a process environment cannot hold"
        )
    return value


EnvName = Annotated[str, AfterValidator(_check_env_name)]
EnvValue = Annotated[str, AfterValidator(_check_env_value)]


class InstanceSpec(Model):
    """Desired state of one sandbox."""

    runtime: Literal["docker", "libvirt"] = "docker"
    image: str | None = None
    loadout: str | None = None
    command: list[str] | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    mounts: list[Mount] = Field(default_factory=list)
    network: str = "bridge"
    resources: Resources = Field(default_factory=Resources)
    run_strategy: RunStrategy = RunStrategy.ALWAYS
    agentshare: bool = False
    termination_grace_period_seconds: int = Field(default=DEFAULT_STOP_GRACE_SECONDS, ge=0, le=3600)

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise ValueError(
                f"image {value!r} is not an image reference such as 'agentic/demo:dev'"
            )
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _check_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                f"command {value!r} is a string; write it as a list, for example "
                f"['sh', '-c', {value!r}]"
            )
        return value

    @field_validator("network")
    @classmethod
    def _check_network(cls, value: str) -> str:
        if not NETWORK_NAME.match(value):
            raise ValueError(
                f"network {value!r} is invalid; use 'bridge', 'none', 'host' or the name of a "
                "Docker network"
            )
        return value

    @model_validator(mode="after")
    def _check_runtime_fields(self) -> InstanceSpec:
        if self.runtime == "docker" and not self.image and not self.loadout:
            raise ValueError(
                "runtime 'docker' needs an image; set spec.image, for example 'agentic/demo:dev'"
            )
        targets = [mount.path for mount in self.mounts]
        if self.agentshare:
            targets.append("/workspace")
        duplicates = sorted({path for path in targets if targets.count(path) > 1})
        if duplicates:
            raise ValueError(f"mounts target the same container path more than once: {duplicates}")
        return self


class LastExit(Model):
    code: int | None = None
    signal: int | None = None
    reason: str = ""
    oom_killed: bool = False
    finished_at: datetime | None = None


class RuntimeRef(Model):
    runtime: str
    id: str
    name: str
    # Driver facts for operators, such as a VM's domain, accelerator and serial log path.
    details: dict[str, str] = Field(default_factory=dict)


class AgentInfo(Model):
    id: str | None = None
    connected_at: datetime | None = None
    last_heartbeat_at: datetime | None = None


class InstanceStatus(Model):
    """Observed state, written only by the controller."""

    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    runtime_ref: RuntimeRef | None = None
    node: str | None = None
    ip: str | None = None
    started_at: datetime | None = None
    restart_count: int = 0
    # Restarts since the sandbox last ran for a healthy stretch; drives crash-loop backoff.
    consecutive_restarts: int = 0
    last_exit: LastExit | None = None
    agent: AgentInfo | None = None
    spec_hash: str | None = None
    next_retry_at: datetime | None = None
    # The last requested-action annotation value the controller has carried out.
    handled_request: str | None = None
    message: str | None = None

    def condition(self, type_: str) -> Condition | None:
        for condition in self.conditions:
            if condition.type == type_:
                return condition
        return None


class Instance(Resource):
    """An agent sandbox: a container or a virtual machine."""

    KIND: ClassVar[str] = KIND

    kind: Literal["Instance"] = "Instance"
    spec: InstanceSpec
    status: InstanceStatus = Field(default_factory=InstanceStatus)
