"""``GET /openapi.json``: an OpenAPI 3.1 description of every route the API serves.

OpenAPI 3.1 is chosen because its schemas are JSON Schema 2020-12, the dialect the pydantic
models export, so the Instance and Event schemas are used as generated (see
``api.openapi_schemas``). The document is built once per app and needs the bearer token like
every other route but the health probes and ``/metrics``.

Every operation lists its success responses and a ``default`` problem document, because any
route can return 401, 413, 415, 422, 503 and so on with ``application/problem+json``. A test
compares the operations here with the app's routes, so a new route must be described here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentic_sandbox.api.events import MAX_EVENT_ID
from agentic_sandbox.api.openapi_missions import mission_paths, mission_schemas
from agentic_sandbox.api.openapi_schemas import Schema, component_schemas, ref
from agentic_sandbox.api.problems import PROBLEM_MEDIA_TYPE
from agentic_sandbox.crds.meta import DNS1123_LABEL, DNS1123_LABEL_MAX

OPENAPI_PATH = "/openapi.json"
OPENAPI_VERSION = "3.1.0"
API_TITLE = "agentic-sandbox"
API_VERSION = "v1"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
TEXT = "text/plain"
EVENT_STREAM = "text/event-stream"
# Operations that need no token: the health probes and the metrics scrape.
PUBLIC_SECURITY: list[dict[str, list[str]]] = []

Operation = dict[str, Any]
LOCATION = "Location"
APPLY_OUTCOME = "Apply-Outcome"
_HEADERS = {
    LOCATION: "The path of the object, with its namespace.",
    APPLY_OUTCOME: "What the write did: created, updated or unchanged.",
}


# The body of POST /api/v1/instances/{name}/exec (see api/exec.py).
_EXEC_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["command"],
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "workingDir": {"type": "string"},
        "timeoutSeconds": {"type": "integer", "minimum": 0, "maximum": 604800},
    },
}


def _param(name: str, schema: Schema, description: str, *, where: str = "query") -> Schema:
    return {"name": name, "in": where, "description": description, "schema": schema}


def _name_param() -> Schema:
    schema = {"type": "string", "pattern": DNS1123_LABEL.pattern, "maxLength": DNS1123_LABEL_MAX}
    return {**_param("name", schema, "The object's name.", where="path"), "required": True}


def _namespace(description: str = "Namespace of the object; default 'default'.") -> Schema:
    schema = {"type": "string", "pattern": DNS1123_LABEL.pattern, "maxLength": DNS1123_LABEL_MAX}
    return _param("namespace", schema, description)


def _bool(name: str, description: str) -> Schema:
    return _param(name, {"type": "boolean"}, description)


def _dry_run() -> Schema:
    return _param("dryRun", {"enum": ["All"]}, "All: validate and plan, change nothing.")


def _grace(description: str = "Stop grace period in seconds.") -> Schema:
    return _param("timeout", {"type": "integer", "minimum": 0, "maximum": 3600}, description)


def _content(media_type: str, schema: Schema) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": _content(JSON, ref(schema_name))}


def _text(description: str, media_type: str = TEXT) -> dict[str, Any]:
    return {"description": description, "content": _content(media_type, {"type": "string"})}


def _problem(description: str = "A problem document.") -> dict[str, Any]:
    return {"description": description, "content": _content(PROBLEM_MEDIA_TYPE, ref("Problem"))}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: Sequence[Schema] = (),
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> Operation:
    operation: Operation = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": list(parameters),
        "responses": {**responses, "default": _problem()},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    if public:
        operation["security"] = PUBLIC_SECURITY
    return operation


def _instance_or_dry_run(description: str, *headers: str) -> dict[str, Any]:
    schema = {"oneOf": [ref("Instance"), ref("DryRunResult")]}
    return _with_headers({"description": description, "content": _content(JSON, schema)}, headers)


def _with_headers(response: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Add the headers ``names`` to ``response`` as headers it always carries."""
    if names:
        response["headers"] = {
            name: {"description": _HEADERS[name], "required": True, "schema": {"type": "string"}}
            for name in names
        }
    return response


