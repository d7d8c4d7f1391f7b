"""The component schemas of the OpenAPI document.

``Instance``, ``Loadout`` and ``Event`` come from the pydantic models: the Instance and Loadout
schemas are the ones ``crds.schema`` writes for editors, and the Event schema is pydantic's
serialization schema.
Their ``$defs`` move to ``components/schemas`` and their references follow. The problem
document, the list and dry-run envelopes and the incumbent-compatible shapes have no pydantic
model, so they are written here, next to the code in ``api/`` that builds them.
"""

from __future__ import annotations

import copy
from typing import Any

from agentic_sandbox.crds.event import Event
from agentic_sandbox.crds.meta import DNS1123_LABEL, DNS1123_LABEL_MAX
from agentic_sandbox.crds.schema import (
    gitsource_json_schema,
    instance_json_schema,
    loadout_json_schema,
)

Schema = dict[str, Any]

_COMPONENT_REF = "#/components/schemas/"
_DEFS_REF = "#/$defs/"
# JSON Schema keywords with no meaning in an OpenAPI component.
_DROPPED_KEYWORDS = ("$schema", "$comment")


def ref(name: str) -> Schema:
    return {"$ref": _COMPONENT_REF + name}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _string_map() -> Schema:
    return {"type": "object", "additionalProperties": {"type": "string"}}


_STRING: Schema = {"type": "string"}
_TEXT_OR_NULL: Schema = {"type": ["string", "null"]}
_INTEGER_OR_NULL: Schema = {"type": ["integer", "null"]}
_OBJECT_NAME: Schema = {
    "type": "string",
    "pattern": DNS1123_LABEL.pattern,
    "maxLength": DNS1123_LABEL_MAX,
    "description": "The Instance name: a DNS-1123 label.",
}


def _rewrite_refs(node: Any) -> Any:
    """Point ``#/$defs/X`` references at ``#/components/schemas/X``."""
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: _rewrite_refs(value) for key, value in node.items()}
    target = rewritten.get("$ref")
    if isinstance(target, str) and target.startswith(_DEFS_REF):
        rewritten["$ref"] = _COMPONENT_REF + target[len(_DEFS_REF) :]
    return rewritten


def _lift(name: str, schema: Schema, components: dict[str, Schema]) -> None:
    """Add ``schema`` as component ``name`` and its ``$defs`` as components of their own."""
    schema = copy.deepcopy(schema)
    for keyword in _DROPPED_KEYWORDS:
        schema.pop(keyword, None)
    for def_name, definition in schema.pop("$defs", {}).items():
        existing = components.get(def_name)
        rewritten = _rewrite_refs(definition)
        if existing is not None and existing != rewritten:
            raise ValueError(f"two models define the schema {def_name!r} differently")
        components[def_name] = rewritten
    components[name] = _rewrite_refs(schema)


def _problem() -> Schema:
    field_error = {
        "type": "object",
        "required": ["field", "message"],
        "properties": {
            "field": {"type": "string", "description": "Path of the invalid field or parameter."},
            "message": _STRING,
            "value": {"description": "The rejected value, or its text."},
            "line": {**_INTEGER_OR_NULL, "description": "Line in a manifest file, if known."},
        },
    }
    return {
        "type": "object",
        "description": "An RFC 7807 problem document: the one error shape of every response.",
        "required": ["type", "code", "title", "status", "detail", "errors"],
        "properties": {
            "type": {"type": "string", "description": "A URI naming the kind of problem."},
            "code": {"type": "string", "description": "Stable machine-readable problem name."},
            "title": _STRING,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": _STRING,
            "errors": {"type": "array", "items": field_error},
        },
    }


def _envelope(kind: str, items: Schema, **extra: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "items"],
        "properties": {
            "apiVersion": _STRING,
            "kind": {"const": kind},
            **extra,
            "items": {"type": "array", "items": items},
        },
    }


