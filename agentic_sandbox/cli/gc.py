"""``sandboxctl gc``: run a garbage collection pass now, or list what one would remove.

The table has one row per candidate: its type, name, the instance it belonged to, the reason
code and the full reason. After a real pass the RESULT column shows ``removed``, ``kept`` (the
object changed since the listing, with the reason) or ``failed`` (with the error). The exit code
is 1 when any removal failed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agentic_sandbox.cli.client import ApiClient
from agentic_sandbox.cli.output import dump_json, dump_yaml, render_table, text_or_none

HEADERS = ["TYPE", "NAME", "INSTANCE", "REASON", "MESSAGE"]


def _result(item: dict[str, Any]) -> str:
    result = str(item.get("result") or "unknown").lower()
    error = item.get("error")
    return f"{result}: {error}" if error else result


def gc_row(item: dict[str, Any], *, dry_run: bool) -> list[str]:
    row = [
        text_or_none(item.get("type")),
        text_or_none(item.get("name")),
        text_or_none(item.get("instance")),
        text_or_none(item.get("reason")),
        text_or_none(item.get("message")),
    ]
    return row if dry_run else [_result(item), *row]


def run_gc(args: argparse.Namespace, client: ApiClient) -> int:
    document = client.sweep_garbage(dry_run=args.dry_run)
    items = [item for item in document.get("items") or [] if isinstance(item, dict)]
    failed = any(item.get("result") == "Failed" for item in items)

    if args.output == "json":
        print(dump_json(document))
    elif args.output == "yaml":
        print(dump_yaml(document), end="")
    elif not items:
        print("Nothing to collect.", file=sys.stderr)
    else:
        headers = HEADERS if args.dry_run else ["RESULT", *HEADERS]
        print(render_table(headers, [gc_row(item, dry_run=args.dry_run) for item in items]))
    if args.dry_run:
        print("Dry run: nothing was removed.", file=sys.stderr)
    return 1 if failed else 0