_EVENT_ID: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}


def _event_params() -> list[Schema]:
    return [
        _param("since", _EVENT_ID, "Events after this event id."),
        _param("type", {"type": "string"}, "An event name, or a prefix ending in a dot."),
        _param("namePrefix", {"type": "string"}, "A plain prefix of the event name."),
        _param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most this many."),
        _bool("follow", "Stream server-sent events instead of returning a list."),
        _param(
            "Last-Event-ID",
            {"type": "string", "pattern": "^[0-9]{1,19}$"},
            "With follow: resume after this event id.",
            where="header",
        ),
    ]


def _events_responses() -> dict[str, Any]:
    return {
        "200": {
            "description": "The events, oldest first; with follow=true, a server-sent stream.",
            "content": {
                JSON: {"schema": ref("EventList")},
                EVENT_STREAM: {"schema": {"type": "string"}},
            },
        }
    }


def _instance_paths() -> dict[str, Any]:
    name, namespace = _name_param(), _namespace()
    instance_body = _content(JSON, ref("Instance"))
    takeover = _bool("takeover", "Move ownership of a file-owned instance to the API.")
    return {
        "/api/v1/instances": {
            "get": _operation(
                "listInstances",
                "List instances.",
                {"200": _json("InstanceList", "The instances.")},
                parameters=[
                    _namespace("Only this namespace; default every namespace."),
                    _param("labelSelector", {"type": "string"}, "Equality terms k=v,k2=v2."),
                    _param("phase", ref("Phase"), "Only instances in this phase."),
                ],
            ),
            "post": _operation(
                "createInstance",
                "Create an instance.",
                {"201": _instance_or_dry_run("The created instance.", LOCATION)},
                parameters=[namespace, _dry_run()],
                body=instance_body,
            ),
        },
        "/api/v1/instances/{name}": {
            "parameters": [name, namespace],
            "get": _operation(
                "getInstance", "Read an instance.", {"200": _json("Instance", "The instance.")}
            ),
            "put": _operation(
                "applyInstance",
                "Apply an instance: create it or update its spec, labels and annotations.",
                {
                    "200": _instance_or_dry_run(
                        "The updated or unchanged instance.", APPLY_OUTCOME, LOCATION
                    ),
                    "201": _instance_or_dry_run("The created instance.", APPLY_OUTCOME, LOCATION),
                },
                parameters=[_dry_run(), takeover],
                body=instance_body,
            ),
            "patch": _operation(
                "patchInstance",
                "Apply a JSON merge patch to an instance.",
                {"200": _instance_or_dry_run("The patched instance.", APPLY_OUTCOME)},
                parameters=[_dry_run(), takeover],
                body=_content(MERGE_PATCH, ref("MergePatch")),
            ),
            "delete": _operation(
                "deleteInstance",
                "Delete an instance.",
                {"200": _instance_or_dry_run("The instance as last stored.")},
                parameters=[
                    _dry_run(),
                    _bool("force", "Remove the record even if its sandboxes remain."),
                    _param("resourceVersion", {"type": "string"}, "Delete only this version."),
                ],
            ),
        },
        **{
            f"/api/v1/instances/{{name}}/{verb}": {
                "post": _operation(
                    f"{verb}Instance",
                    f"Request the {verb} verb.",
                    {"200": _instance_or_dry_run("The instance with the verb recorded.")},
                    parameters=[
                        name,
                        namespace,
                        _grace(),
                        _bool("force", "Stop with no grace period."),
                        _dry_run(),
                    ],
                )
            }
            for verb in ("start", "stop", "restart")
        },
        "/api/v1/instances/{name}/logs": {
            "get": _operation(
                "instanceLogs",
                "Read or follow the output of the instance's sandbox.",
                {"200": _text("stdout and stderr interleaved.")},
                parameters=[
                    name,
                    namespace,
                    _param("tail", {"type": "integer", "minimum": 0, "maximum": 100_000}, "Lines."),
                    _bool("follow", "Keep streaming new output."),
                ],
            )
        },
        "/api/v1/instances/{name}/exec": {
            "post": _operation(
                "instanceExec",
                "Run a command in the instance's sandbox through its agent.",
                {
                    "200": _text(
                        "One JSON object per line: output chunks with base64 data, then "
                        "the exit object with exitCode.",
                        media_type="application/x-ndjson",
                    )
                },
                parameters=[name, namespace],
                body=_content(JSON, _EXEC_BODY),
            )
        },
        "/api/v1/instances/{name}/events": {
            "get": _operation(
                "instanceEvents",
                "List or follow the events of one instance.",
                _events_responses(),
                parameters=[name, namespace, *_event_params()],
            )
        },
    }


