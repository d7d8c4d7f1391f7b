"""The Runtime protocol and the driver-neutral models it speaks.

Drivers (Docker, libvirt, the in-memory fake) take a ``SandboxSpec`` and return
``SandboxState``; they never expose docker-py or libvirt objects. Every call has a deadline and
raises the RuntimeFailure family from ``agentic_sandbox.errors``. Drivers make no decisions and
never retry by sleeping: the controller requeues with backoff.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from agentic_sandbox.crds.loadout_merge import ResolvedLoadout

# Ownership labels: every runtime object the controller creates carries all of them.
LABEL_MANAGED = "agentic-sandbox"
LABEL_CONTROLLER = "agentic-sandbox.controller"
LABEL_INSTANCE = "agentic-sandbox.instance"
LABEL_UID = "agentic-sandbox.uid"
LABEL_SPEC_HASH = "agentic-sandbox.spec-hash"
LABEL_HASH_SCHEMA = "agentic-sandbox.hash-schema"


class SandboxStatus(StrEnum):
    """Runtime state of one sandbox, folded from Docker or libvirt states."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


@dataclass(frozen=True)
class MountSpec:
    host_path: str
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class VmSpec:
    """What a virtual machine needs beyond ``SandboxSpec``.

    ``base_image`` is the absolute path of the base disk image, which the driver never writes:
    the VM runs on a copy-on-write overlay. ``loadout`` is the merged loadout (kernel, cloud-init
    packages, files and commands, network mode, readiness timeout); an Instance that names no
    loadout gets an empty one. ``disk_bytes`` is the overlay's virtual size (None: the base
    image's size).
    """

    base_image: str
    loadout: ResolvedLoadout
    disk_bytes: int | None = None


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a driver needs to create one sandbox.

    ``runtime`` names the driver that creates it (``docker`` or ``libvirt``); ``vm`` is set
    exactly when it is ``libvirt``.
    """

    name: str
    image: str
    labels: dict[str, str]
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[MountSpec] = field(default_factory=list)
    network: str = "bridge"
    cpus: float = 1.0
    memory_bytes: int = 1 << 30
    pids: int = 512
    stop_timeout: int = 10
    runtime: str = "docker"
    vm: VmSpec | None = None


@dataclass(frozen=True)
class SandboxState:
    """One observed runtime object."""

    id: str
    name: str
    labels: dict[str, str]
    status: SandboxStatus
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    ip: str | None = None
    image: str = ""
    # Driver facts worth showing an operator, such as a VM's accelerator and serial log path.
    details: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status in (SandboxStatus.RUNNING, SandboxStatus.RESTARTING)


# Action of the first event every stream yields, once the runtime has accepted the subscription.
# Anything that changes after it is reported, so a consumer relists at that point.
STREAM_CONNECTED = "stream.connected"


@dataclass(frozen=True)
class RuntimeEvent:
    """A change the runtime reported. Only a hint: the controller re-observes before acting."""

    action: str
    sandbox_id: str
    labels: dict[str, str]
    time: datetime | None = None


class Runtime(Protocol):
    name: str

    async def ping(self) -> None:
        """Raise RuntimeUnavailable unless the daemon responds."""

    async def create(self, spec: SandboxSpec) -> SandboxState:
        """Create the sandbox without starting it.

        When a sandbox named ``spec.name`` already exists with the same ``agentic-sandbox.uid``
        label, return it (a create that crashed half-way is adopted, not duplicated). When the
        name belongs to anything else, raise NameConflict.
        """

    async def start(self, sandbox_id: str) -> None: ...

    async def stop(self, sandbox_id: str, timeout: int) -> None:  # noqa: ASYNC109
        """Stop gracefully, killing after ``timeout`` seconds.

        Stopping a stopped sandbox is fine.
        """

    async def remove(self, sandbox_id: str) -> None:
        """Remove forcibly. Removing an absent sandbox is fine."""

    async def inspect(self, sandbox_id: str) -> SandboxState | None: ...

    async def list_owned(
        self, labels: dict[str, str], *, detailed: bool = True
    ) -> list[SandboxState]:
        """List every sandbox, running or not, whose labels include all of ``labels``.

        With ``detailed=False`` a driver may leave out what a listing does not carry cheaply
        (exit code, start and finish times, OOM flag, IP); id, name, labels, status, creation
        time and image are always filled in.
        """

    async def image_present(self, refs: list[str]) -> dict[str, bool]:
        """Return, for each image reference in ``refs``, whether the image exists locally.

        Read-only: it never pulls or builds. A reference without a tag means ``:latest``.
        """

    def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        """Stream the sandbox's output (stdout and stderr interleaved) as raw chunks.

        ``tail`` limits the output to the last N lines (None: all of it). With ``follow`` the
        stream stays open for new output until the sandbox stops. The first chunk is always
        ``b""``, once the stream is open, so a caller can tell a failure to open (raised before
        it: RuntimeObjectNotFound, RuntimeUnavailable) from a failure mid-stream. Closing the
        iterator ends the stream.
        """

    def events(self, labels: dict[str, str]) -> AsyncGenerator[RuntimeEvent, None]:
        """Stream changes to sandboxes carrying ``labels``.

        The first event has the action ``STREAM_CONNECTED``. Raises RuntimeUnavailable when the
        stream breaks; the caller reconnects with backoff and relists.
        """

    async def close(self) -> None: ...
