"""``sandboxctl get gitsources``, ``describe gitsource``, ``sync`` and ``diff --gitsource``.

``sync NAME`` requests that the controller to sync a GitSource now and returns at once; ``describe``
shows the outcome. ``diff --gitsource NAME`` prints what the next sync would change, as
unified diffs, with the exit codes of ``diff -f``: 0 nothing would change, 1 something would,
2 an error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from agentic_sandbox.cli.client import ApiClient, ApiError, CliError, print_error
from agentic_sandbox.cli.diff import run_diff, unified_diff
from agentic_sandbox.cli.output import (
    NONE,
    dump_json,
    dump_yaml,
    format_age,
    render_fields,
    render_table,
    text_or_none,
)
from agentic_sandbox.cli.tables import CONDITION_HEADERS, condition, condition_row, section
from agentic_sandbox.crds.gitsource import redact_url
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION

DEFAULT_NAMESPACE = "default"
GITSOURCES_PATH = "/api/v1/gitsources"
HEADERS = ("NAME", "URL", "REF", "PATH", "READY", "REASON", "APPLIED", "AGE")
# Events scanned for those of one GitSource in ``describe``, and how many are shown.
EVENTS_SCANNED = 500
RECENT_EVENTS = 20
SHORT_COMMIT = 12
EXIT_SAME, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2


def _ref_text(spec: Mapping[str, Any]) -> str:
    ref = section(spec, "ref")
    for kind in ("branch", "tag", "commit"):
        if ref.get(kind):
            value = str(ref[kind])
            return f"{kind}:{value[:SHORT_COMMIT] if kind == 'commit' else value}"
    return NONE


def _short(commit: object) -> str:
    return str(commit)[:SHORT_COMMIT] if commit else NONE


def gitsource_row(item: Mapping[str, Any], *, with_namespace: bool, now: datetime) -> list[str]:
    metadata, spec, status = (
        section(item, "metadata"),
        section(item, "spec"),
        section(item, "status"),
    )
    ready = condition(status, "Ready") or {}
    row = [
        str(metadata.get("name", "")),
        redact_url(str(spec.get("url", ""))),
        _ref_text(spec),
        str(spec.get("path") or "/"),
        str(ready.get("status", "Unknown")),
        str(ready.get("reason") or NONE),
        _short(status.get("lastAppliedCommit")),
        format_age(metadata.get("creationTimestamp"), now=now),
    ]
    if with_namespace:
        row.insert(0, str(metadata.get("namespace", "")))
    return row


def _print_document(document: dict[str, Any], output: str) -> None:
    print(dump_json(document) if output == "json" else dump_yaml(document), end="")
    if output == "json":
        print()


def get_gitsources(args: argparse.Namespace, client: ApiClient) -> int:
    namespace = args.namespace or DEFAULT_NAMESPACE
    if args.name:
        document = client.get(f"{GITSOURCES_PATH}/{args.name}", params={"namespace": namespace})
        items = [document]
    else:
        scope = None if args.all_namespaces else namespace
        document = client.get(GITSOURCES_PATH, params={"namespace": scope})
        items = [item for item in document.get("items") or [] if isinstance(item, dict)]

    if args.output in ("json", "yaml"):
        _print_document(document, args.output)
        return 0
    if not items:
        where = "" if args.all_namespaces else f" in namespace {namespace}"
        print(f"No gitsources found{where}.", file=sys.stderr)
        return 0
    if args.output == "name":
        for item in items:
            print(f"gitsource/{section(item, 'metadata').get('name', '')}")
        return 0
    with_namespace = bool(args.all_namespaces)
    headers = ["NAMESPACE", *HEADERS] if with_namespace else list(HEADERS)
    now = datetime.now(UTC)
    rows = [gitsource_row(item, with_namespace=with_namespace, now=now) for item in items]
    print(render_table(headers, rows))
    return 0


def _spec_lines(item: Mapping[str, Any]) -> list[str]:
    metadata, spec = section(item, "metadata"), section(item, "spec")
    annotations = section(metadata, "annotations")
    return render_fields(
        [
            ("Name", str(metadata.get("name", ""))),
            ("Namespace", str(metadata.get("namespace", ""))),
            ("Managed By", text_or_none(annotations.get(SOURCE_ANNOTATION))),
            ("URL", redact_url(str(spec.get("url", "")))),
            ("Ref", _ref_text(spec)),
            ("Path", str(spec.get("path") or "/")),
            ("Interval", text_or_none(spec.get("interval"))),
            ("Prune", str(spec.get("prune", True)).lower()),
            ("Suspend", str(spec.get("suspend", False)).lower()),
            ("Allow Empty", str(spec.get("allowEmpty", False)).lower()),
        ]
    )


def _status_lines(status: Mapping[str, Any], now: datetime) -> list[str]:
    synced = status.get("lastSyncTime")
    return render_fields(
        [
            ("Last Fetched Commit", text_or_none(status.get("lastFetchedCommit"))),
            ("Last Applied Commit", text_or_none(status.get("lastAppliedCommit"))),
            ("Last Sync", f"{synced} ({format_age(synced, now=now)} ago)" if synced else NONE),
            ("Last Error", text_or_none(status.get("lastError"))),
        ]
    )


def _table_section(title: str, headers: Sequence[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return [f"{title}: {NONE}"]
    table = render_table(headers, rows).splitlines()
    return [f"{title}:", *(f"  {line}" for line in table)]


def describe_gitsource_text(
    item: Mapping[str, Any], events: list[dict[str, Any]], *, now: datetime
) -> str:
    status = section(item, "status")
    lines = _spec_lines(item) + _status_lines(status, now)
    conditions = [condition_row(entry, now=now) for entry in status.get("conditions") or []]
    lines += _table_section("Conditions", CONDITION_HEADERS, conditions)

    issues = [
        [
            str(i.get("file")),
            text_or_none(i.get("line")),
            text_or_none(i.get("field")),
            str(i.get("message")),
        ]
        for i in status.get("manifestErrors") or []
    ]
    lines += _table_section("Manifest Errors", ("FILE", "LINE", "FIELD", "MESSAGE"), issues)

    conflicts = [
        [
            f"{c.get('kind')} {c.get('namespace')}/{c.get('name')}",
            str(c.get("file")),
            str(c.get("owner")),
        ]
        for c in status.get("conflicts") or []
    ]
    lines += _table_section("Ownership Conflicts", ("OBJECT", "FILE", "OWNER"), conflicts)

    inventory = [
        [str(e.get("kind")), str(e.get("namespace")), str(e.get("name"))]
        for e in status.get("inventory") or []
    ]
    lines += _table_section("Inventory", ("KIND", "NAMESPACE", "NAME"), inventory)

    recent = [
        [format_age(e.get("time"), now=now), str(e.get("name")), str(e.get("message", ""))]
        for e in events
    ]
    lines += _table_section("Events", ("AGE", "EVENT", "MESSAGE"), recent)
    return "\n".join(lines)


def run_describe_gitsource(args: argparse.Namespace, client: ApiClient) -> int:
    namespace = args.namespace or DEFAULT_NAMESPACE
    item = client.get(f"{GITSOURCES_PATH}/{args.name}", params={"namespace": namespace})
    writer = f"gitsource:{namespace}/{args.name}"
    listing = client.list_events(limit=EVENTS_SCANNED)
    events = [
        event
        for event in listing.get("items") or []
        if isinstance(event, dict) and str(event.get("source") or "").startswith(writer)
    ]
    print(describe_gitsource_text(item, events[-RECENT_EVENTS:], now=datetime.now(UTC)))
    return 0


def run_sync(args: argparse.Namespace, client: ApiClient) -> int:
    namespace = args.namespace or DEFAULT_NAMESPACE
    client.post(f"{GITSOURCES_PATH}/{args.name}/sync", params={"namespace": namespace})
    print(f"gitsource/{args.name} sync requested")
    return 0


def add_sync_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    sync = subparsers.add_parser(
        "sync",
        parents=[parent],
        help="sync a GitSource now",
        description="Ask the controller to fetch and apply a GitSource now, as its push "
        "webhook does, and return at once; 'sandboxctl describe gitsource NAME' shows the "
        "outcome.",
    )
    sync.add_argument("name", metavar="NAME", help="the GitSource")
    sync.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: default)")
    sync.set_defaults(command="sync")


def diff_gitsource(args: argparse.Namespace, client: ApiClient) -> int:
    """Print what the next sync of ``args.gitsource`` would change; return the exit code."""
    namespace = args.namespace or DEFAULT_NAMESPACE
    path = f"{GITSOURCES_PATH}/{args.gitsource}/diff"
    try:
        preview = client.get(path, params={"namespace": namespace})
    except ApiError as error:
        print_error(CliError(f"gitsource/{args.gitsource}: {error.message}", details=error.details))
        return EXIT_ERROR
    print(f"# gitsource/{args.gitsource} at commit {preview.get('commit')}", file=sys.stderr)
    if preview.get("guard"):
        print(f"# {preview['guard']}", file=sys.stderr)
    for issue in preview.get("manifestErrors") or []:
        print(f"# not applied: {issue.get('message')}", file=sys.stderr)

    changed = False
    for change in preview.get("changes") or []:
        reference = f"{str(change.get('kind', '')).lower()}/{change.get('name')}"
        if change.get("action") == "conflict":
            print(f"# {reference}: managed by {change.get('owner')}; left alone", file=sys.stderr)
            continue
        lines = unified_diff(change.get("live"), change.get("desired"), reference=reference)
        if lines:
            changed = True
            sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_CHANGED if changed else EXIT_SAME


def run_diff_command(args: argparse.Namespace, client: ApiClient) -> int:
    """Run ``sandboxctl diff``: against a GitSource with ``--gitsource``, else manifests."""
    if getattr(args, "gitsource", None):
        return diff_gitsource(args, client)
    return run_diff(args, client)
