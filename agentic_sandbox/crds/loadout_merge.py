"""Resolution of a loadout's ``extends`` chain into one complete profile.

Order: the parents of a loadout are applied depth-first and left to right, then the loadout
itself. A shared ancestor (diamond inheritance) is applied once, at its first position in that
order: for ``d extends [b, c]`` where both ``b`` and ``c`` extend ``a``, the order is
``a, b, c, d``.

Rules, applied layer by layer to the spec as each loadout wrote it:

- a scalar (such as ``baseImage`` or ``network.mode``): the last layer that sets it wins;
- a mapping (``resources``, ``env``, ``network``, ``readiness``): merged key by key, recursively;
- a list (``packages``, ``writeFiles``, ``runcmd``): the layer's items are appended after the
  inherited ones. Items are never reordered. ``packages`` then drops repeated names, keeping the
  first occurrence; ``runcmd`` and ``writeFiles`` keep every item;
- an explicit ``null`` unsets the inherited value, so the field falls back to its default (or,
  for a list, starts again from empty);
- ``extends`` itself is not inherited.

A cycle is an error naming the chain (``a -> b -> a``), and so is a missing parent.

The only I/O here is ``load_loadout_dir`` reading loadout files.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentic_sandbox.crds.instance import DEFAULT_CPUS, DEFAULT_MEMORY
from agentic_sandbox.crds.loadout import (
    DEFAULT_READINESS_TIMEOUT_SECONDS,
    Loadout,
    LoadoutSpec,
    NetworkMode,
)
from agentic_sandbox.crds.manifest import YAML_SUFFIXES, load_manifest_file
from agentic_sandbox.crds.quantity import parse_memory
from agentic_sandbox.errors import InvalidResource, ManifestError

# Lists whose repeated items are dropped after merging, keeping the first occurrence.
_DEDUPLICATED_LISTS = frozenset({"packages"})


@dataclass(frozen=True)
class ResolvedLoadout:
    """A loadout with every ``extends`` parent merged in.

    ``spec.base_image`` may still be None: the runtime that boots the loadout checks for it.
    """

    name: str
    # The loadouts applied, in order; the last is ``name`` itself.
    chain: tuple[str, ...]
    spec: LoadoutSpec

    @property
    def cpus(self) -> float:
        resources = self.spec.resources
        return resources.cpus if resources and resources.cpus else DEFAULT_CPUS

    @property
    def memory_bytes(self) -> int:
        memory = self.spec.resources.memory if self.spec.resources else None
        return parse_memory(memory or DEFAULT_MEMORY)

    @property
    def network_mode(self) -> NetworkMode:
        network = self.spec.network
        return network.mode if network and network.mode else NetworkMode.USER

    @property
    def readiness_timeout_seconds(self) -> int:
        readiness = self.spec.readiness
        if readiness and readiness.timeout_seconds:
            return readiness.timeout_seconds
        return DEFAULT_READINESS_TIMEOUT_SECONDS


def resolve(name: str, lookup: Callable[[str], Loadout]) -> ResolvedLoadout:
    """Merge loadout ``name`` with its ``extends`` parents.

    ``lookup`` returns the loadout of a name and raises KeyError when there is none, so the
    caller decides which namespace or directory the names refer to. Raises
    InvalidResource for a cycle, a missing loadout, or a merged spec that is invalid.
    """
    order: list[Loadout] = []
    _visit(name, lookup, stack=[], seen=set(), order=order, extended_by=None)

    merged: dict[str, Any] = {}
    for loadout in order:
        layer = loadout.spec.written()
        layer.pop("extends", None)
        merged = merge_layer(merged, layer)

    chain = tuple(loadout.metadata.name for loadout in order)
    try:
        spec = LoadoutSpec.model_validate(merged)
    except ValidationError as error:
        raise InvalidResource(
            f"loadout {name!r} merged from {', '.join(chain)} is invalid: "
            f"{error.error_count()} field errors, first: {error.errors()[0]['msg']}"
        ) from None
    return ResolvedLoadout(name=name, chain=chain, spec=spec)


def _visit(
    name: str,
    lookup: Callable[[str], Loadout],
    *,
    stack: list[str],
    seen: set[str],
    order: list[Loadout],
    extended_by: str | None,
) -> None:
    if name in stack:
        cycle = " -> ".join([*stack[stack.index(name) :], name])
        raise InvalidResource(f"loadout extends chain is a cycle: {cycle}; remove one of the links")
    if name in seen:
        return
    try:
        loadout = lookup(name)
    except KeyError:
        if extended_by is None:
            raise InvalidResource(f"loadout {name!r} not found") from None
        raise InvalidResource(
            f"loadout {extended_by!r} extends {name!r}, which is not found; "
            f"define loadout {name!r} or remove it from extends"
        ) from None

    stack.append(name)
    for parent in loadout.spec.extends or []:
        _visit(parent, lookup, stack=stack, seen=seen, order=order, extended_by=name)
    stack.pop()
    seen.add(name)
    order.append(loadout)


def merge_layer(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with one more layer applied; a null in ``layer`` removes the key."""
    result = copy.deepcopy(base)
    for key, value in layer.items():
        inherited = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(inherited, dict):
            result[key] = merge_layer(inherited, value)
        elif isinstance(value, dict):
            result[key] = merge_layer({}, value)
        elif isinstance(value, list) and isinstance(inherited, list):
            combined = inherited + copy.deepcopy(value)
            result[key] = _first_occurrences(combined) if key in _DEDUPLICATED_LISTS else combined
        elif isinstance(value, list) and key in _DEDUPLICATED_LISTS:
            result[key] = _first_occurrences(copy.deepcopy(value))
        else:
            result[key] = copy.deepcopy(value)
    return result


def _first_occurrences(items: list[Any]) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if item not in kept:
            kept.append(item)
    return kept


def load_loadout_dir(path: str | os.PathLike[str]) -> dict[str, Loadout]:
    """Read every ``*.yaml`` and ``*.yml`` file in ``path`` and return its loadouts by name.

    Raises ManifestError for an invalid file, for a document of another kind, and for a
    loadout name that two files define.
    """
    loadouts: dict[str, Loadout] = {}
    defined_in: dict[str, str] = {}
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in YAML_SUFFIXES)
    for file in files:
        for document in load_manifest_file(file):
            resource = document.resource
            if not isinstance(resource, Loadout):
                raise ManifestError(
                    f"document {document.index + 1} is a {resource.kind}; "
                    "a loadout directory contains only Loadout documents",
                    file=str(file),
                    line=document.line,
                )
            name = resource.metadata.name
            if name in defined_in:
                raise ManifestError(
                    f"loadout {name!r} is already defined in {defined_in[name]}",
                    file=str(file),
                    line=document.line,
                )
            defined_in[name] = str(file)
            loadouts[name] = resource
    return loadouts