def _loadout_paths() -> dict[str, Any]:
    loadout_body = _content(JSON, ref("Loadout"))
    written = "The Loadout resource as stored."
    return {
        "/api/v1/loadouts": {
            "get": _operation(
                "listLoadouts",
                "List the loadouts of the loadout directory and the store, resolved.",
                {"200": _json("LoadoutCatalog", "Each loadout once, and each invalid file.")},
                parameters=[_namespace("Namespace of the Loadout resources; default 'default'.")],
            ),
            "post": _operation(
                "createLoadout",
                "Create a Loadout resource.",
                {"201": _with_headers(_json("Loadout", written), [LOCATION])},
                parameters=[_namespace()],
                body=loadout_body,
            ),
        },
        "/api/v1/loadouts/{name}": {
            "parameters": [_name_param(), _namespace()],
            "get": _operation(
                "getLoadout",
                "Read a loadout as written and resolved, with the layer behind each value.",
                {"200": _json("LoadoutDetail", "The loadout.")},
            ),
            "put": _operation(
                "applyLoadout",
                "Apply a Loadout resource: create it or update its spec, labels and annotations.",
                {
                    "200": _with_headers(_json("Loadout", written), [APPLY_OUTCOME, LOCATION]),
                    "201": _with_headers(_json("Loadout", written), [APPLY_OUTCOME, LOCATION]),
                },
                parameters=[
                    _bool("takeover", "Move ownership of a file-owned Loadout to the API.")
                ],
                body=loadout_body,
            ),
            "delete": _operation(
                "deleteLoadout",
                "Delete a Loadout resource; a file loadout is removed from its file instead.",
                {"200": _json("Loadout", "The Loadout as last stored.")},
                parameters=[
                    _param("resourceVersion", {"type": "string"}, "Delete only this version.")
                ],
            ),
        },
    }


def _gitsource_paths() -> dict[str, Any]:
    body = _content(JSON, ref("GitSource"))
    stored = "The GitSource as stored."
    item = "/api/v1/gitsources/{name}"
    return {
        "/api/v1/gitsources": {
            "get": _operation(
                "listGitSources",
                "List GitSources.",
                {"200": _json("GitSourceList", "The GitSources.")},
                parameters=[_namespace("Only this namespace; default every namespace.")],
            ),
            "post": _operation(
                "createGitSource",
                "Create a GitSource.",
                {"201": _with_headers(_json("GitSource", stored), [LOCATION])},
                parameters=[_namespace()],
                body=body,
            ),
        },
        item: {
            "parameters": [_name_param(), _namespace()],
            "get": _operation(
                "getGitSource", "Read a GitSource.", {"200": _json("GitSource", stored)}
            ),
            "put": _operation(
                "applyGitSource",
                "Apply a GitSource: create it or update its spec, labels and annotations.",
                {
                    "200": _with_headers(_json("GitSource", stored), [APPLY_OUTCOME, LOCATION]),
                    "201": _with_headers(_json("GitSource", stored), [APPLY_OUTCOME, LOCATION]),
                },
                parameters=[
                    _bool("takeover", "Move ownership of a file-owned GitSource to the API.")
                ],
                body=body,
            ),
            "delete": _operation(
                "deleteGitSource",
                "Delete a GitSource; the objects it applied stay.",
                {"200": _json("GitSource", "The GitSource as last stored.")},
            ),
        },
        f"{item}/sync": {
            "post": _operation(
                "syncGitSource",
                "Sync a GitSource now (a push webhook); returns at once.",
                {"202": _json("GitSource", "The GitSource as stored when the sync was requested.")},
                parameters=[_name_param(), _namespace()],
            )
        },
        f"{item}/diff": {
            "get": _operation(
                "diffGitSource",
                "Fetch and plan a sync without changing anything: what the next sync would do.",
                {"200": _json("GitSourceDiff", "The planned changes.")},
                parameters=[_name_param(), _namespace()],
            )
        },
    }


