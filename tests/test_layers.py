"""Import layering: crds -> store -> runtimes -> controller -> entry surfaces, never backwards.

Entry surfaces (api, agent, sources, cli) never import each other; only the composition root
(``app.py``) and the console entry point (``main.py``) may wire them together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentic_sandbox"
LAYERS = ["crds", "store", "runtimes", "controller"]
SURFACES = ["api", "agent", "sources", "cli"]
# Modules every layer may use.
SHARED = {"errors", "__init__"}


def imported_packages(path: Path) -> set[str]:
    """Return the first-level subpackages of agentic_sandbox that ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "agentic_sandbox" and len(parts) > 1:
                found.add(parts[1])
    return found


def allowed_imports(package: str) -> set[str]:
    if package in LAYERS:
        return set(LAYERS[: LAYERS.index(package) + 1]) | SHARED
    return set(LAYERS) | SHARED | {package}


@pytest.mark.parametrize("package", LAYERS + SURFACES)
def test_package_imports_follow_layers(package: str) -> None:
    violations = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        forbidden = imported_packages(path) - allowed_imports(package)
        if forbidden:
            violations.append(f"{path.relative_to(PACKAGE)} imports {sorted(forbidden)}")
    assert violations == []
