"""The garbage collector: removes what this controller can prove it made and no instance needs.

A candidate is removed only when every condition of its rule holds:

- A container labelled ``agentic-sandbox.controller=<this controller id>``: its
  ``agentic-sandbox.uid`` is absent from a store listing of Instances taken in the same pass
  after the container listing, and it was created longer ago than the creation grace. Because
  the store is listed second, every container seen was made for an instance that was already in
  the store, so a uid absent from the listing means that instance is gone. A container created
  during the pass is not seen at all.
- A container with the ``agentic-sandbox=true`` marker and no controller label, made by another
  tool or by the incumbent server: its name starts with the opt-in prefix, it is stopped, and it
  finished longer ago than the orphan age. An empty prefix turns this rule off.
- A workspace directory ``<workspace root>/<namespace>/<name>``: it is a real directory (no
  symlink is followed), its owner file names this controller and a uid absent from the listing,
  no instance of that namespace and name exists, and the owner file is older than the grace.

A container of another controller is never touched, and neither is a container whose instance
exists, running or stopped. A pass whose container or store listing fails removes nothing. A
dry run returns the candidates with their reasons and changes nothing.

NOTE: the controller creates no networks or volumes yet, so there are none to collect.
NOTE: the SQLite store serves every listing from the database itself. A cached store backend
must check that its listing is current before this collector may rely on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from agentic_sandbox.controller.desired import WORKSPACE_OWNER_FILE
from agentic_sandbox.controller.metrics import ControllerMetrics
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import EventName
from agentic_sandbox.crds.meta import DNS1123_LABEL, utcnow
from agentic_sandbox.errors import RuntimeFailure, SandboxError
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_UID,
    Runtime,
    SandboxState,
    SandboxStatus,
)
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

KIND = "Instance"
# Reason of the container.removed event of every removal by the collector.
EVENT_REASON = "GarbageCollected"
# The first sweep waits one poll interval, and never less than this, after start-up.
MIN_STARTUP_DELAY = 30.0
# An owner file contains three short strings as JSON, so a larger file is not one.
MAX_OWNER_FILE_BYTES = 4096
STOPPED = frozenset({SandboxStatus.EXITED, SandboxStatus.DEAD})

Clock = Callable[[], datetime]


class TargetType(StrEnum):
    CONTAINER = "container"
    WORKSPACE = "workspace"


class GcReason(StrEnum):
    # The object's instance uid is not in the store.
    INSTANCE_GONE = "InstanceGone"
    # A stopped container with only the agentic-sandbox=true marker and the opt-in name prefix.
    UNOWNED_STOPPED = "UnownedStopped"


@dataclass(frozen=True)
class GcSettings:
    """When the collector runs and what it may remove. Times are in seconds."""

    enabled: bool = True
    interval: float = 30.0
    creation_grace: float = 60.0
    orphaned_age: float = 3600.0
    name_prefix: str = "task-"
    # None: one interval, at least MIN_STARTUP_DELAY.
    startup_delay: float | None = None

    @property
    def first_sweep_delay(self) -> float:
        if self.startup_delay is not None:
            return self.startup_delay
        return max(self.interval, MIN_STARTUP_DELAY)


@dataclass(frozen=True)
class Candidate:
    """One object a sweep would remove, and why. ``id`` is a container id or a workspace path."""

    type: TargetType
    id: str
    name: str
    instance: str
    uid: str
    reason: GcReason
    message: str


@dataclass(frozen=True)
class SweepResult:
    """The candidates of one pass, and those not removed: by candidate id, the error or reason."""

    dry_run: bool
    candidates: list[Candidate]
    failed: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)

    def removed(self, candidate: Candidate) -> bool:
        return not self.dry_run and candidate.id not in self.failed | self.kept


@dataclass(frozen=True)
class LastPass:
    """The collector's last pass that was not a dry run: when it ended, and what it did.

    ``result`` is None when the pass failed before removing anything; ``error`` gives the reason.
    """

    finished_at: datetime
    result: SweepResult | None
    error: str | None = None


@dataclass(frozen=True)
class WorkspaceOwner:
    """A workspace directory and the contents and time of its owner file."""

    path: Path
    key: str
    controller: str
    uid: str
    written_at: datetime


@dataclass(frozen=True)
class StoreListing:
    """The uids and ``namespace/name`` keys of every Instance in one store listing."""

    uids: frozenset[str]
    keys: frozenset[str]


def _age(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else (now - since).total_seconds()


def judge_container(
    state: SandboxState, *, controller_id: str, listing: StoreListing, now: datetime, gc: GcSettings
) -> Candidate | None:
    """Return a Candidate when ``state`` may be removed under the rules above, else None."""
    owner = state.labels.get(LABEL_CONTROLLER)
    if owner is None:
        return _judge_unowned(state, now=now, gc=gc)
    uid = state.labels.get(LABEL_UID)
    if owner != controller_id or not uid or uid in listing.uids:
        return None
    age = _age(state.created_at, now)
    if age is None or age <= gc.creation_grace:
        return None
    instance = state.labels.get(LABEL_INSTANCE, "")
    return Candidate(
        type=TargetType.CONTAINER,
        id=state.id,
        name=state.name,
        instance=instance,
        uid=uid,
        reason=GcReason.INSTANCE_GONE,
        message=f"instance {instance or '<unknown>'} (uid {uid}) is not in the store; "
        f"created {age:.0f}s ago, over the {gc.creation_grace:g}s grace",
    )


def _judge_unowned(state: SandboxState, *, now: datetime, gc: GcSettings) -> Candidate | None:
    if state.labels.get(LABEL_MANAGED) != "true":
        return None
    if not gc.name_prefix or not state.name.startswith(gc.name_prefix):
        return None
    # NOTE: a container that was created but never started has no finish time and is kept.
    finished = _age(state.finished_at, now)
    if state.status not in STOPPED or finished is None or finished <= gc.orphaned_age:
        return None
    return Candidate(
        type=TargetType.CONTAINER,
        id=state.id,
        name=state.name,
        instance="",
        uid="",
        reason=GcReason.UNOWNED_STOPPED,
        message=f"only the {LABEL_MANAGED}=true marker, name starts with {gc.name_prefix!r}, "
        f"stopped {finished:.0f}s ago, over DOCKER_ORPHANED_AGE_SECS={gc.orphaned_age:g}",
    )


def judge_workspace(
    owner: WorkspaceOwner, *, controller_id: str, listing: StoreListing, now: datetime, grace: float
) -> Candidate | None:
    """Return a Candidate when the workspace of ``owner`` may be removed, else None."""
    if owner.controller != controller_id:
        return None
    # An instance of the same name rewrites the owner file when it next creates its container.
    if owner.uid in listing.uids or owner.key in listing.keys:
        return None
    age = _age(owner.written_at, now)
    if age is None or age <= grace:
        return None
    return Candidate(
        type=TargetType.WORKSPACE,
        id=str(owner.path),
        name=str(owner.path),
        instance=owner.key,
        uid=owner.uid,
        reason=GcReason.INSTANCE_GONE,
        message=f"instance {owner.key} (uid {owner.uid}) is not in the store; owner file "
        f"written {age:.0f}s ago, over the {grace:g}s grace",
    )


def read_workspace_owner(path: Path, key: str) -> WorkspaceOwner | None:
    """Read the owner file of the workspace ``path``; None when it is missing or not valid.

    The file is opened without following a symlink, and must be a regular file, because the
    sandbox that uses the workspace can write to it.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        descriptor = os.open(path / WORKSPACE_OWNER_FILE, flags)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        raw = file.read(MAX_OWNER_FILE_BYTES + 1)
    try:
        data = json.loads(raw) if len(raw) <= MAX_OWNER_FILE_BYTES else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    controller, uid = data.get("controller"), data.get("uid")
    if not isinstance(controller, str) or not isinstance(uid, str) or not controller or not uid:
        return None
    written_at = datetime.fromtimestamp(info.st_mtime, UTC)
    return WorkspaceOwner(path, key, controller, uid, written_at)


