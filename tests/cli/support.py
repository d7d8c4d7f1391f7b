"""Helpers shared by the CLI tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str


Sandboxctl = Callable[..., Result]


def instance_yaml(name: str = "web", *, image: str = "agentic/demo:dev", env: str = "") -> str:
    """An Instance manifest in YAML; ``env`` is extra indented ``KEY: value`` lines."""
    text = f"""\
        apiVersion: sandbox.agentic.dev/v1alpha1
        kind: Instance
        metadata:
          name: {name}
          labels:
            app: {name}
        spec:
          image: {image}
        """
    text = textwrap.dedent(text)
    if env:
        text += "  env:\n" + textwrap.indent(textwrap.dedent(env), "    ")
    return text


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