def _compat_item(noun: str, view: str, deleted: str, extra: list[Schema]) -> dict[str, Any]:
    return {
        "parameters": [_name_param(), _namespace()],
        "get": _operation(f"get{noun}", f"Read a {noun}.", {"200": _json(view, f"The {noun}.")}),
        "delete": _operation(
            f"delete{noun}",
            f"Delete a managed {noun}.",
            {"200": _json(deleted, "The deletion was requested.")},
            parameters=extra,
        ),
    }


def _compat_verb(noun: str, verb: str, result: str, parameters: list[Schema]) -> dict[str, Any]:
    return {
        "parameters": [_name_param(), _namespace()],
        "post": _operation(
            f"{verb}{noun}",
            f"Request {verb} of a {noun}.",
            {"200": _json(result, "The verb was recorded.")},
            parameters=parameters,
        ),
    }


def _status_filter(name: str) -> Schema:
    return _param(name, {"enum": ["running", "stopped", "all"]}, "Filter; default all.")


def _compat_paths() -> dict[str, Any]:
    containers, vms = "/api/v1/containers", "/api/v1/vms"
    vm_force = _bool("force", "Stop with no grace period.")
    return {
        containers: {
            "get": _operation(
                "listContainers",
                "List containers.",
                {"200": _json("ContainerList", "The containers.")},
                parameters=[_namespace(), _status_filter("status")],
            ),
            "post": _operation(
                "createContainer",
                "Create a container as an Instance with runtime docker.",
                {
                    "201": _with_headers(
                        _json("ContainerView", "The container, pending."), [LOCATION]
                    )
                },
                parameters=[_namespace()],
                body=_content(JSON, ref("ContainerCreate")),
            ),
        },
        f"{containers}/{{name}}": _compat_item(
            "Container", "ContainerView", "ContainerDeleted", []
        ),
        f"{containers}/{{name}}/start": _compat_verb(
            "Container", "start", "ContainerVerbResult", []
        ),
        f"{containers}/{{name}}/stop": _compat_verb(
            "Container", "stop", "ContainerVerbResult", [_grace()]
        ),
        vms: {
            "get": _operation(
                "listVms",
                "List VMs.",
                {"200": _json("VmList", "The VMs.")},
                parameters=[
                    _namespace(),
                    _status_filter("state"),
                    _param("prefix", {"type": "string"}, "Only names with this prefix."),
                ],
            ),
            "post": _operation(
                "createVm",
                "Create a VM as an Instance with runtime libvirt.",
                {"201": _with_headers(_json("VmResult", "The VM, pending."), [LOCATION])},
                parameters=[_namespace()],
                body=_content(JSON, ref("VmCreate")),
            ),
        },
        f"{vms}/{{name}}": _compat_item(
            "Vm",
            "VmView",
            "VmDeleted",
            [_bool("delete_disk", "Accepted; no effect."), _bool("force", "Accepted; no effect.")],
        ),
        f"{vms}/{{name}}/start": _compat_verb("Vm", "start", "VmResult", []),
        f"{vms}/{{name}}/stop": _compat_verb("Vm", "stop", "VmResult", [_grace(), vm_force]),
        f"{vms}/{{name}}/destroy": _compat_verb("Vm", "destroy", "VmResult", []),
        "/api/v1/container-images": {
            "get": _operation(
                "listImages",
                "List the image catalog and which images exist locally.",
                {"200": _json("ImageList", "The catalog's Docker images.")},
            )
        },
    }


