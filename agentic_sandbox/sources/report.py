"""User-facing records of the directory source: events, ``SourceSynced`` conditions, and the
error of a file that declares an object another file owns.

Events and conditions come from these functions only, never from log records.
"""

from __future__ import annotations

import logging
from typing import Protocol

from agentic_sandbox.crds.event import Event, EventName, EventSeverity
from agentic_sandbox.errors import FieldError, ManifestError, StoreError
from agentic_sandbox.sources.ownership import Duplicate, ObjectKey, describe_key
from agentic_sandbox.sources.status import (
    REASON_APPLIED,
    REASON_INVALID_MANIFEST,
    set_source_synced,
)
from agentic_sandbox.store.apply import ApplyOutcome
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

SOURCE_PREFIX = "file:"
REASON_REMOVED_FROM_SOURCE = "RemovedFromSource"


class EventSink(Protocol):
    """The destination of user-facing events, normally the store's event log."""

    async def append(self, event: Event) -> Event: ...


def source_id(path: str) -> str:
    """Return the source annotation value of objects applied from the file at ``path``."""
    return SOURCE_PREFIX + path


async def record_applied(
    store: Store,
    event_log: EventSink,
    path: str,
    keys: set[ObjectKey],
    outcomes: list[ApplyOutcome],
    *,
    recovered: bool,
) -> None:
    """Append ``source.applied`` when the file changed objects or is valid again; in the
    second case also set ``SourceSynced`` back to True on its objects."""
    created = outcomes.count(ApplyOutcome.CREATED)
    updated = outcomes.count(ApplyOutcome.UPDATED)
    if not recovered and not created and not updated:
        return
    counts = f"{created} created, {updated} updated"
    message = f"{path} is valid again; {counts}" if recovered else f"applied {path}: {counts}"
    if recovered:
        for key in sorted(keys):
            await set_source_synced(store, key, synced=True, reason=REASON_APPLIED, message=message)
    await event_log.append(
        Event(
            name=EventName.SOURCE_APPLIED,
            reason=REASON_APPLIED,
            message=message,
            source=source_id(path),
            details={"file": path},
        )
    )


async def record_invalid(
    store: Store,
    event_log: EventSink,
    path: str,
    keys: set[ObjectKey],
    error: ManifestError,
    *,
    source: str | None = None,
) -> None:
    """Append ``source.invalid`` and set ``SourceSynced`` False on the file's objects.

    ``source`` is the source id the event names; the default is the directory file's.
    """
    details = {"file": path}
    line = error_line(error)
    if line is not None:
        details["line"] = str(line)
    if error.errors and error.errors[0].path:
        details["field"] = error.errors[0].path
    await event_log.append(
        Event(
            name=EventName.SOURCE_INVALID,
            severity=EventSeverity.WARNING,
            reason=REASON_INVALID_MANIFEST,
            message=str(error),
            source=source or source_id(path),
            details=details,
        )
    )
    for key in sorted(keys):
        await set_source_synced(
            store, key, synced=False, reason=REASON_INVALID_MANIFEST, message=str(error)
        )


async def record_deleted(
    event_log: EventSink,
    path: str,
    key: ObjectKey,
    *,
    file_removed: bool,
    source: str | None = None,
) -> None:
    """Log and append ``source.pruned`` for an object deleted because its file let it go.

    ``source`` is the source id the event names; the default is the directory file's.
    """
    instance = f"{key[1]}/{key[2]}"
    logger.info("source object deleted", extra={"instance": instance, "kind": key[0], "file": path})
    reason = "the file was removed" if file_removed else "the file no longer declares it"
    try:
        await event_log.append(
            Event(
                name=EventName.SOURCE_PRUNED,
                reason=REASON_REMOVED_FROM_SOURCE,
                message=f"deleted {describe_key(key)}: {reason} ({path})",
                instance=instance,
                source=source or source_id(path),
                details={"file": path},
            )
        )
    except StoreError as error:
        # The delete happened; only its record is lost, and retrying would not bring it back.
        logger.warning("event append failed: %s", error, extra={"file": path})


def duplicate_error(path: str, duplicates: list[Duplicate]) -> ManifestError:
    """Build the error of a file that declares objects owned by other files."""
    return _owner_error(
        path,
        duplicates,
        claimed="is already declared in",
        fix="declare each object in one file only",
        more="are declared twice",
    )


def owned_elsewhere_error(path: str, duplicates: list[Duplicate]) -> ManifestError:
    """Build the error of a file that declares objects another source owns.

    ``Duplicate.owner`` is the owner's source id here, such as ``api`` or
    ``gitsource:default/fleet:apps/web.yaml``.
    """
    return _owner_error(
        path,
        duplicates,
        claimed="is managed by",
        fix="it was not applied; remove it here, or release it at its owner first",
        more="are managed elsewhere",
    )


def _owner_error(
    path: str, duplicates: list[Duplicate], *, claimed: str, fix: str, more: str
) -> ManifestError:
    first = duplicates[0]
    message = f"{describe_key(first.key)} {claimed} {first.owner}; {fix}"
    if len(duplicates) > 1:
        message += f" ({len(duplicates) - 1} more object(s) {more})"
    errors = [
        FieldError(
            path="metadata.name",
            message=f"{describe_key(dup.key)} {claimed} {dup.owner}",
            value=dup.key[2],
            line=dup.line,
        )
        for dup in duplicates
    ]
    return ManifestError(message, file=path, line=first.line, errors=errors)


def error_line(error: ManifestError) -> int | None:
    if error.line is not None:
        return error.line
    return next((item.line for item in error.errors if item.line is not None), None)
