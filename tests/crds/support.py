"""Builders of Instance manifests for the crds tests."""

from __future__ import annotations

import copy
from typing import Any

from agentic_sandbox.crds.meta import API_VERSION


def instance_yaml(spec: str = "  image: alpine:3\n", *, name: str = "web") -> str:
    """Return an Instance manifest; ``spec`` contains the lines under ``spec:``, indented by two."""
    return f"apiVersion: {API_VERSION}\nkind: Instance\nmetadata:\n  name: {name}\nspec:\n{spec}"


def instance_dict(**spec: Any) -> dict[str, Any]:
    """Return an Instance as a wire dict with image alpine:3 plus the given spec fields."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Instance",
        "metadata": {"name": "web"},
        "spec": {"image": "alpine:3", **copy.deepcopy(spec)},
    }
