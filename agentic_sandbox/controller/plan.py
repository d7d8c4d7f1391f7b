"""Planning: from one observation of an instance to a list of typed operations.

The planner is a pure function. It reads a snapshot (the instance from the store, the sandboxes
the runtime reported for its uid, the time) and returns operations with readable causes. The
executor carries them out without making decisions, and tests compare ``Plan.render()`` text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from agentic_sandbox.crds.instance import Instance, RunStrategy
from agentic_sandbox.crds.meta import REQUESTED_ACTION_ANNOTATION
from agentic_sandbox.runtimes.base import (
    LABEL_HASH_SCHEMA,
    LABEL_SPEC_HASH,
    SandboxState,
    SandboxStatus,
)

# Crash-loop backoff: the first restart is immediate, then 10 s doubling up to 5 min.
CRASH_BACKOFF_BASE = timedelta(seconds=10)
CRASH_BACKOFF_CAP = timedelta(minutes=5)
# A sandbox that ran this long before exiting starts a fresh backoff sequence.
HEALTHY_RESET = timedelta(minutes=10)
CRASH_BACKOFF_JITTER = 0.1


REQUEST_ACTIONS = ("start", "stop", "restart")


class OpKind(StrEnum):
    CREATE = "create"
    START = "start"
    STOP = "stop"
    REMOVE = "remove"


@dataclass(frozen=True)
class Operation:
    kind: OpKind
    cause: str
    sandbox_id: str | None = None
    # A start that restarts an exited sandbox counts towards restartCount.
    restart: bool = False

    def render(self) -> str:
        target = f" {self.sandbox_id[:12]}" if self.sandbox_id else ""
        return f"{self.kind}{target}: {self.cause}"


@dataclass(frozen=True)
class Plan:
    operations: list[Operation] = field(default_factory=list)
    # When set, reconcile the instance again at this time even if nothing else changes.
    retry_at: datetime | None = None
    # The sandbox that stays (None when it is removed or none exists yet).
    keep: SandboxState | None = None
    # The requested-action annotation value this plan carries out, recorded in status after.
    handles_request: str | None = None

    def render(self) -> str:
        lines = [op.render() for op in self.operations] or ["nothing to do"]
        if self.retry_at is not None:
            lines.append(f"retry at {self.retry_at.isoformat()}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Observation:
    instance: Instance
    sandboxes: list[SandboxState]
    now: datetime
    desired_hash: str
    # Hashes of the instance's spec under each hash-schema version the controller supports, so a
    # sandbox created by an older controller is recognised as unchanged.
    hashes_by_schema: dict[str, str]


def sandbox_matches(sandbox: SandboxState, hashes_by_schema: dict[str, str]) -> bool:
    schema = sandbox.labels.get(LABEL_HASH_SCHEMA, "1")
    expected = hashes_by_schema.get(schema)
    return expected is not None and sandbox.labels.get(LABEL_SPEC_HASH) == expected


def pick_current(sandboxes: list[SandboxState]) -> tuple[SandboxState | None, list[SandboxState]]:
    """Choose the sandbox to keep: a running one first, then the newest. The rest are extras."""
    if not sandboxes:
        return None, []
    epoch = datetime.min.replace(tzinfo=None)

    def rank(sandbox: SandboxState) -> tuple[bool, datetime, str]:
        created = sandbox.created_at.replace(tzinfo=None) if sandbox.created_at else epoch
        return (sandbox.running, created, sandbox.id)

    ordered = sorted(sandboxes, key=rank, reverse=True)
    return ordered[0], ordered[1:]


def crash_backoff(instance: Instance, consecutive: int) -> timedelta:
    """Delay before restart number ``consecutive + 1`` of a crash streak, with stable jitter."""
    if consecutive <= 0:
        return timedelta(0)
    nominal = min(CRASH_BACKOFF_CAP, CRASH_BACKOFF_BASE * 2.0 ** min(consecutive - 1, 20))
    # Jitter comes from the uid and the streak so that planning stays a pure function.
    seed = f"{instance.metadata.uid}:{consecutive}".encode()
    fraction = int.from_bytes(hashlib.sha256(seed).digest()[:4], "big") / 2**32
    spread = 1.0 + CRASH_BACKOFF_JITTER * (2.0 * fraction - 1.0)
    return min(CRASH_BACKOFF_CAP, nominal * spread)


def exit_failed(sandbox: SandboxState) -> bool:
    return sandbox.status == SandboxStatus.DEAD or sandbox.oom_killed or sandbox.exit_code != 0


def wants_running(strategy: RunStrategy) -> bool:
    return strategy in (RunStrategy.ALWAYS, RunStrategy.RERUN_ON_FAILURE, RunStrategy.ONCE)


def plan(observation: Observation) -> Plan:
    instance = observation.instance
    if instance.metadata.deletion_timestamp is not None:
        removals = [
            Operation(OpKind.REMOVE, "instance is being deleted", sandbox.id)
            for sandbox in observation.sandboxes
        ]
        return Plan(removals)

    current, extras = pick_current(observation.sandboxes)
    operations = [
        Operation(OpKind.REMOVE, "duplicate sandbox for this instance", extra.id)
        for extra in extras
    ]

    create_cause = "no sandbox exists"
    if current is not None and not sandbox_matches(current, observation.hashes_by_schema):
        old = current.labels.get(LABEL_SPEC_HASH, "none")
        cause = f"spec changed (hash {old} -> {observation.desired_hash})"
        operations.append(Operation(OpKind.REMOVE, cause, current.id))
        current = None
        create_cause = "recreate after spec change"

    request = requested_action(instance)
    if request is not None:
        return _plan_request(current, operations, request, create_cause)
    if current is None:
        return _plan_create(observation, operations, create_cause)
    return _plan_existing(observation, current, operations)


def requested_action(instance: Instance) -> tuple[str, str] | None:
    """Return the (action, annotation value) of a lifecycle verb not yet carried out."""
    value = instance.metadata.annotations.get(REQUESTED_ACTION_ANNOTATION)
    if not value or value == instance.status.handled_request:
        return None
    action = value.partition("@")[0]
    if action not in REQUEST_ACTIONS:
        return None
    return action, value


def _plan_request(
    current: SandboxState | None,
    operations: list[Operation],
    request: tuple[str, str],
    create_cause: str,
) -> Plan:
    """Carry out a start, stop or restart verb once, whatever the run strategy."""
    action, value = request
    cause = f"{action} requested"
    if current is None:
        if action != "stop":
            operations.append(Operation(OpKind.CREATE, f"{create_cause}; {cause}"))
            operations.append(Operation(OpKind.START, cause))
        return Plan(operations, handles_request=value)
    if current.running and action in ("stop", "restart"):
        operations.append(Operation(OpKind.STOP, cause, current.id))
    if action == "restart" or (action == "start" and not current.running):
        operations.append(Operation(OpKind.START, cause, current.id))
    return Plan(operations, keep=current, handles_request=value)


def _plan_create(observation: Observation, operations: list[Operation], cause: str) -> Plan:
    instance = observation.instance
    strategy = instance.spec.run_strategy
    status = instance.status
    if strategy == RunStrategy.HALTED:
        return Plan(operations)
    completed = status.last_exit is not None and status.spec_hash == observation.desired_hash
    if strategy == RunStrategy.ONCE and completed:
        return Plan(operations)
    if strategy == RunStrategy.RERUN_ON_FAILURE and completed and status.phase == "Succeeded":
        return Plan(operations)
    operations.append(Operation(OpKind.CREATE, cause))
    if strategy != RunStrategy.MANUAL:
        operations.append(Operation(OpKind.START, f"run strategy {strategy}"))
    return Plan(operations)


def _plan_existing(
    observation: Observation, current: SandboxState, operations: list[Operation]
) -> Plan:
    strategy = observation.instance.spec.run_strategy
    if current.running:
        if strategy == RunStrategy.HALTED:
            operations.append(Operation(OpKind.STOP, "run strategy Halted", current.id))
        return Plan(operations, keep=current)

    if current.status == SandboxStatus.PAUSED:
        # Paused behind the controller's back: a start cannot resume it, and the pause may be
        # deliberate. So it is left to the operator, unless the instance is to be halted.
        if strategy == RunStrategy.HALTED:
            operations.append(Operation(OpKind.STOP, "run strategy Halted", current.id))
        return Plan(operations, keep=current)

    if current.status == SandboxStatus.CREATED:
        if wants_running(strategy):
            cause = "sandbox was created but never started"
            operations.append(Operation(OpKind.START, cause, current.id))
        return Plan(operations, keep=current)

    # The sandbox has exited (or is dead): restart it only when the run strategy calls for it.
    if strategy in (RunStrategy.HALTED, RunStrategy.MANUAL, RunStrategy.ONCE):
        return Plan(operations, keep=current)
    if strategy == RunStrategy.RERUN_ON_FAILURE and not exit_failed(current):
        return Plan(operations, keep=current)
    return _plan_restart(observation, current, operations)


def _plan_restart(
    observation: Observation, current: SandboxState, operations: list[Operation]
) -> Plan:
    instance = observation.instance
    consecutive = instance.status.consecutive_restarts
    if current.started_at and current.finished_at:
        if current.finished_at - current.started_at >= HEALTHY_RESET:
            consecutive = 0
    finished = current.finished_at or observation.now
    retry_at = finished + crash_backoff(instance, consecutive)
    if observation.now < retry_at:
        return Plan(operations, retry_at=retry_at, keep=current)
    cause = f"restart after exit code {current.exit_code}"
    if current.oom_killed:
        cause = "restart after the sandbox was killed for running out of memory"
    operations.append(Operation(OpKind.START, cause, current.id, restart=True))
    return Plan(operations, keep=current)
