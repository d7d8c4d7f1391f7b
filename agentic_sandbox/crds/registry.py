"""The kinds this controller serves, and conversion from wire dicts to typed resources."""

from __future__ import annotations

from typing import Any

from agentic_sandbox.crds.gitsource import GitSource
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.loadout import Loadout
from agentic_sandbox.crds.meta import API_VERSION, Resource

KINDS: dict[str, type[Resource]] = {
    Instance.KIND: Instance,
    Loadout.KIND: Loadout,
    GitSource.KIND: GitSource,
}


def resource_class(kind: str) -> type[Resource]:
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"kind {kind!r} is not served here; expected one of: {known}") from None


def resource_from_wire(data: dict[str, Any]) -> Resource:
    """Build a typed resource from a trusted wire dict (the store's own records)."""
    return resource_class(str(data.get("kind"))).model_validate(data)


__all__ = ["API_VERSION", "KINDS", "resource_class", "resource_from_wire"]