def _dashboard_paths() -> dict[str, Any]:
    file_name = {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]*$", "maxLength": 64}
    asset_media = ("text/html", "text/javascript", "text/css", "image/svg+xml")
    return {
        "/": {
            "get": _operation(
                "dashboard",
                "The operator dashboard page; it asks for the token and holds no data.",
                {"200": _text("The page.", "text/html")},
                public=True,
            )
        },
        "/dashboard/{name}": {
            "get": _operation(
                "dashboardFile",
                "A static file of the dashboard: a module, the style sheet.",
                {
                    "200": {
                        "description": "The file.",
                        "content": {media: {"schema": {"type": "string"}} for media in asset_media},
                    }
                },
                parameters=[
                    {
                        **_param("name", file_name, "The file name.", where="path"),
                        "required": True,
                    }
                ],
                public=True,
            )
        },
    }


def _service_paths() -> dict[str, Any]:
    return {
        "/api/v1/events": {
            "get": _operation(
                "listEvents",
                "List or follow the event log.",
                _events_responses(),
                parameters=[
                    _param("instance", {"type": "string"}, "A name, with namespace, or ns/name."),
                    _namespace("Namespace of instance when it is a plain name."),
                    *_event_params(),
                ],
            )
        },
        "/api/v1/gc": {
            "get": _operation(
                "gcStatus",
                "The garbage collector's last pass, and whether its periodic sweep is on.",
                {"200": _json("GarbageCollectionStatus", "The last pass, or null before one.")},
            )
        },
        "/api/v1/gc/sweep": {
            "post": _operation(
                "gcSweep",
                "Run one garbage collection pass.",
                {"200": _json("GarbageCollection", "Every candidate with its result.")},
                parameters=[_bool("dryRun", "List what would be removed; remove nothing.")],
            )
        },
        "/healthz": {"get": _operation("healthz", "Liveness.", {"200": _text("ok")}, public=True)},
        "/readyz": {
            "get": _operation(
                "readyz",
                "Readiness: the store answers.",
                {"200": _text("ok"), "503": _problem("The store does not answer.")},
                public=True,
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics.",
                {"200": _text("The text exposition format.")},
                public=True,
            )
        },
        OPENAPI_PATH: {
            "get": _operation(
                "openapi",
                "This document.",
                {"200": {"description": "OpenAPI 3.1", "content": _content(JSON, {})}},
            )
        },
    }


def build_openapi() -> dict[str, Any]:
    """Build the OpenAPI document of the API."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": "Instances, their verbs, logs and events, loadouts, and routes "
            "compatible with the incumbent management server. Errors are RFC 7807 problem "
            "documents.",
        },
        "paths": {
            **_instance_paths(),
            **_loadout_paths(),
            **_gitsource_paths(),
            **_compat_paths(),
            **_service_paths(),
            **_dashboard_paths(),
            **mission_paths(),
        },
        "components": {
            "schemas": {**component_schemas(), **mission_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


class OpenApiRoutes:
    """Handler of ``GET /openapi.json``; the document is built on the first request."""

    def __init__(self) -> None:
        self._document: dict[str, Any] | None = None

    def routes(self) -> list[Route]:
        return [Route(OPENAPI_PATH, self.openapi, methods=["GET"])]

    async def openapi(self, request: Request) -> JSONResponse:
        if self._document is None:
            self._document = build_openapi()
        return JSONResponse(self._document)
