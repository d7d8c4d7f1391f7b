"""What the next sync of a GitSource would change, for ``sandboxctl diff --gitsource``.

The preview fetches and plans like a sync (same code), then compares each planned object with
the live one instead of writing it. Actions: ``create``, ``update``, ``prune``, and
``conflict`` for an object another source owns, which the sync would leave alone. Unchanged
objects are left out.
"""

from __future__ import annotations

from typing import Any

from agentic_sandbox.crds.gitsource import GitSource
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION, Resource
from agentic_sandbox.errors import NotFound
from agentic_sandbox.sources.git_plan import SyncPlan, git_source_id
from agentic_sandbox.sources.git_status import inventory_keys, issue_of
from agentic_sandbox.sources.ownership import ObjectKey
from agentic_sandbox.store.apply import exclusive_claim, owner_of
from agentic_sandbox.store.base import Store


def comparable(obj: Resource | None) -> dict[str, Any] | None:
    """Return the parts of an object a sync writes, without the source annotation."""
    if obj is None:
        return None
    wire = obj.to_wire()
    metadata = wire.get("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(SOURCE_ANNOTATION, None)
    return {
        "metadata": {"labels": metadata.get("labels") or {}, "annotations": annotations},
        "spec": wire.get("spec"),
    }


async def _live(store: Store, key: ObjectKey) -> Resource | None:
    try:
        return await store.get(*key)
    except NotFound:
        return None


def _change(key: ObjectKey, action: str, file: str | None, **parts: Any) -> dict[str, Any]:
    kind, namespace, name = key
    change = {"action": action, "kind": kind, "namespace": namespace, "name": name}
    if file:
        change["file"] = file
    change.update(parts)
    return change


async def preview_plan(store: Store, source: GitSource, plan: SyncPlan) -> dict[str, Any]:
    """Compare ``plan`` with the store and return the changes a sync would make."""
    namespace, name = source.metadata.namespace, source.metadata.name
    inventory = inventory_keys(source.status)
    changes: list[dict[str, Any]] = []
    for key in sorted(plan.desired):
        desired = plan.desired[key]
        live = await _live(store, key)
        claim = exclusive_claim(git_source_id(namespace, name, desired.file))
        before, after = comparable(live), comparable(desired.resource)
        if live is not None and key not in inventory and not claim(live):
            owner = owner_of(live)
            changes.append(_change(key, "conflict", desired.file, owner=owner, live=before))
        elif live is None:
            changes.append(_change(key, "create", desired.file, live=None, desired=after))
        elif before != after:
            changes.append(_change(key, "update", desired.file, live=before, desired=after))
    for key in plan.prune:
        live = plan.owned[key]
        changes.append(_change(key, "prune", None, live=comparable(live), desired=None))
    return {
        "commit": plan.commit,
        "guard": plan.guard,
        "prune": source.spec.prune,
        "manifestErrors": [
            issue_of(file, error).model_dump(mode="json", by_alias=True, exclude_none=True)
            for file, error in sorted(plan.issues.items())
        ],
        "changes": changes,
    }
