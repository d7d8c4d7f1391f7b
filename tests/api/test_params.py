"""Label selector parsing."""

from __future__ import annotations

import pytest

from agentic_sandbox.api.params import parse_label_selector


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"app": "web"}),
        ("app==web", {"app": "web"}),
        ("app=web, tier = agents", {"app": "web", "tier": "agents"}),
        ("example.com/team=a", {"example.com/team": "a"}),
        ("app=", {"app": ""}),
        ("", {}),
        (",", {}),
    ],
)
def test_selector_parses(selector: str, expected: dict[str, str]) -> None:
    assert parse_label_selector(selector) == expected


@pytest.mark.parametrize(
    "selector", ["app", "app!=web", "=web", "app in (web)", "a=b=c", "bad key=x"]
)
def test_selector_rejects(selector: str) -> None:
    with pytest.raises(ValueError):
        parse_label_selector(selector)
