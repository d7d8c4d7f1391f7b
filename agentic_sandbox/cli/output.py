"""Rendering for the terminal: kubectl-style tables, ages, aligned fields, YAML and JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import SafeRepresenter
from ruamel.yaml.resolver import VersionedResolver

NONE = "<none>"
STR_TAG = "tag:yaml.org,2002:str"
_YAML_1_1 = VersionedResolver(version=(1, 1))
# Spaces between table columns, as kubectl prints them.
COLUMN_GAP = 3


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render left-aligned columns separated by COLUMN_GAP spaces, with no trailing spaces."""
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[index] + COLUMN_GAP) for index, cell in enumerate(row)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def render_fields(fields: Sequence[tuple[str, str]], *, indent: int = 0) -> list[str]:
    """Render ``Key:  value`` lines with the values of one block aligned."""
    if not fields:
        return []
    width = max(len(key) for key, _ in fields) + 1
    prefix = " " * indent
    return [f"{prefix}{(key + ':').ljust(width)}  {value}".rstrip() for key, value in fields]


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp from the wire; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_duration(seconds: float) -> str:
    """Format seconds in the largest whole unit: 45s, 3m, 2h, 5d, 2y.

    The units follow ShortHumanDuration of Kubernetes' apimachinery. A negative duration, from
    clock skew between client and server, shows as 0s.
    """
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h"
    days = hours // 24
    if days < 365:
        return f"{days}d"
    return f"{days // 365}y"


def format_age(value: object, *, now: datetime | None = None) -> str:
    """Format the time since a wire timestamp; ``<unknown>`` when there is none."""
    then = parse_time(value)
    if then is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return format_duration((now - then).total_seconds())


def format_labels(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return NONE
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


class _QuotingRepresenter(SafeRepresenter):
    """Quote every string that a YAML 1.1 reader would take for a bool, number or null.

    YAML 1.2 reads ``no``, ``on`` and ``1:30`` as strings, so a 1.2 dumper leaves them bare, but
    many tools still read YAML 1.1 and would turn them into ``false``, ``true`` and ``90``.
    """

    def represent_str(self, data: str) -> Any:
        if _YAML_1_1.resolve(ScalarNode, data, (True, False)) != STR_TAG:
            return self.represent_scalar(STR_TAG, data, style="'")
        return super().represent_str(data)


_QuotingRepresenter.add_representer(str, _QuotingRepresenter.represent_str)


def dump_yaml(data: Any) -> str:
    """Dump as block-style YAML, keeping key order and quoting ambiguous strings."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _QuotingRepresenter
    # ruamel.yaml annotates both attributes as None, though they take booleans.
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def text_or_none(value: object) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return NONE
    return str(value)
