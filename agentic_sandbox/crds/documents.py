"""Raw manifest documents: plain data with a line number for every field path, before validation.

The YAML and JSON readers both produce ``RawDocument`` values, and both enforce the limits below
so that a hostile or broken file fails fast with a clear error instead of exhausting memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# A path into a document, in wire (camelCase) names: ("spec", "mounts", 0, "hostPath").
FieldPath = tuple[str | int, ...]

# Largest manifest text accepted, in bytes for files and in characters for text.
# NOTE: ruamel.yaml's pure-Python parser read typical manifests at about 170 KiB/s in one
# measurement, so a YAML file at this limit can take some 20 s to parse. Callers on an event
# loop should parse in a worker thread.
MAX_MANIFEST_BYTES = 4 * 2**20
# Deepest nesting of mappings and sequences accepted. An Instance needs about 5 levels.
MAX_DEPTH = 64
# Maximum number of nodes that YAML alias expansion may produce in one file, across all its
# documents.
# Nodes written out without aliases are bounded by MAX_MANIFEST_BYTES instead.
MAX_ALIAS_NODES = 10_000


@dataclass(frozen=True)
class RawDocument:
    """One document of a manifest file before validation.

    ``data`` is None for an empty or comment-only document. ``lines`` maps the path of every
    mapping key and sequence item to the 1-based line where it is written.
    """

    index: int
    line: int
    data: object
    lines: dict[FieldPath, int] = field(default_factory=dict)


def format_path(path: FieldPath) -> str:
    """Render a path as ``spec.mounts[0].hostPath``; keys that are not plain names are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("_", "a").replace("-", "a").isalnum() and not part[:1].isdigit():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def line_of(lines: Mapping[FieldPath, int], path: FieldPath) -> int | None:
    """Return the line of ``path``, or of its nearest ancestor that has one."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def line_at_offset(text: str | bytes, offset: int) -> int:
    """Return the 1-based line that contains character (or byte) ``offset`` of ``text``."""
    newline = b"\n" if isinstance(text, bytes) else "\n"
    return text.count(newline, 0, offset) + 1  # type: ignore[arg-type]
