"""Forced deletion: release the runtime finalizer when the sandboxes cannot be removed.

A normal delete waits for the reconciler to remove the sandboxes before the record goes. When
that cannot finish (the daemon is gone for good, an object is wedged), an operator forces it.
The sandboxes left behind then belong to no instance, so the garbage collector removes them
once it can prove they are this controller's.
"""

from __future__ import annotations

import logging

from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import EventName, EventSeverity
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER, Resource
from agentic_sandbox.errors import Conflict, NotFound
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

RELEASE_ATTEMPTS = 5


async def force_delete(
    store: Store,
    recorder: EventRecorder,
    *,
    kind: str,
    namespace: str,
    name: str,
    requested_by: str,
) -> Resource:
    """Delete the object and release its runtime finalizer; return the object as last seen.

    Raises NotFound when the object does not exist.
    """
    last = await store.get(kind, namespace, name)
    marked = await store.delete(kind, namespace, name)
    if marked is None:
        return last  # no finalizers were left: the record is already gone
    last = marked

    for _ in range(RELEASE_ATTEMPTS):
        if RUNTIME_FINALIZER not in last.metadata.finalizers:
            break
        last.metadata.finalizers.remove(RUNTIME_FINALIZER)
        try:
            await store.update(last)
            break
        except Conflict:
            last = await store.get(kind, namespace, name)
        except NotFound:
            break

    logger.warning(
        "finalizer released by forced delete instance=%s uid=%s requested_by=%s",
        last.key,
        last.metadata.uid,
        requested_by,
    )
    await recorder.record(
        EventName.INSTANCE_FORCE_DELETED,
        instance=last,
        reason="ForceDeleted",
        message=(
            f"deletion of {last.key} was forced by {requested_by}; sandboxes that were still "
            "present are left to the garbage collector"
        ),
        severity=EventSeverity.WARNING,
        details={"requestedBy": requested_by},
    )
    return last
