"""The ``SourceSynced`` status condition: whether an object's manifest file applies cleanly.

The directory source owns this one condition type. It writes it with a status update that
leaves every other condition as it is, re-reading and retrying when another writer (the
controller) updated the status in between.
"""

from __future__ import annotations

from datetime import datetime

from agentic_sandbox.crds.meta import Condition, ConditionStatus, Resource, utcnow
from agentic_sandbox.errors import Conflict, NotFound
from agentic_sandbox.sources.ownership import ObjectKey, describe_key
from agentic_sandbox.store.base import Store

SOURCE_SYNCED = "SourceSynced"
REASON_INVALID_MANIFEST = "InvalidManifest"
REASON_APPLIED = "Applied"

# Status writes before a Conflict is passed to the caller.
STATUS_ATTEMPTS = 5


async def set_source_synced(
    store: Store, key: ObjectKey, *, synced: bool, reason: str, message: str
) -> bool:
    """Set the ``SourceSynced`` condition of one object.

    Returns False when the object is gone or its kind has no conditions, True otherwise.
    Writes nothing when the condition already reads the same. Raises Conflict when other
    writers won every attempt, and StoreError subclasses from the store.
    """
    status = ConditionStatus.TRUE if synced else ConditionStatus.FALSE
    for _ in range(STATUS_ATTEMPTS):
        try:
            current = await store.get(*key)
        except NotFound:
            return False
        conditions = getattr(current.status, "conditions", None)
        if not isinstance(conditions, list):
            return False
        updated = _with_condition(current, conditions, status, reason, message)
        if updated is None:
            return True
        try:
            await store.update_status(updated)
        except NotFound:
            return False
        except Conflict:
            continue
        return True
    raise Conflict(f"status of {describe_key(key)} kept changing while {SOURCE_SYNCED} was set")


def _with_condition(
    current: Resource, conditions: list[Condition], status: str, reason: str, message: str
) -> Resource | None:
    """Return ``current`` with the new condition, or None when it already reads the same."""
    previous = _find(conditions, SOURCE_SYNCED)
    if previous is not None:
        if (previous.status, previous.reason, previous.message) == (status, reason, message):
            return None
    condition = Condition(
        type=SOURCE_SYNCED,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=_transition_time(previous, status),
        observed_generation=current.metadata.generation,
    )
    others = [item for item in conditions if item.type != SOURCE_SYNCED]
    new_status = current.status.model_copy(update={"conditions": [*others, condition]})
    return current.model_copy(update={"status": new_status})


def _find(conditions: list[Condition], type_: str) -> Condition | None:
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None


def _transition_time(previous: Condition | None, status: str) -> datetime | None:
    if previous is not None and previous.status == status:
        return previous.last_transition_time
    return utcnow()
