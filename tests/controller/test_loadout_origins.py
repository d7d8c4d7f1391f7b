"""trace_origins: the layer behind each merged value, checked against the real merge."""

from __future__ import annotations

from typing import Any

from agentic_sandbox.controller.loadout_origins import LoadoutOrigins, trace_origins
from agentic_sandbox.crds.loadout_merge import merge_layer


def merged_origins(*layers: tuple[str, dict[str, Any]]) -> tuple[dict[str, Any], LoadoutOrigins]:
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = merge_layer(merged, layer)
    return merged, trace_origins(list(layers), merged)


def test_scalar_last_layer_wins() -> None:
    _, origins = merged_origins(
        ("base", {"baseImage": "/a.qcow2", "kernel": "/vmlinuz"}),
        ("child", {"baseImage": "/b.qcow2"}),
    )

    assert origins.set_by == {"baseImage": "child", "kernel": "base"}
    assert origins.unset_by == {}


def test_list_items_keep_their_layer() -> None:
    _, origins = merged_origins(
        ("base", {"runcmd": ["one", ["two", "args"]]}),
        ("child", {"runcmd": ["three"]}),
    )

    assert origins.set_by["runcmd"] == ["base", "base", "child"]


def test_repeated_package_keeps_first_layer() -> None:
    merged, origins = merged_origins(
        ("base", {"packages": ["curl", "git"]}),
        ("child", {"packages": ["git", "jq"]}),
    )

    assert merged["packages"] == ["curl", "git", "jq"]
    assert origins.set_by["packages"] == ["base", "base", "child"]


def test_null_unsets_and_is_recorded() -> None:
    merged, origins = merged_origins(
        ("base", {"env": {"DEBUG": "no", "LANG": "C"}}),
        ("child", {"env": {"DEBUG": None}}),
    )

    assert merged["env"] == {"LANG": "C"}
    assert origins.set_by["env"] == {"LANG": "base"}
    assert origins.unset_by == {"env.DEBUG": "child"}


def test_value_set_again_after_null() -> None:
    _, origins = merged_origins(
        ("base", {"kernel": "/vmlinuz"}),
        ("middle", {"kernel": None}),
        ("leaf", {"kernel": "/vmlinuz-2"}),
    )

    assert origins.set_by == {"kernel": "leaf"}
    assert origins.unset_by == {}


def test_null_list_starts_again() -> None:
    merged, origins = merged_origins(
        ("base", {"packages": ["curl"]}),
        ("middle", {"packages": None}),
        ("leaf", {"packages": ["jq"]}),
    )

    assert merged["packages"] == ["jq"]
    assert origins.set_by["packages"] == ["leaf"]
