"""``sandboxctl describe instance NAME``: one instance in detail, in kubectl's layout.

``describe loadout NAME`` is rendered by ``cli.loadouts``, ``describe gitsource NAME`` by
``cli.gitsources``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agentic_sandbox.cli.client import ApiClient
from agentic_sandbox.cli.gitsources import run_describe_gitsource
from agentic_sandbox.cli.loadouts import run_describe_loadout
from agentic_sandbox.cli.options import GITSOURCE_WORDS, LOADOUT_WORDS
from agentic_sandbox.cli.output import (
    NONE,
    format_age,
    format_duration,
    format_labels,
    parse_time,
    render_fields,
    render_table,
    text_or_none,
)
from agentic_sandbox.cli.tables import (
    CONDITION_HEADERS,
    condition_row,
    event_row,
    instance_phase,
    section,
)

DEFAULT_NAMESPACE = "default"
# Events shown under an instance: the newest ones.
RECENT_EVENTS = 20
EVENT_HEADERS = ("AGE", "TYPE", "EVENT", "REASON", "MESSAGE")


def _timestamp(value: object, now: datetime) -> str:
    if not value:
        return NONE
    return f"{value} ({format_age(value, now=now)} ago)"


def _future_timestamp(value: object, now: datetime) -> str:
    then = parse_time(value)
    if then is None:
        return NONE
    seconds = (then - now).total_seconds()
    if seconds <= 0:
        return f"{value} (due now)"
    return f"{value} (in {format_duration(seconds)})"


def _metadata_lines(item: Mapping[str, Any], now: datetime) -> list[str]:
    metadata = section(item, "metadata")
    fields = [
        ("Name", str(metadata.get("name", ""))),
        ("Namespace", str(metadata.get("namespace", ""))),
        ("Labels", format_labels(metadata.get("labels"))),
        ("Annotations", format_labels(metadata.get("annotations"))),
        ("UID", text_or_none(metadata.get("uid"))),
        ("Resource Version", text_or_none(metadata.get("resourceVersion"))),
        ("Generation", text_or_none(metadata.get("generation"))),
        ("Created", _timestamp(metadata.get("creationTimestamp"), now)),
    ]
    if metadata.get("deletionTimestamp"):
        fields.append(("Deletion Requested", _timestamp(metadata["deletionTimestamp"], now)))
    fields.append(("Finalizers", ", ".join(metadata.get("finalizers") or []) or NONE))
    return render_fields(fields)


def _mount_text(mount: Mapping[str, Any]) -> str:
    mode = "ro" if mount.get("readOnly") else "rw"
    return f"{mount.get('hostPath')} -> {mount.get('path')} ({mode})"


def _spec_lines(spec: Mapping[str, Any]) -> list[str]:
    resources = section(spec, "resources")
    limits = " ".join(f"{key}={value}" for key, value in resources.items()) or NONE
    command = spec.get("command")
    fields = [
        ("Runtime", text_or_none(spec.get("runtime"))),
        ("Image", text_or_none(spec.get("image"))),
        ("Loadout", text_or_none(spec.get("loadout"))),
        ("Command", " ".join(command) if command else "<image default>"),
        ("Network", text_or_none(spec.get("network"))),
        ("Resources", limits),
        ("Run Strategy", text_or_none(spec.get("runStrategy"))),
        ("Agentshare", str(bool(spec.get("agentshare"))).lower()),
    ]
    lines = ["Spec:", *render_fields(fields, indent=2)]

    env = section(spec, "env")
    lines.append("  Env:" + ("" if env else f"  {NONE}"))
    lines += [f"    {name}={value}" for name, value in env.items()]
    mounts = [mount for mount in spec.get("mounts") or [] if isinstance(mount, dict)]
    lines.append("  Mounts:" + ("" if mounts else f"  {NONE}"))
    lines += [f"    {_mount_text(mount)}" for mount in mounts]
    return lines


def _last_exit_text(last_exit: Mapping[str, Any]) -> str:
    if not last_exit:
        return NONE
    parts = [f"code {last_exit.get('code')}"]
    if last_exit.get("reason"):
        parts.append(str(last_exit["reason"]))
    if last_exit.get("oomKilled"):
        parts.append("OOM killed")
    if last_exit.get("finishedAt"):
        parts.append(f"at {last_exit['finishedAt']}")
    return ", ".join(parts)


def _status_lines(item: Mapping[str, Any], now: datetime) -> list[str]:
    status = section(item, "status")
    runtime_ref = section(status, "runtimeRef")
    container = NONE
    if runtime_ref:
        container = (
            f"{runtime_ref.get('runtime')} {runtime_ref.get('name')} ({runtime_ref.get('id')})"
        )
    fields = [
        ("Phase", instance_phase(item)),
        ("Message", text_or_none(status.get("message"))),
        ("Observed Generation", text_or_none(status.get("observedGeneration"))),
        ("Runtime Object", container),
        ("Node", text_or_none(status.get("node"))),
        ("IP", text_or_none(status.get("ip"))),
        ("Started", _timestamp(status.get("startedAt"), now)),
        ("Restart Count", str(status.get("restartCount", 0))),
        ("Next Retry", _future_timestamp(status.get("nextRetryAt"), now)),
        ("Last Exit", _last_exit_text(section(status, "lastExit"))),
        ("Spec Hash", text_or_none(status.get("specHash"))),
    ]
    details = section(runtime_ref, "details")
    for key, label in _DETAIL_LABELS:
        if details.get(key):
            fields.append((label, str(details[key])))
    return ["Status:", *render_fields(fields, indent=2)]


# Driver facts shown under Status, in this order, when the runtime reports them.
_DETAIL_LABELS = (
    ("domain", "Domain"),
    ("accelerator", "Accelerator"),
    ("serialLog", "Serial Log"),
    ("disk", "Disk"),
    ("vcpus", "VM vCPUs"),
    ("memoryMiB", "VM Memory MiB"),
)


def _table_lines(title: str, headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    if not rows:
        return [f"{title}:  {NONE}"]
    table = render_table(headers, rows)
    return [f"{title}:", *(f"  {line}" for line in table.splitlines())]


def describe_text(item: Mapping[str, Any], events: list[dict[str, Any]], *, now: datetime) -> str:
    """Render an instance and its events as kubectl-style ``describe`` text."""
    status = section(item, "status")
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    condition_rows = [condition_row(c, now=now) for c in conditions]
    event_rows = [event_row(event, now=now, with_object=False) for event in events]

    lines = _metadata_lines(item, now)
    lines += _spec_lines(section(item, "spec"))
    lines += _status_lines(item, now)
    lines += _table_lines("Conditions", CONDITION_HEADERS, condition_rows)
    lines += _table_lines("Events", EVENT_HEADERS, event_rows)
    return "\n".join(lines)


def run_describe(args: argparse.Namespace, client: ApiClient) -> int:
    if args.resource in LOADOUT_WORDS:
        return run_describe_loadout(args, client)
    if args.resource in GITSOURCE_WORDS:
        return run_describe_gitsource(args, client)
    namespace = args.namespace or DEFAULT_NAMESPACE
    item = client.get_instance(namespace, args.name)
    listing = client.list_events(instance=f"{namespace}/{args.name}", limit=RECENT_EVENTS)
    events = [event for event in listing.get("items") or [] if isinstance(event, dict)]
    print(describe_text(item, events, now=datetime.now(UTC)))
    return 0
