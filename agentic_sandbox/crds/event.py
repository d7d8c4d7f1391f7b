"""Events: the durable, user-facing record of what the controller and the sources did.

Events come from the same code path that writes status conditions; they are never built from
log records. Names use the incumbent's dotted vocabulary (``container.created``,
``instance.reconcile_failed``, ``source.invalid``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from agentic_sandbox.crds.meta import Model, utcnow


class EventSeverity(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventName(StrEnum):
    CONTAINER_CREATED = "container.created"
    CONTAINER_STARTED = "container.started"
    CONTAINER_STOPPED = "container.stopped"
    CONTAINER_REMOVED = "container.removed"
    VM_DEFINED = "vm.defined"
    VM_STARTED = "vm.started"
    VM_STOPPED = "vm.stopped"
    VM_CRASHED = "vm.crashed"
    VM_UNDEFINED = "vm.undefined"
    INSTANCE_CREATED = "instance.created"
    INSTANCE_UPDATED = "instance.updated"
    INSTANCE_DELETED = "instance.deleted"
    INSTANCE_FORCE_DELETED = "instance.force_deleted"
    INSTANCE_VERB_REQUESTED = "instance.verb_requested"
    INSTANCE_RUNNING = "instance.running"
    # Every other phase change: the reason is the new phase.
    INSTANCE_PHASE_CHANGED = "instance.phase_changed"
    INSTANCE_RECREATED = "instance.recreated"
    INSTANCE_EXITED = "instance.exited"
    INSTANCE_REPAIRED = "instance.repaired"
    INSTANCE_STALLED = "instance.stalled"
    INSTANCE_RECONCILE_FAILED = "instance.reconcile_failed"
    SOURCE_APPLIED = "source.applied"
    SOURCE_INVALID = "source.invalid"
    SOURCE_PRUNED = "source.pruned"
    SOURCE_REJECTED = "source.rejected"
    SOURCE_DRIFT_REVERTED = "source.drift_reverted"
    SOURCE_FETCH_FAILED = "source.fetch_failed"
    RUNTIME_UNAVAILABLE = "runtime.unavailable"
    RUNTIME_AVAILABLE = "runtime.available"
    AGENT_REGISTERED = "agent.registered"
    AGENT_CONNECTED = "agent.connected"
    AGENT_DISCONNECTED = "agent.disconnected"
    MISSION_DISPATCHED = "mission.dispatched"
    MISSION_COMPLETED = "mission.completed"
    MISSION_FAILED = "mission.failed"


class Event(Model):
    """One recorded event. ``id`` is assigned by the event log and orders events strictly."""

    id: int | None = None
    time: datetime = Field(default_factory=utcnow)
    name: str
    severity: EventSeverity = EventSeverity.NORMAL
    reason: str = ""
    message: str = ""
    instance: str | None = None
    uid: str | None = None
    source: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
