"""``sandboxctl get``: instances, loadouts, events and missions as tables, names, YAML or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agentic_sandbox.cli.client import ApiClient
from agentic_sandbox.cli.dispatch import get_missions
from agentic_sandbox.cli.gitsources import get_gitsources
from agentic_sandbox.cli.loadouts import get_loadouts
from agentic_sandbox.cli.options import EVENT_WORDS, GITSOURCE_WORDS, LOADOUT_WORDS, MISSION_WORDS
from agentic_sandbox.cli.output import dump_json, dump_yaml, render_table
from agentic_sandbox.cli.tables import (
    EVENT_HEADERS,
    event_row,
    instance_headers,
    instance_row,
    section,
)

DEFAULT_NAMESPACE = "default"


def _print_document(document: dict[str, Any], output: str) -> None:
    if output == "json":
        print(dump_json(document))
    else:
        print(dump_yaml(document), end="")


def _print_instances(items: Sequence[dict[str, Any]], args: argparse.Namespace) -> None:
    if args.output == "name":
        for item in items:
            print(f"instance/{section(item, 'metadata').get('name', '')}")
        return

    wide = args.output == "wide"
    with_namespace = bool(args.all_namespaces)
    now = datetime.now(UTC)
    rows = [instance_row(item, wide=wide, with_namespace=with_namespace, now=now) for item in items]
    print(render_table(instance_headers(wide=wide, with_namespace=with_namespace), rows))


def get_instances(args: argparse.Namespace, client: ApiClient) -> int:
    namespace = args.namespace or DEFAULT_NAMESPACE
    if args.name:
        document = client.get_instance(namespace, args.name)
        items = [document]
    else:
        scope = None if args.all_namespaces else namespace
        document = client.list_instances(namespace=scope, selector=args.selector, phase=args.phase)
        items = [item for item in document.get("items") or [] if isinstance(item, dict)]

    if args.output in ("json", "yaml"):
        _print_document(document, args.output)
        return 0
    if not items:
        where = "" if args.all_namespaces else f" in namespace {namespace}"
        print(f"No instances found{where}.", file=sys.stderr)
        return 0
    _print_instances(items, args)
    return 0


def get_events(args: argparse.Namespace, client: ApiClient) -> int:
    instance = args.instance or args.name
    key = None
    if instance:
        key = instance if "/" in instance else f"{args.namespace or DEFAULT_NAMESPACE}/{instance}"
    document = client.list_events(instance=key, since=args.since, limit=args.limit)
    events = [event for event in document.get("items") or [] if isinstance(event, dict)]

    if args.output in ("json", "yaml"):
        _print_document(document, args.output)
        return 0
    if not events:
        print("No events found.", file=sys.stderr)
        return 0
    if args.output == "name":
        for event in events:
            print(f"event/{event.get('id')}")
        return 0
    now = datetime.now(UTC)
    print(render_table(EVENT_HEADERS, [event_row(event, now=now) for event in events]))
    return 0


def run_get(args: argparse.Namespace, client: ApiClient) -> int:
    if args.resource in EVENT_WORDS:
        return get_events(args, client)
    if args.resource in LOADOUT_WORDS:
        return get_loadouts(args, client)
    if args.resource in GITSOURCE_WORDS:
        return get_gitsources(args, client)
    if args.resource in MISSION_WORDS:
        return get_missions(args, client)
    return get_instances(args, client)
