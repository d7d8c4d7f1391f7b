"""JSON merge patch (RFC 7396) and writes guarded by a resourceVersion precondition.

A merge patch is a JSON object laid over the target: a ``null`` member deletes the key, an
object member merges recursively, and any other value (lists included) replaces the target's.
PATCH applies it to the stored manifest (without status), validates the result like a PUT body,
and writes only the caller-owned parts (labels, annotations, spec), the same parts that apply
writes. Server-set metadata and status in a patch are ignored, except ``resourceVersion`` and
``uid``, which act as preconditions.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from agentic_sandbox.api.bodies import read_json_object
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION, Resource
from agentic_sandbox.errors import Conflict, NotFound
from agentic_sandbox.store.apply import ApplyOutcome
from agentic_sandbox.store.base import Store

MERGE_PATCH_MEDIA_TYPE = "application/merge-patch+json"
# Attempts of a patch without a resourceVersion, each re-read after a Conflict.
PATCH_ATTEMPTS = 5


def merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with the RFC 7396 merge patch ``patch`` applied; inputs stay unchanged."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def read_merge_patch(request: Request) -> dict[str, Any]:
    """Read a merge-patch body; raise 415 unless it is sent as application/merge-patch+json."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != MERGE_PATCH_MEDIA_TYPE:
        described = repr(content_type) if content_type else "missing"
        raise ApiProblem(
            415,
            f"Content-Type is {described}; PATCH accepts only a JSON merge patch, sent with "
            f"'Content-Type: {MERGE_PATCH_MEDIA_TYPE}'",
            kind="UnsupportedMediaType",
        )
    return await read_json_object(request)


def patch_resource_version(patch: dict[str, Any]) -> str | None:
    """Return ``metadata.resourceVersion`` of a patch, the precondition it carries, if any."""
    metadata = patch.get("metadata")
    if not isinstance(metadata, dict):
        return None
    version = metadata.get("resourceVersion")
    return None if version is None else str(version)


def stored_manifest(obj: Resource) -> dict[str, Any]:
    """Return the wire form of a stored object without status: what a patch is applied to."""
    wire = obj.to_wire()
    wire.pop("status", None)
    return wire


def conflict(obj: Resource, expected: str) -> Conflict:
    return Conflict(
        f"{obj.kind} {obj.key} was modified: the request has resourceVersion {expected} but "
        f"the stored object has {obj.metadata.resource_version}; read it again and retry"
    )


async def get_expecting(
    store: Store, *, kind: str, namespace: str, name: str, resource_version: str
) -> Resource:
    """Read an object that a request expects at ``resource_version``; raise Conflict otherwise.

    A missing object cannot match a precondition either, so that is a Conflict too.
    """
    try:
        current = await store.get(kind, namespace, name)
    except NotFound:
        raise Conflict(
            f"{kind} {namespace}/{name} does not exist, so the request's resourceVersion "
            f"{resource_version} cannot match; create it without a resourceVersion"
        ) from None
    if current.metadata.resource_version != resource_version:
        raise conflict(current, resource_version)
    return current


def _owned_parts(obj: Resource) -> tuple[object, object, object]:
    wire = obj.to_wire()
    metadata = wire["metadata"]
    return metadata.get("labels", {}), metadata.get("annotations", {}), wire.get("spec")


async def write_owned_parts(
    store: Store, current: Resource, desired: Resource, *, source: str
) -> tuple[Resource, ApplyOutcome]:
    """Write the labels, annotations and spec of ``desired`` onto ``current``.

    The write carries ``current``'s resourceVersion, so the store raises Conflict when the
    object changed since it was read. Returns the stored object and updated or unchanged.
    """
    annotations = {**desired.metadata.annotations, SOURCE_ANNOTATION: source}
    metadata = current.metadata.model_copy(
        update={"labels": dict(desired.metadata.labels), "annotations": annotations}
    )
    merged = current.model_copy(update={"metadata": metadata, "spec": desired.spec})
    if _owned_parts(merged) == _owned_parts(current):
        return current, ApplyOutcome.UNCHANGED
    return await store.update(merged), ApplyOutcome.UPDATED
