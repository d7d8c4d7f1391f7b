"""The origin of each value of a resolved loadout (the layer that set it), for ``describe``.

The walk repeats the merge rules of ``crds.loadout_merge`` over the layers as written, but keeps
the name of the loadout behind each value instead of the value. List items are then matched to
the merged list in order, so items that the merge dropped as repeats (``packages``) keep the
origin of their first occurrence without this module knowing which lists drop repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A list's items paired with the loadout that added each one, in merge order.
_Items = list[tuple[Any, str]]


@dataclass(frozen=True)
class LoadoutOrigins:
    """The origin of every value of a merged loadout spec."""

    # The merged spec's shape with each scalar replaced by the name of the loadout that set it;
    # a list has one name per item. None marks a value whose origin was not found.
    set_by: dict[str, Any]
    # Dotted wire paths (``env.DEBUG``) that an explicit null unset, with the loadout that
    # wrote the null. A path that a later layer set again is not listed.
    unset_by: dict[str, str]


def trace_origins(
    layers: Sequence[tuple[str, dict[str, Any]]], merged: dict[str, Any]
) -> LoadoutOrigins:
    """Trace each value of ``merged`` to the layer that set it.

    ``layers`` are ``(loadout name, spec as written)`` pairs in merge order, without
    ``extends``; ``merged`` is the resolved spec as written (``LoadoutSpec.written()``).
    """
    origins: dict[str, Any] = {}
    unset_by: dict[str, str] = {}
    for name, layer in layers:
        _apply_layer(origins, layer, name=name, unset_by=unset_by, prefix="")
    return LoadoutOrigins(set_by=_shape(origins, merged), unset_by=unset_by)


def _apply_layer(
    origins: dict[str, Any],
    layer: dict[str, Any],
    *,
    name: str,
    unset_by: dict[str, str],
    prefix: str,
) -> None:
    for key, value in layer.items():
        path = prefix + key
        if value is None:
            origins.pop(key, None)
            unset_by[path] = name
            continue

        unset_by.pop(path, None)
        inherited = origins.get(key)
        if isinstance(value, dict):
            nested = inherited if isinstance(inherited, dict) else {}
            _apply_layer(nested, value, name=name, unset_by=unset_by, prefix=path + ".")
            origins[key] = nested
        elif isinstance(value, list):
            items: _Items = inherited if isinstance(inherited, list) else []
            origins[key] = [*items, *((item, name) for item in value)]
        else:
            origins[key] = name


def _shape(origins: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    for key, value in merged.items():
        origin = origins.get(key)
        if isinstance(value, dict):
            shaped[key] = _shape(origin if isinstance(origin, dict) else {}, value)
        elif isinstance(value, list):
            shaped[key] = _match_items(origin if isinstance(origin, list) else [], value)
        else:
            shaped[key] = origin if isinstance(origin, str) else None
    return shaped


def _match_items(items: _Items, merged: list[Any]) -> list[str | None]:
    """Return the origin of each merged item: the next equal item of ``items``, in order."""
    names: list[str | None] = []
    position = 0
    for value in merged:
        for index in range(position, len(items)):
            if items[index][0] == value:
                names.append(items[index][1])
                position = index + 1
                break
        else:
            names.append(None)
    return names