def _gc_status() -> Schema:
    last_pass = {
        "type": "object",
        "required": ["finishedAt", "error", "items"],
        "properties": {
            "finishedAt": {"type": "string", "format": "date-time"},
            "error": {"type": ["string", "null"]},
            "items": {"type": "array", "items": _gc_candidate()},
        },
    }
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "enabled", "lastPass"],
        "properties": {
            "apiVersion": _STRING,
            "kind": {"const": "GarbageCollectionStatus"},
            "enabled": {"type": "boolean"},
            "lastPass": {"oneOf": [{"type": "null"}, last_pass]},
        },
    }


def _dry_run_result() -> Schema:
    operation = {
        "type": "object",
        "required": ["kind", "cause"],
        "properties": {"kind": _STRING, "cause": _STRING, "sandboxId": _TEXT_OR_NULL},
    }
    return {
        "type": "object",
        "description": "What a write with dryRun=All would store and what the controller would do.",
        "required": ["apiVersion", "kind", "action", "outcome", "object", "plannedOperations"],
        "properties": {
            "apiVersion": _STRING,
            "kind": {"const": "DryRunResult"},
            "action": {
                "enum": ["create", "apply", "patch", "delete", "start", "stop", "restart"],
            },
            "outcome": {"enum": ["created", "updated", "unchanged", "marked", "deleted"]},
            "object": nullable(ref("Instance")),
            "plannedOperations": nullable({"type": "array", "items": operation}),
            "warnings": {"type": "array", "items": _STRING},
        },
    }


def _gc_candidate() -> Schema:
    properties = {
        key: _STRING for key in ("type", "id", "name", "instance", "uid", "reason", "message")
    }
    return {
        "type": "object",
        "required": [*properties, "result"],
        "properties": {
            **properties,
            "result": {"enum": ["WouldRemove", "Removed", "Kept", "Failed"]},
            "error": _STRING,
        },
    }


def _container_view() -> Schema:
    return {
        "type": "object",
        "description": "An Instance with runtime docker, in the incumbent's container shape.",
        "required": ["name", "namespace", "status", "phase"],
        "properties": {
            "id": _TEXT_OR_NULL,
            "name": _STRING,
            "namespace": _STRING,
            "image": _TEXT_OR_NULL,
            "status": _STRING,
            "phase": ref("Phase"),
            "instance_id": _TEXT_OR_NULL,
            "created": _TEXT_OR_NULL,
            "started_at": _TEXT_OR_NULL,
            "finished_at": _TEXT_OR_NULL,
            "exit_code": _INTEGER_OR_NULL,
            "ip_address": _TEXT_OR_NULL,
            "network": _STRING,
            "labels": _string_map(),
            "message": _TEXT_OR_NULL,
        },
    }


def _vm_view() -> Schema:
    agent = {
        "type": "object",
        "properties": {"connected": {"type": "boolean"}, "connected_at": _TEXT_OR_NULL},
    }
    return {
        "type": "object",
        "description": "An Instance with runtime libvirt, in the incumbent's VM shape.",
        "required": ["name", "namespace", "state", "phase"],
        "properties": {
            "name": _STRING,
            "namespace": _STRING,
            "state": _STRING,
            "phase": ref("Phase"),
            "uuid": _TEXT_OR_NULL,
            "instance_id": _TEXT_OR_NULL,
            "vcpus": {"type": "number"},
            "memory_mb": {"type": "integer"},
            "disk": {"type": ["string", "integer", "null"]},
            "loadout": _TEXT_OR_NULL,
            "ip_address": _TEXT_OR_NULL,
            "created": _TEXT_OR_NULL,
            "started_at": _TEXT_OR_NULL,
            "agent": agent,
            "message": _TEXT_OR_NULL,
        },
    }


