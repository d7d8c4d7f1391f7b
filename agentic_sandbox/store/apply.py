"""Apply desired state to a store, the way every source (files, API, git) writes objects.

``apply`` creates a missing object, or copies the caller-owned parts of the desired object
(labels, annotations, spec) onto the stored one and writes only when something changed. The
store keeps the rest: uid, resourceVersion, generation, timestamps, finalizers and status.
Writes use the stored resourceVersion as a precondition, and a Conflict is retried from a
fresh read a few times.

The annotation ``crds.meta.SOURCE_ANNOTATION`` records which source wrote an object, so a
source deletes and lists only its own objects. Its value is a source id: ``api``,
``file:<path>`` (the directory source) or ``gitsource:<namespace>/<name>:<file>``.
``source_owner`` maps a source id to the writer that owns the object; ``apply`` with a
``claim`` check rejects a write to an object another writer owns with OwnedByOtherSource.

NOTE: apply replaces all annotations with the desired ones, so an annotation written by
anything other than the applying source is dropped on the next change from that source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum

from agentic_sandbox.crds.meta import SOURCE_ANNOTATION, Resource
from agentic_sandbox.errors import AlreadyExists, Conflict, NotFound, OwnedByOtherSource
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

# Write attempts before a Conflict is passed to the caller.
APPLY_ATTEMPTS = 5


class ApplyOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


# Decides whether a source may write to the stored object it is given.
Claim = Callable[[Resource], bool]


def source_owner(source: str) -> str:
    """Return the writer a source id belongs to: the unit of ownership between sources.

    Every file of the directory source is the writer ``file`` (the directory source settles
    which of its files owns an object itself). Every file of one GitSource is the writer
    ``gitsource:<namespace>/<name>``. Any other id is its own writer.
    """
    scheme, separator, rest = source.partition(":")
    if not separator:
        return source
    if scheme == "gitsource":
        return f"{scheme}:{rest.partition(':')[0]}"
    return scheme


def owner_of(obj: Resource) -> str | None:
    """Return the source id recorded on ``obj``, or None when no source wrote it."""
    return obj.metadata.annotations.get(SOURCE_ANNOTATION) or None


def exclusive_claim(source: str) -> Claim:
    """Return a claim check that lets ``source`` write only objects no other writer owns.

    Objects without a source annotation, and objects being deleted, are free to take.
    """
    writer = source_owner(source)

    def check(current: Resource) -> bool:
        owner = owner_of(current)
        if owner is None or current.metadata.deletion_timestamp is not None:
            return True
        return source_owner(owner) == writer

    return check


async def apply(
    store: Store,
    desired: Resource,
    *,
    source: str | None = None,
    claim: Claim | None = None,
) -> tuple[Resource, ApplyOutcome]:
    """Create ``desired`` or bring the stored object's labels, annotations and spec to it.

    Returns the stored object and what happened. An object that is being deleted is updated
    like any other and still goes away when its finalizers are removed.
    With ``claim``, an existing object is written only when ``claim`` accepts it; the check
    and the write see the same resourceVersion, so an object taken over in between is left
    alone. Raises OwnedByOtherSource when the claim is rejected, and Conflict when other
    writers won every attempt.
    """
    if source is not None:
        desired = _with_source(desired, source)
    kind = desired.kind
    namespace, name = desired.metadata.namespace, desired.metadata.name

    conflict: Conflict | None = None
    for _ in range(APPLY_ATTEMPTS):
        try:
            current = await store.get(kind, namespace, name)
        except NotFound:
            try:
                return await store.create(desired), ApplyOutcome.CREATED
            except AlreadyExists:
                continue  # another writer created it first: merge onto theirs

        if claim is not None and not claim(current):
            owner = owner_of(current) or "another source"
            raise OwnedByOtherSource(f"{kind} {desired.key} is managed by {owner}", owner=owner)
        merged = _merge(current, desired)
        if _owned_parts(merged) == _owned_parts(current):
            return current, ApplyOutcome.UNCHANGED
        try:
            return await store.update(merged), ApplyOutcome.UPDATED
        except Conflict as error:
            conflict = error
        except NotFound:
            continue  # deleted since the read: create it again

    logger.warning(
        "apply failed after repeated conflicts",
        extra={"instance": desired.key, "kind": kind, "attempts": APPLY_ATTEMPTS},
    )
    if conflict is None:
        conflict = Conflict(f"{kind} {desired.key} kept changing while it was applied")
    raise conflict


async def delete_if_owned(
    store: Store,
    kind: str,
    namespace: str,
    name: str,
    source: str,
    *,
    whole_writer: bool = False,
) -> bool:
    """Delete the object when its source annotation is ``source``.

    With ``whole_writer``, any source id of the same writer (``source_owner``) matches, such
    as another file of the same GitSource.
    Returns True when the object was deleted or marked for deletion, False when it is missing
    or belongs to another source. The delete is conditional on the resourceVersion that was
    checked, so an object taken over by another source in between is left alone.
    """
    for _ in range(APPLY_ATTEMPTS):
        try:
            current = await store.get(kind, namespace, name)
        except NotFound:
            return False
        owner = owner_of(current)
        if whole_writer:
            owned = owner is not None and source_owner(owner) == source_owner(source)
        else:
            owned = owner == source
        if not owned:
            return False
        try:
            await store.delete(
                kind, namespace, name, resource_version=current.metadata.resource_version
            )
        except NotFound:
            return False
        except Conflict:
            continue
        return True
    raise Conflict(f"{kind} {namespace}/{name} kept changing while it was deleted")


async def list_by_source(store: Store, kind: str, source: str) -> list[Resource]:
    """List the objects of ``kind`` in every namespace whose source annotation is ``source``."""
    listing = await store.list(kind)
    return [
        item for item in listing.items if item.metadata.annotations.get(SOURCE_ANNOTATION) == source
    ]


def _with_source(desired: Resource, source: str) -> Resource:
    annotations = {**desired.metadata.annotations, SOURCE_ANNOTATION: source}
    metadata = desired.metadata.model_copy(update={"annotations": annotations})
    return desired.model_copy(update={"metadata": metadata})


def _merge(current: Resource, desired: Resource) -> Resource:
    """Copy labels, annotations and spec of ``desired`` onto ``current``; keep the rest."""
    metadata = current.metadata.model_copy(
        update={
            "labels": dict(desired.metadata.labels),
            "annotations": dict(desired.metadata.annotations),
        }
    )
    return current.model_copy(update={"metadata": metadata, "spec": desired.spec})


def _owned_parts(obj: Resource) -> tuple[object, object, object]:
    wire = obj.to_wire()
    metadata = wire["metadata"]
    return metadata.get("labels", {}), metadata.get("annotations", {}), wire.get("spec")
