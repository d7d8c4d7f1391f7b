"""Terminal rendering: ages, tables, YAML quoting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentic_sandbox.cli.output import (
    dump_yaml,
    format_age,
    format_duration,
    render_fields,
    render_table,
)
from agentic_sandbox.crds.manifest import load_manifests


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (45, "45s"),
        (59.9, "59s"),
        (60, "1m"),
        (3 * 60 + 59, "3m"),
        (3599, "59m"),
        (2 * 3600, "2h"),
        (23 * 3600 + 3599, "23h"),
        (5 * 86400, "5d"),
        (364 * 86400, "364d"),
        (2 * 365 * 86400, "2y"),
        (-30, "0s"),
    ],
)
def test_duration_like_kubectl(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_age_of_wire_timestamp() -> None:
    now = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
    created = (now - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")

    assert format_age(created, now=now) == "3m"


@pytest.mark.parametrize("value", [None, "", "yesterday", 5])
def test_age_unknown(value: object) -> None:
    assert format_age(value) == "<unknown>"


def test_table_pads_three_spaces() -> None:
    table = render_table(["NAME", "PHASE"], [["web", "Running"], ["longer", "Pending"]])

    assert table.splitlines() == [
        "NAME     PHASE",
        "web      Running",
        "longer   Pending",
    ]


def test_fields_aligned() -> None:
    lines = render_fields([("Name", "web"), ("Resource Version", "7"), ("Empty", "")], indent=2)

    assert lines == [
        "  Name:              web",
        "  Resource Version:  7",
        "  Empty:",
    ]


def test_yaml_quotes_yaml_1_1_ambiguities() -> None:
    env = {"A": "no", "B": "0755", "C": "1:30", "D": "on", "E": "~", "F": "1e3", "G": "plain"}

    text = dump_yaml({"env": env})

    assert text.splitlines() == [
        "env:",
        "  A: 'no'",
        "  B: '0755'",
        "  C: '1:30'",
        "  D: 'on'",
        "  E: '~'",
        "  F: '1e3'",
        "  G: plain",
    ]


def test_yaml_keeps_key_order_and_round_trips() -> None:
    document = {
        "apiVersion": "sandbox.agentic.dev/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": "web"},
        "spec": {"image": "agentic/demo:dev", "env": {"A": "no", "B": "0755", "C": "true"}},
    }

    text = dump_yaml(document)

    assert text.splitlines()[:2] == ["apiVersion: sandbox.agentic.dev/v1alpha1", "kind: Instance"]
    (parsed,) = load_manifests(text, source="<test>")
    assert parsed.resource.to_wire()["spec"]["env"] == {"A": "no", "B": "0755", "C": "true"}