def _container_create() -> Schema:
    env_object = {
        "type": "object",
        "required": ["key", "value"],
        "additionalProperties": False,
        "properties": {"key": {"type": "string", "minLength": 1}, "value": _STRING},
    }
    return {
        "type": "object",
        "required": ["name", "image"],
        "additionalProperties": False,
        "properties": {
            "name": _OBJECT_NAME,
            "image": {"type": "string", "minLength": 1},
            "env": {
                "type": "array",
                "description": "'KEY=VALUE' strings or {key, value} objects.",
                "items": {"anyOf": [{"type": "string", "pattern": "^[^=]+="}, env_object]},
            },
            "mounts": {
                "type": "array",
                "description": "'HOST:CONTAINER[:ro]' strings or Instance mount objects.",
                "items": {"anyOf": [_STRING, ref("Mount")]},
            },
            "network": _STRING,
            "cmd": {"type": "array", "items": _STRING},
            "labels": _string_map(),
            "agentshare": {"type": "boolean"},
        },
    }


def _vm_create() -> Schema:
    count = {"type": "integer", "minimum": 1}
    return {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "description": "Set each resource as a number (vcpus) or a quantity (cpus), not both.",
        "properties": {
            "name": _OBJECT_NAME,
            "loadout": _STRING,
            "profile": {"type": "string", "description": "Another name for loadout."},
            "image": {"type": "string", "description": "A base disk image."},
            "vcpus": count,
            "memory_mb": count,
            "disk_gb": count,
            "cpus": {"type": ["number", "string"]},
            "memory": {"type": ["integer", "string"]},
            "disk": {"type": ["integer", "string"]},
            "agentshare": {"type": "boolean"},
            "start": {"type": "boolean"},
            "labels": _string_map(),
        },
    }


def _compat_schemas() -> dict[str, Schema]:
    container, vm = ref("ContainerView"), ref("VmView")
    return {
        "ContainerView": _container_view(),
        "ContainerList": {
            "type": "object",
            "required": ["total", "containers"],
            "properties": {
                "total": {"type": "integer"},
                "containers": {"type": "array", "items": container},
            },
        },
        "ContainerCreate": _container_create(),
        "ContainerVerbResult": {
            "type": "object",
            "required": ["name", "action", "status", "container"],
            "properties": {
                "name": _STRING,
                "action": {"enum": ["start", "stop"]},
                "status": _STRING,
                "container": container,
                "timeout": {"type": "integer"},
            },
        },
        "ContainerDeleted": {
            "type": "object",
            "required": ["name", "deleted", "status"],
            "properties": {"name": _STRING, "deleted": {"type": "boolean"}, "status": _STRING},
        },
        "VmView": _vm_view(),
        "VmList": {
            "type": "object",
            "required": ["vms", "total"],
            "properties": {"vms": {"type": "array", "items": vm}, "total": {"type": "integer"}},
        },
        "VmCreate": _vm_create(),
        "VmResult": {
            "type": "object",
            "required": ["vm", "message"],
            "properties": {"vm": vm, "message": _STRING},
        },
        "VmDeleted": {
            "type": "object",
            "required": ["name", "deleted", "state"],
            "properties": {"name": _STRING, "deleted": {"type": "boolean"}, "state": _STRING},
        },
        "ImageList": {
            "type": "object",
            "required": ["images"],
            "properties": {
                "images": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["ref", "label", "present"],
                        "properties": {
                            "ref": _STRING,
                            "label": _STRING,
                            "description": _STRING,
                            "default": {"type": "boolean"},
                            "runtime": _STRING,
                            "present": {"type": ["boolean", "null"]},
                        },
                    },
                }
            },
        },
    }


def _loadout_summary() -> Schema:
    size = {**_TEXT_OR_NULL, "description": "A size such as 2Gi."}
    return {
        "type": "object",
        "description": "One loadout of the catalog, with merged values; or an invalid file.",
        "required": ["name", "source", "extends", "error"],
        "properties": {
            "name": _STRING,
            "source": {"type": "string", "description": "'store', or the path of the file."},
            "line": {**_INTEGER_OR_NULL, "description": "Line of the loadout in its file."},
            "overrides": {**_TEXT_OR_NULL, "description": "The file this resource overrides."},
            "extends": {"type": "array", "items": _STRING},
            "cpus": {"type": ["number", "null"]},
            "memory": size,
            "disk": size,
            "baseImage": _TEXT_OR_NULL,
            "kernel": _TEXT_OR_NULL,
            "error": {**_TEXT_OR_NULL, "description": "Why it failed to load or resolve."},
        },
    }


