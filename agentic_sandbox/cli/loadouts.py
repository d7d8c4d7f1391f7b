"""``sandboxctl get loadouts`` and ``sandboxctl describe loadout NAME``.

Both read the server's loadout catalog, which merges the files of the loadout directory with
the Loadout resources of one namespace. ``describe`` prints the merged spec in the order the
merge produced it (list items are never reordered), each value followed by the loadout that set
it, and the fields that an explicit null unset.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from agentic_sandbox.cli.client import ApiClient, CliError
from agentic_sandbox.cli.output import NONE, dump_json, dump_yaml, render_fields, render_table
from agentic_sandbox.cli.tables import format_cpus, loadout_headers, loadout_row, section

DEFAULT_NAMESPACE = "default"
# Spaces between the longest value of a block and the loadout that set each value.
ORIGIN_GAP = 3
# Rows longer than this many characters do not widen the origin column of the others.
ORIGIN_COLUMN_MAX = 80
# One line of the resolved spec and the loadout that set its value, if it has one.
Row = tuple[str, str | None]


def _reject_instance_options(args: argparse.Namespace) -> None:
    for option, given in (
        ("--all-namespaces", getattr(args, "all_namespaces", False)),
        ("--selector", getattr(args, "selector", None)),
        ("--phase", getattr(args, "phase", None)),
    ):
        if given:
            raise CliError(
                f"{option} does not apply to loadouts; list the loadouts of one namespace "
                "with -n NAMESPACE"
            )


def get_loadouts(args: argparse.Namespace, client: ApiClient) -> int:
    """List loadouts (or show one) as a table, names, YAML or JSON."""
    _reject_instance_options(args)
    namespace = args.namespace or DEFAULT_NAMESPACE
    if args.name:
        document = client.get_loadout(namespace, args.name)
        items = [document]
    else:
        document = client.list_loadouts(namespace=namespace)
        items = [item for item in document.get("items") or [] if isinstance(item, dict)]

    if args.output == "json":
        print(dump_json(document))
        return 0
    if args.output == "yaml":
        print(dump_yaml(document), end="")
        return 0
    if not items:
        print(f"No loadouts found in namespace {namespace}.", file=sys.stderr)
        return 0
    if args.output == "name":
        for item in items:
            print(f"loadout/{item.get('name', '')}")
        return 0

    wide = args.output == "wide"
    rows = [loadout_row(item, wide=wide) for item in items]
    print(render_table(loadout_headers(wide=wide), rows))
    for item in items:
        if item.get("error"):
            print(f"warning: loadout {item.get('name')}: {item['error']}", file=sys.stderr)
    return 0


def run_describe_loadout(args: argparse.Namespace, client: ApiClient) -> int:
    namespace = args.namespace or DEFAULT_NAMESPACE
    print(describe_loadout_text(client.get_loadout(namespace, args.name)))
    return 0


def describe_loadout_text(detail: Mapping[str, Any]) -> str:
    """Render a loadout detail document (``GET /api/v1/loadouts/NAME``) as ``describe`` text."""
    resolved = section(detail, "resolved")
    source = str(detail.get("source", ""))
    if detail.get("line") is not None:
        source += f":{detail['line']}"
    fields = [("Name", str(detail.get("name", ""))), ("Source", source)]
    if detail.get("overrides"):
        fields.append(("Overrides", str(detail["overrides"])))
    fields += [
        ("Extends", ", ".join(detail.get("extends") or []) or NONE),
        ("Chain", " -> ".join(resolved.get("chain") or []) or NONE),
    ]
    if detail.get("error"):
        fields.append(("Error", str(detail["error"])))
    lines = render_fields(fields)
    if not resolved:
        return "\n".join(lines)

    lines += _summary_lines(detail)
    spec = section(resolved, "spec")
    lines.append("Resolved Spec:" + ("" if spec else f"  {NONE}"))
    lines += _aligned(_spec_rows(spec, section(resolved, "setBy"), depth=1))
    unset = section(resolved, "unsetBy")
    lines.append("Unset:" + ("" if unset else f"  {NONE}"))
    lines += _aligned([(f"  {path}", f"by {by}") for path, by in unset.items()])
    return "\n".join(lines)


def _summary_lines(detail: Mapping[str, Any]) -> list[str]:
    """Return the merged sizes with defaults applied, as ``get loadouts`` shows them."""
    fields = [
        ("CPUs", format_cpus(detail.get("cpus"))),
        ("Memory", str(detail.get("memory") or NONE)),
        ("Disk", str(detail.get("disk") or "<base image size>")),
        ("Base Image", str(detail.get("baseImage") or NONE)),
        ("Kernel", str(detail.get("kernel") or NONE)),
    ]
    return ["Effective:", *render_fields(fields, indent=2)]


def _spec_rows(spec: Mapping[str, Any], set_by: Mapping[str, Any], *, depth: int) -> list[Row]:
    """Return ``(text, origin)`` rows of ``spec`` in its own order, nested by indentation."""
    indent = "  " * depth
    rows: list[Row] = []
    for key, value in spec.items():
        origin = set_by.get(key)
        if isinstance(value, dict):
            rows.append((f"{indent}{key}:", None))
            nested = origin if isinstance(origin, dict) else {}
            rows += _spec_rows(value, nested, depth=depth + 1)
        elif isinstance(value, list):
            rows.append((f"{indent}{key}:", None))
            origins = origin if isinstance(origin, list) else []
            for index, item in enumerate(value):
                item_origin = origins[index] if index < len(origins) else None
                rows += _item_rows(item, _origin_text(item_origin), indent=indent + "  ")
        else:
            rows.append((f"{indent}{key}: {_value_text(value)}", _origin_text(origin)))
    return rows


def _item_rows(item: object, origin: str | None, *, indent: str) -> list[Row]:
    """Return the rows of one list item; a mapping (a writeFiles entry) gets a row per key."""
    if not isinstance(item, dict) or not item:
        return [(f"{indent}- {_value_text(item)}", origin)]
    lines = [f"{key}: {_value_text(value)}" for key, value in item.items()]
    rows: list[Row] = [(f"{indent}- {lines[0]}", origin)]
    rows += [(f"{indent}  {line}", None) for line in lines[1:]]
    return rows


def _origin_text(origin: object) -> str | None:
    return f"from {origin}" if isinstance(origin, str) else None


def _value_text(value: object) -> str:
    """Show a value on one line: plain strings bare, anything else (or odd strings) as JSON."""
    if isinstance(value, str) and value and value == value.strip() and "\n" not in value:
        return value
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, ensure_ascii=False)


def _aligned(rows: Sequence[Row]) -> list[str]:
    """Render rows with the origins in one column, ORIGIN_GAP spaces after the widest text.

    A row longer than ORIGIN_COLUMN_MAX has its origin ORIGIN_GAP spaces after its own end.
    """
    widths = [len(text) for text, origin in rows if origin and len(text) <= ORIGIN_COLUMN_MAX]
    width = max(widths, default=0)
    return [
        f"{text.ljust(width + ORIGIN_GAP)}({origin})" if origin else text for text, origin in rows
    ]
