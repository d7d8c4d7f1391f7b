"""User-facing records of the git sync: events for fetch failures, ownership conflicts, drift
and applied commits. Events come from these functions only, never from log records.

Repeated failures are recorded once: the caller keeps the identity of what it last recorded
and calls again only when it changes.
"""

from __future__ import annotations

import logging

from agentic_sandbox.crds.event import Event, EventName, EventSeverity
from agentic_sandbox.errors import StoreError
from agentic_sandbox.sources.ownership import ObjectKey, describe_key
from agentic_sandbox.sources.report import EventSink

logger = logging.getLogger(__name__)

REASON_FETCH_FAILED = "FetchFailed"
REASON_EMPTY_PATH = "EmptyPath"
REASON_OWNED_ELSEWHERE = "OwnedByOtherSource"
REASON_DRIFT_REVERTED = "DriftReverted"
REASON_APPLIED = "Applied"


async def _append(event_log: EventSink, event: Event) -> None:
    try:
        await event_log.append(event)
    except StoreError as error:
        # The sync's writes are kept; only their record is lost, and the next change records again.
        logger.warning("event append failed: %s", error, extra={"source": event.source})


def _instance(key: ObjectKey) -> str | None:
    return f"{key[1]}/{key[2]}" if key[0] == "Instance" else None


async def record_fetch_failed(event_log: EventSink, writer: str, message: str) -> None:
    await _append(
        event_log,
        Event(
            name=EventName.SOURCE_FETCH_FAILED,
            severity=EventSeverity.WARNING,
            reason=REASON_FETCH_FAILED,
            message=message,
            source=writer,
        ),
    )


async def record_empty_path(event_log: EventSink, writer: str, message: str) -> None:
    await _append(
        event_log,
        Event(
            name=EventName.SOURCE_INVALID,
            severity=EventSeverity.WARNING,
            reason=REASON_EMPTY_PATH,
            message=message,
            source=writer,
        ),
    )


async def record_rejected(
    event_log: EventSink, writer: str, key: ObjectKey, *, file: str, owner: str
) -> None:
    """Append ``source.rejected`` for an object the repository declares but another owns."""
    message = (
        f"{describe_key(key)} declared in {file} is managed by {owner}; it was left alone. "
        "Remove it from the repository, or release it at its owner"
    )
    await _append(
        event_log,
        Event(
            name=EventName.SOURCE_REJECTED,
            severity=EventSeverity.WARNING,
            reason=REASON_OWNED_ELSEWHERE,
            message=message,
            instance=_instance(key),
            source=writer,
            details={"file": file, "owner": owner},
        ),
    )


async def record_drift(
    event_log: EventSink, writer: str, key: ObjectKey, *, commit: str, previous_owner: str | None
) -> None:
    """Append ``source.drift_reverted`` for an owned object changed through another channel."""
    how = f"it was taken over by {previous_owner}" if previous_owner else "it was changed"
    message = f"reverted {describe_key(key)} to commit {commit[:12]}: {how} outside {writer}"
    logger.info("drift reverted", extra={"instance": f"{key[1]}/{key[2]}", "source": writer})
    details = {"commit": commit}
    if previous_owner:
        details["previousOwner"] = previous_owner
    await _append(
        event_log,
        Event(
            name=EventName.SOURCE_DRIFT_REVERTED,
            severity=EventSeverity.WARNING,
            reason=REASON_DRIFT_REVERTED,
            message=message,
            instance=_instance(key),
            source=writer,
            details=details,
        ),
    )


async def record_commit_applied(
    event_log: EventSink, writer: str, *, commit: str, created: int, updated: int, pruned: int
) -> None:
    message = f"applied commit {commit[:12]}: {created} created, {updated} updated, {pruned} pruned"
    await _append(
        event_log,
        Event(
            name=EventName.SOURCE_APPLIED,
            reason=REASON_APPLIED,
            message=message,
            source=writer,
            details={"commit": commit},
        ),
    )
