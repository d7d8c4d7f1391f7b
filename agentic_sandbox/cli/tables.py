"""Table rows for instances, loadouts, events and conditions, built from the API's wire dicts.

The CLI reads the wire form as plain dicts rather than the crds models, so that a server with
newer fields still prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agentic_sandbox.cli.output import NONE, format_age, text_or_none
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION

INSTANCE_HEADERS = ("NAME", "RUNTIME", "PHASE", "READY", "IMAGE", "RESTARTS", "AGE")
WIDE_HEADERS = ("NODE", "IP", "CONTAINER", "SOURCE")
EVENT_HEADERS = ("AGE", "TYPE", "EVENT", "REASON", "OBJECT", "MESSAGE")
CONDITION_HEADERS = ("TYPE", "STATUS", "REASON", "MESSAGE", "AGE")
LOADOUT_HEADERS = ("NAME", "SOURCE", "EXTENDS", "CPUS", "MEMORY", "DISK", "IMAGE")
LOADOUT_WIDE_HEADERS = ("KERNEL",)
# Cell text of the merged columns of a loadout that failed to load or resolve.
LOADOUT_INVALID = "<invalid>"
# Characters of a container id shown, as ``docker ps`` shows them.
SHORT_ID_LENGTH = 12


def section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Return the mapping ``data[name]``, or an empty one when it is absent or not a mapping."""
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for item in status.get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == type_:
            return item
    return None


def instance_phase(item: Mapping[str, Any]) -> str:
    """Return the phase to show: Terminating once deletion started, as kubectl shows pods."""
    if section(item, "metadata").get("deletionTimestamp"):
        return "Terminating"
    return str(section(item, "status").get("phase") or "Unknown")


def instance_row(
    item: Mapping[str, Any], *, wide: bool, with_namespace: bool, now: datetime
) -> list[str]:
    metadata = section(item, "metadata")
    spec = section(item, "spec")
    status = section(item, "status")
    ready = condition(status, "Ready")
    image = spec.get("image") or (f"loadout:{spec['loadout']}" if spec.get("loadout") else None)
    row = [
        str(metadata.get("name", "")),
        str(spec.get("runtime") or NONE),
        instance_phase(item),
        str(ready.get("status", "Unknown")) if ready else "Unknown",
        text_or_none(image),
        str(status.get("restartCount", 0)),
        format_age(metadata.get("creationTimestamp"), now=now),
    ]
    if with_namespace:
        row.insert(0, str(metadata.get("namespace", "")))
    if wide:
        runtime_ref = section(status, "runtimeRef")
        container_id = str(runtime_ref.get("id") or "")[:SHORT_ID_LENGTH]
        annotations = section(metadata, "annotations")
        row += [
            text_or_none(status.get("node")),
            text_or_none(status.get("ip")),
            text_or_none(container_id),
            text_or_none(annotations.get(SOURCE_ANNOTATION)),
        ]
    return row


def instance_headers(*, wide: bool, with_namespace: bool) -> list[str]:
    headers = list(INSTANCE_HEADERS)
    if with_namespace:
        headers.insert(0, "NAMESPACE")
    if wide:
        headers += WIDE_HEADERS
    return headers


def format_cpus(value: object) -> str:
    """Format a CPU count as written: 2 rather than 2.0, 0.5 as 0.5."""
    return f"{value:g}" if isinstance(value, int | float) else text_or_none(value)


def loadout_row(item: Mapping[str, Any], *, wide: bool) -> list[str]:
    """Return the row of one loadout summary; a loadout with an error shows ``<invalid>``."""
    source = str(item.get("source", ""))
    if item.get("overrides"):
        source += f" (overrides {item['overrides']})"
    row = [
        str(item.get("name", "")),
        source,
        ",".join(item.get("extends") or []) or NONE,
    ]
    if item.get("error"):
        return row + [LOADOUT_INVALID] * (len(loadout_headers(wide=wide)) - len(row))
    row += [
        format_cpus(item.get("cpus")),
        text_or_none(item.get("memory")),
        text_or_none(item.get("disk")),
        text_or_none(item.get("baseImage")),
    ]
    if wide:
        row.append(text_or_none(item.get("kernel")))
    return row


def loadout_headers(*, wide: bool) -> list[str]:
    return [*LOADOUT_HEADERS, *LOADOUT_WIDE_HEADERS] if wide else list(LOADOUT_HEADERS)


def event_object(event: Mapping[str, Any]) -> str:
    """Return what an event is about: its instance key, else the source that reported it."""
    if event.get("instance"):
        return f"instance/{event['instance']}"
    if event.get("source"):
        return str(event["source"])
    return NONE


def event_row(event: Mapping[str, Any], *, now: datetime, with_object: bool = True) -> list[str]:
    row = [
        format_age(event.get("time"), now=now),
        str(event.get("severity") or "Normal"),
        str(event.get("name", "")),
        text_or_none(event.get("reason")),
    ]
    if with_object:
        row.append(event_object(event))
    row.append(one_line(event.get("message")))
    return row


def condition_row(item: Mapping[str, Any], *, now: datetime) -> list[str]:
    return [
        str(item.get("type", "")),
        str(item.get("status", "")),
        text_or_none(item.get("reason")),
        one_line(item.get("message")),
        format_age(item.get("lastTransitionTime"), now=now),
    ]


def one_line(value: object) -> str:
    """Fold a message onto one line so that a table row stays one row."""
    if not value:
        return ""
    return " ".join(str(value).split())