def _loadout_detail() -> Schema:
    resolved = {
        "type": "object",
        "required": ["chain", "spec", "setBy", "unsetBy"],
        "properties": {
            "chain": {"type": "array", "items": _STRING, "description": "Merge order."},
            "spec": ref("LoadoutSpec"),
            "setBy": {
                "type": "object",
                "description": "The spec's shape, each value replaced by the loadout that set it.",
            },
            "unsetBy": {
                **_string_map(),
                "description": "Field paths an explicit null unset, with the loadout that did.",
            },
        },
    }
    summary = _loadout_summary()
    return {
        **summary,
        "description": "One loadout as written and resolved.",
        "required": [*summary["required"], "loadout", "resolved"],
        "properties": {
            **summary["properties"],
            "loadout": nullable(ref("Loadout")),
            "resolved": nullable(resolved),
        },
    }


def _gitsource_diff() -> Schema:
    parts = {"type": ["object", "null"], "description": "Labels, annotations and spec."}
    change = {
        "type": "object",
        "required": ["action", "kind", "namespace", "name"],
        "properties": {
            "action": {"enum": ["create", "update", "prune", "conflict"]},
            "kind": _STRING,
            "namespace": _STRING,
            "name": _STRING,
            "file": {"type": "string", "description": "The declaring file in the repository."},
            "owner": {**_TEXT_OR_NULL, "description": "conflict: the source that owns it."},
            "live": parts,
            "desired": parts,
        },
    }
    return {
        "type": "object",
        "description": "What the next sync of a GitSource would change.",
        "required": ["apiVersion", "kind", "commit", "changes"],
        "properties": {
            "apiVersion": _STRING,
            "kind": {"const": "GitSourceDiff"},
            "commit": {"type": "string", "description": "The commit the diff was planned at."},
            "guard": {**_TEXT_OR_NULL, "description": "Why nothing would be pruned, if so."},
            "prune": {"type": "boolean"},
            "manifestErrors": {"type": "array", "items": ref("ManifestIssue")},
            "changes": {"type": "array", "items": change},
        },
    }


def component_schemas() -> dict[str, Schema]:
    """Return every schema the document's operations refer to, by component name."""
    components: dict[str, Schema] = {}
    _lift("Instance", instance_json_schema(), components)
    _lift("Loadout", loadout_json_schema(), components)
    _lift("GitSource", gitsource_json_schema(), components)
    _lift("Event", Event.model_json_schema(by_alias=True, mode="serialization"), components)
    list_metadata = {"type": "object", "properties": {"resourceVersion": _STRING}}
    components.update(
        {
            "Problem": _problem(),
            "InstanceList": _envelope("InstanceList", ref("Instance"), metadata=list_metadata),
            "LoadoutSummary": _loadout_summary(),
            "LoadoutCatalog": _envelope("LoadoutCatalog", ref("LoadoutSummary")),
            "LoadoutDetail": _loadout_detail(),
            "GitSourceList": _envelope("GitSourceList", ref("GitSource"), metadata=list_metadata),
            "GitSourceDiff": _gitsource_diff(),
            "EventList": _envelope("EventList", ref("Event")),
            "DryRunResult": _dry_run_result(),
            "GarbageCollection": _envelope(
                "GarbageCollection", _gc_candidate(), dryRun={"type": "boolean"}
            ),
            "GarbageCollectionStatus": _gc_status(),
            "MergePatch": {
                "type": "object",
                "description": "An RFC 7396 JSON merge patch of an Instance manifest.",
            },
            **_compat_schemas(),
        }
    )
    return components
