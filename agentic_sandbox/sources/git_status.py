"""The status of a GitSource: conditions, commits, inventory and errors, written by the git sync.

Conditions follow the Kubernetes convention (``Ready``, ``Reconciling``, ``Stalled``); a
condition keeps its ``lastTransitionTime`` while its status stays the same. Writes go through
``update_status`` with the stored resourceVersion and are retried from a fresh read on a
Conflict, so a concurrent spec change is never overwritten. Nothing is written when the new
status equals the stored one, so a sync that finds no change costs no write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from agentic_sandbox.crds.gitsource import (
    ConditionType,
    GitSource,
    GitSourceStatus,
    InventoryEntry,
    ManifestIssue,
    OwnershipConflict,
)
from agentic_sandbox.crds.meta import Condition, ConditionStatus, utcnow
from agentic_sandbox.errors import Conflict, ManifestError, NotFound
from agentic_sandbox.sources.ownership import ObjectKey
from agentic_sandbox.sources.report import error_line
from agentic_sandbox.store.base import Store

STATUS_ATTEMPTS = 5


class Reason(StrEnum):
    SYNCED = "Synced"
    SYNCING = "Syncing"
    FETCH_FAILED = "FetchFailed"
    EMPTY_PATH = "EmptyPath"
    INVALID_MANIFESTS = "InvalidManifests"
    OWNERSHIP_CONFLICT = "OwnershipConflict"
    APPLY_FAILED = "ApplyFailed"
    SUSPENDED = "Suspended"
    IDLE = "Idle"


@dataclass
class Outcome:
    """Result of one sync, as the status records it."""

    reason: Reason
    message: str
    fetched_commit: str | None = None
    applied_commit: str | None = None
    inventory: set[ObjectKey] | None = None
    # None keeps what the status recorded last, as after a failed fetch.
    issues: dict[str, ManifestError] | None = None
    conflicts: list[OwnershipConflict] | None = None
    # Whether the next sync can succeed without a change to the repository or the spec.
    stalled: bool = False


def issue_of(file: str, error: ManifestError) -> ManifestIssue:
    field_path = error.errors[0].path if error.errors and error.errors[0].path else None
    return ManifestIssue(file=file, line=error_line(error), field=field_path, message=str(error))


def inventory_keys(status: GitSourceStatus) -> set[ObjectKey]:
    return {(entry.kind, entry.namespace, entry.name) for entry in status.inventory}


def _condition(
    previous: GitSourceStatus,
    type_: ConditionType,
    *,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
) -> Condition:
    old = previous.condition(type_)
    since: datetime | None = utcnow()
    if old is not None and old.status == status:
        since = old.last_transition_time
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def next_status(current: GitSource, outcome: Outcome) -> GitSourceStatus:
    """Return the status ``current`` gets for ``outcome``; unset outcome fields keep theirs."""
    previous = current.status
    generation = current.metadata.generation
    ready = outcome.reason is Reason.SYNCED
    syncing = outcome.reason is Reason.SYNCING
    true, false = ConditionStatus.TRUE, ConditionStatus.FALSE
    conditions = [
        _condition(
            previous,
            ConditionType.READY,
            status=true if ready else false,
            reason=outcome.reason,
            message=outcome.message,
            generation=generation,
        ),
        _condition(
            previous,
            ConditionType.RECONCILING,
            status=true if syncing else false,
            reason=outcome.reason if syncing else Reason.IDLE,
            message=outcome.message if syncing else "",
            generation=generation,
        ),
        _condition(
            previous,
            ConditionType.STALLED,
            status=true if outcome.stalled else false,
            reason=outcome.reason if outcome.stalled else Reason.IDLE,
            message=outcome.message if outcome.stalled else "",
            generation=generation,
        ),
    ]
    if syncing:
        # Only the conditions change while a sync runs.
        return previous.model_copy(update={"conditions": conditions})

    inventory = previous.inventory
    if outcome.inventory is not None:
        inventory = [
            InventoryEntry(kind=kind, namespace=namespace, name=name)
            for kind, namespace, name in sorted(outcome.inventory)
        ]
    issues = previous.manifest_errors
    if outcome.issues is not None:
        issues = [issue_of(file, outcome.issues[file]) for file in sorted(outcome.issues)]
    return GitSourceStatus(
        observed_generation=generation,
        conditions=conditions,
        last_fetched_commit=outcome.fetched_commit or previous.last_fetched_commit,
        last_applied_commit=outcome.applied_commit or previous.last_applied_commit,
        last_sync_time=previous.last_sync_time,
        inventory=inventory,
        manifest_errors=issues,
        conflicts=previous.conflicts if outcome.conflicts is None else outcome.conflicts,
        last_error=None if ready else outcome.message,
    )


def _same(left: GitSourceStatus, right: GitSourceStatus) -> bool:
    ignored = {"last_sync_time"}
    return left.model_dump(exclude=ignored) == right.model_dump(exclude=ignored)


async def write_status(
    store: Store, namespace: str, name: str, outcome: Outcome
) -> GitSource | None:
    """Write the status for ``outcome``; return the stored source, or None when it is gone.

    ``lastSyncTime`` is refreshed only when something else in the status changes, so a sync
    that finds nothing new writes nothing.
    """
    for _ in range(STATUS_ATTEMPTS):
        try:
            current = await store.get(GitSource.KIND, namespace, name)
        except NotFound:
            return None
        assert isinstance(current, GitSource)
        status = next_status(current, outcome)
        if _same(status, current.status):
            return current
        if outcome.reason is not Reason.SYNCING:
            status.last_sync_time = utcnow()
        try:
            updated = await store.update_status(current.model_copy(update={"status": status}))
        except NotFound:
            return None
        except Conflict:
            continue
        assert isinstance(updated, GitSource)
        return updated
    raise Conflict(f"status of GitSource {namespace}/{name} kept changing while it was written")