def _real_directories(path: Path) -> list[Path]:
    """List the subdirectories of ``path`` named as DNS-1123 labels, skipping symlinks."""
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        Path(entry.path)
        for entry in entries
        if DNS1123_LABEL.match(entry.name) and entry.is_dir(follow_symlinks=False)
    )


def scan_workspaces(root: Path) -> list[WorkspaceOwner]:
    """Find every ``root/<namespace>/<name>`` directory that has a valid owner file."""
    owners = []
    for namespace in _real_directories(root):
        for workspace in _real_directories(namespace):
            owner = read_workspace_owner(workspace, f"{namespace.name}/{workspace.name}")
            if owner is not None:
                owners.append(owner)
    return owners


def remove_workspace(owner: WorkspaceOwner) -> bool:
    """Remove the workspace of ``owner`` unless it changed since the scan; return True if removed.

    The checks repeat just before the removal: the path must still be a real directory, and its
    owner file must be the one scanned, since an instance created meanwhile rewrites it.
    """
    try:
        info = os.lstat(owner.path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    if read_workspace_owner(owner.path, owner.key) != owner:
        return False
    # On Linux rmtree works on directory descriptors and removes a symlink found inside the tree
    # without following it (shutil.rmtree.avoids_symlink_attacks is True).
    shutil.rmtree(owner.path)
    return True


async def wait_for_stop(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``stopping`` to be set; return True when it is set."""
    try:
        async with asyncio.timeout(seconds):
            await stopping.wait()
    except TimeoutError:
        pass
    return stopping.is_set()


Waiter = Callable[[asyncio.Event, float], Awaitable[bool]]


class GarbageCollector:
    """Sweeps on an interval with ``run``, or once on request with ``sweep``."""

    def __init__(
        self,
        *,
        store: Store,
        runtime: Runtime,
        recorder: EventRecorder,
        metrics: ControllerMetrics,
        controller_id: str,
        workspace_root: Path,
        settings: GcSettings | None = None,
        clock: Clock = utcnow,
        wait: Waiter = wait_for_stop,
    ) -> None:
        self.settings = settings or GcSettings()
        self._store = store
        self._runtime = runtime
        self._recorder = recorder
        self._metrics = metrics
        self._controller_id = controller_id
        self._workspace_root = workspace_root
        self._clock = clock
        self._wait = wait
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._failing = False
        # The last pass that was not a dry run, periodic or requested; None before the first.
        self.last_pass: LastPass | None = None

    async def run(self) -> None:
        """Sweep every interval, after the start-up delay, until ``stop`` is called."""
        gc = self.settings
        logger.info(
            "garbage collector started interval=%gs first_sweep_in=%gs grace=%gs prefix=%r",
            gc.interval,
            gc.first_sweep_delay,
            gc.creation_grace,
            gc.name_prefix,
        )
        delay = gc.first_sweep_delay
        while not await self._wait(self._stopping, delay):
            await self._sweep_and_report()
            delay = gc.interval

    def stop(self) -> None:
        self._stopping.set()

    @property
    def enabled(self) -> bool:
        """Whether the periodic sweep is on; a sweep can be requested either way."""
        return self.settings.enabled

    async def sweep(self, *, dry_run: bool = False) -> SweepResult:
        """Run one pass; with ``dry_run``, only return what would be removed.

        Raises the runtime's or the store's error when a listing fails; nothing is removed then.
        """
        async with self._lock:
            try:
                candidates, owners = await self._find_candidates()
            except (SandboxError, OSError) as error:
                if not dry_run:
                    self.last_pass = LastPass(self._clock(), None, f"listing failed: {error}")
                raise
            if dry_run:
                return SweepResult(dry_run=True, candidates=candidates)
            result = SweepResult(dry_run=False, candidates=candidates)
            for candidate in candidates:
                try:
                    kept = await self._remove(candidate, owners)
                except (RuntimeFailure, OSError) as error:
                    logger.debug("removal failed id=%s error=%s", candidate.id, error)
                    result.failed[candidate.id] = str(error)
                    continue
                if kept is not None:
                    result.kept[candidate.id] = kept
            self.last_pass = LastPass(self._clock(), result)
            return result

    async def _with_finish_time(self, state: SandboxState) -> SandboxState:
        if state.labels.get(LABEL_CONTROLLER) is not None or state.finished_at is not None:
            return state
        prefix = self.settings.name_prefix
        if not prefix or not state.name.startswith(prefix) or state.status not in STOPPED:
            return state
        inspected = await self._runtime.inspect(state.id)
        return inspected if inspected is not None else state

    async def _find_candidates(self) -> tuple[list[Candidate], dict[str, WorkspaceOwner]]:
        # Observe the runtime and the host first and list the store last, so that everything
        # observed belongs to an instance the listing already contains, unless it is gone.
        # The cheap listing has labels, state and creation time, which the owned rule needs.
        # Only marker-only containers that could qualify are inspected, for their finish time.
        listed = await self._runtime.list_owned(self._selector(), detailed=False)
        sandboxes = [await self._with_finish_time(state) for state in listed]
        owners = await asyncio.to_thread(scan_workspaces, self._workspace_root)
        listing = await self._list_instances()

        now = self._clock()
        candidates = []
        for state in sandboxes:
            candidate = judge_container(
                state, controller_id=self._controller_id, listing=listing, now=now, gc=self.settings
            )
            if candidate is not None:
                candidates.append(candidate)
        for owner in owners:
            candidate = judge_workspace(
                owner,
                controller_id=self._controller_id,
                listing=listing,
                now=now,
                grace=self.settings.creation_grace,
            )
            if candidate is not None:
                candidates.append(candidate)
        logger.debug(
            "garbage collection pass containers=%d workspaces=%d candidates=%d",
            len(sandboxes),
            len(owners),
            len(candidates),
        )
        return candidates, {str(owner.path): owner for owner in owners}

    def _selector(self) -> dict[str, str]:
        # Every container this controller creates carries the marker too, so one listing by the
        # marker covers both rules. Without the prefix rule, only this controller's are listed.
        if self.settings.name_prefix:
            return {LABEL_MANAGED: "true"}
        return {LABEL_CONTROLLER: self._controller_id}

    async def _list_instances(self) -> StoreListing:
        listing = await self._store.list(KIND)
        uids = frozenset(str(item.metadata.uid) for item in listing.items if item.metadata.uid)
        keys = frozenset(item.key for item in listing.items)
        return StoreListing(uids=uids, keys=keys)

    async def _remove(self, candidate: Candidate, owners: dict[str, WorkspaceOwner]) -> str | None:
        """Remove ``candidate``; return why it was kept after all, or None once it is removed."""
        if candidate.type == TargetType.WORKSPACE:
            if not await asyncio.to_thread(remove_workspace, owners[candidate.id]):
                return "the workspace or its owner file changed since the scan"
            self._removed(candidate)
            return None
        if candidate.reason == GcReason.UNOWNED_STOPPED and not await self._still_stopped(
            candidate
        ):
            return "the container was started or removed since the listing"
        await self._runtime.remove(candidate.id)
        self._removed(candidate)
        await self._recorder.record(
            EventName.CONTAINER_REMOVED,
            instance_key=candidate.instance or None,
            uid=candidate.uid or None,
            reason=EVENT_REASON,
            message=candidate.message,
            details={
                "containerId": candidate.id,
                "name": candidate.name,
                "cause": candidate.reason.value,
            },
        )
        return None

    async def _still_stopped(self, candidate: Candidate) -> bool:
        """Inspect again: another tool may have started the container since the listing."""
        state = await self._runtime.inspect(candidate.id)
        return state is not None and state.status in STOPPED

    def _removed(self, candidate: Candidate) -> None:
        self._metrics.gc_removals[candidate.type.value] += 1
        logger.info(
            "garbage collected %s container_id=%s name=%s instance=%s uid=%s reason=%s",
            candidate.type.value,
            candidate.id[:12] if candidate.type == TargetType.CONTAINER else candidate.id,
            candidate.name,
            candidate.instance or "-",
            candidate.uid or "-",
            candidate.reason.value,
        )

    async def _sweep_and_report(self) -> None:
        """Sweep once; log a failure when sweeps start failing and a recovery when they stop."""
        try:
            result = await self.sweep()
        except (SandboxError, OSError) as error:
            self._report(failure=f"listing failed: {error}")
            return
        if result.failed:
            first_id, first_error = next(iter(result.failed.items()))
            self._report(
                failure=f"{len(result.failed)} removals failed; {first_id[:12]}: {first_error}"
            )
            return
        self._report(failure=None)

    def _report(self, *, failure: str | None) -> None:
        self._metrics.gc_sweeps["failed" if failure else "succeeded"] += 1
        if failure is not None and not self._failing:
            logger.warning("garbage collection failing; will retry next interval error=%s", failure)
        elif failure is None and self._failing:
            logger.info("garbage collection recovered")
        self._failing = failure is not None
