"""``/api/v1/containers``: the incumbent's container routes as a view over Docker Instances.

A container is an Instance with ``spec.runtime: docker``, addressed by the Instance name in one
namespace (``?namespace=``, default ``default``). In the ``default`` namespace the Docker
container has the same name; in others it is named ``NAMESPACE.NAME``.
``POST`` creates the Instance and returns 201 while it is still pending. Start and stop record
the verb and return at once, so ``status`` in every response is what the controller has observed
so far, not the outcome of the request. ``DELETE`` marks the Instance for deletion, and the
controller removes the container before the record goes.

Status words follow the incumbent: ``running``, ``stopped`` (also for a sandbox that exited by
itself), and otherwise the Instance phase in lower case, such as ``pending`` or ``terminating``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentic_sandbox.api.bodies import read_json_object
from agentic_sandbox.api.compat import (
    CreateRequest,
    check_known_fields,
    create_instance,
    delete_instance,
    find_instance,
    optional_string,
    request_lifecycle,
    required_string,
    value_or,
)
from agentic_sandbox.api.instances import KIND
from agentic_sandbox.api.params import bad_parameter, query_int, query_namespace
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.api.verbs import MAX_GRACE_SECONDS
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.controller.verbs import Verb
from agentic_sandbox.crds.documents import format_path
from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.crds.validation import describe
from agentic_sandbox.errors import FieldError
from agentic_sandbox.store.base import Store

COLLECTION_PATH = "/api/v1/containers"
RUNTIME = "docker"
NOUN = "container"
BODY_FIELDS = ("name", "image", "env", "mounts", "network", "cmd", "labels", "agentshare")
STATUS_FILTERS = ("running", "stopped", "all")
# Phases the incumbent reports as "stopped": the container exists and is not running.
STOPPED_PHASES = (Phase.STOPPED, Phase.SUCCEEDED, Phase.FAILED)
# The controller sets AGENT_ID to the instance name; incumbent clients send the same value.
AGENT_ID = "AGENT_ID"


def container_status(instance: Instance) -> str:
    phase = instance.status.phase
    if instance.metadata.deletion_timestamp is not None:
        return "terminating"
    if phase == Phase.RUNNING:
        return "running"
    if phase in STOPPED_PHASES:
        return "stopped"
    return phase.value.lower()


def container_view(instance: Instance) -> dict[str, Any]:
    """Render an Instance in the incumbent's container shape, plus the Instance's own facts."""
    wire = instance.to_wire()
    metadata, status = wire["metadata"], wire.get("status", {})
    ref = instance.status.runtime_ref
    running = instance.status.phase == Phase.RUNNING
    last_exit = status.get("lastExit") or {}
    return {
        "id": ref.id if ref is not None and ref.runtime == RUNTIME else None,
        "name": instance.metadata.name,
        "namespace": instance.metadata.namespace,
        "image": instance.spec.image,
        "status": container_status(instance),
        "phase": instance.status.phase.value,
        "instance_id": instance.metadata.uid,
        "created": metadata.get("creationTimestamp"),
        "started_at": status.get("startedAt"),
        "finished_at": None if running else last_exit.get("finishedAt"),
        "exit_code": None if running else last_exit.get("code"),
        "ip_address": instance.status.ip,
        "network": instance.spec.network,
        "labels": dict(instance.metadata.labels),
        "message": instance.status.message,
    }


def _env_item(item: object, where: str, errors: list[FieldError]) -> tuple[object, object] | None:
    """Split one env entry, ``"KEY=VALUE"`` or ``{"key": ..., "value": ...}``, into its parts."""
    if isinstance(item, str):
        key, separator, value = item.partition("=")
        if separator and key:
            return key, value
        message = "expected 'KEY=VALUE'"
    elif isinstance(item, dict) and set(item) == {"key", "value"}:
        if isinstance(item["key"], str) and item["key"]:
            return item["key"], item["value"]
        message = f"key is {describe(item['key'])}; expected a variable name"
    else:
        message = f"expected 'KEY=VALUE' or an object with key and value, got {describe(item)}"
    errors.append(FieldError(path=where, message=message, value=item))
    return None


def parse_env(
    value: object, *, name: str, errors: list[FieldError], paths: list[tuple[str, str]]
) -> dict[str, object]:
    """Build ``spec.env`` from the incumbent's env list; record where each key came from."""
    if value is None:
        return {}
    if not isinstance(value, list):
        errors.append(
            FieldError(
                "env", f"expected a list of 'KEY=VALUE' strings, got {describe(value)}", value
            )
        )
        return {}
    env: dict[str, object] = {}
    origin: dict[str, str] = {}
    for index, item in enumerate(value):
        where = f"env[{index}]"
        parsed = _env_item(item, where, errors)
        if parsed is None:
            continue
        key, entry = parsed
        assert isinstance(key, str)
        if key == AGENT_ID and entry == name:
            continue  # the controller sets exactly this value
        if key in env:
            errors.append(FieldError(where, f"{key} is already set by {origin[key]}", item))
            continue
        env[key] = entry
        origin[key] = where
        paths.append((format_path(("spec", "env", key)), where))
    return env


def parse_command(value: object, errors: list[FieldError]) -> object:
    """Return ``spec.command`` from ``cmd``: a list, with an empty one meaning the image's own."""
    if value is None or value == []:
        return None
    if isinstance(value, str):
        errors.append(
            FieldError(
                "cmd",
                f"expected a list of arguments, got a string; write ['sh', '-c', {value!r}]",
                value,
            )
        )
        return None
    return value


def parse_create_body(body: dict[str, Any]) -> CreateRequest:
    """Translate a create body into Instance parts, collecting the problems of each field."""
    errors = check_known_fields(body, BODY_FIELDS)
    name = required_string(body, "name", errors) or ""
    network = optional_string(body, "network", errors)
    request = CreateRequest(
        name=name,
        labels=value_or(body, "labels", {}),
        spec={"runtime": RUNTIME, "image": required_string(body, "image", errors)},
        paths=[
            ("spec.image", "image"),
            ("spec.command", "cmd"),
            ("spec.mounts", "mounts"),
            ("spec.network", "network"),
            ("spec.agentshare", "agentshare"),
            ("metadata.labels", "labels"),
        ],
        errors=errors,
    )
    spec = request.spec
    spec["env"] = parse_env(body.get("env"), name=name, errors=errors, paths=request.paths)
    command = parse_command(body.get("cmd"), errors)
    if command is not None:
        spec["command"] = command
    for key in ("mounts", "agentshare"):
        if body.get(key) is not None:
            spec[key] = body[key]
    if network is not None:
        spec["network"] = network
    return request


class ContainerRoutes:
    """Handlers of the ``/api/v1/containers`` routes over one store."""

    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self._store = store
        self._recorder = recorder

    def routes(self) -> list[Route]:
        item_path = f"{COLLECTION_PATH}/{{name}}"
        return [
            method_route(COLLECTION_PATH, {"GET": self.list_containers, "POST": self.create}),
            method_route(item_path, {"GET": self.get_container, "DELETE": self.delete}),
            method_route(f"{item_path}/start", {"POST": self.start}),
            method_route(f"{item_path}/stop", {"POST": self.stop}),
        ]

    async def list_containers(self, request: Request) -> JSONResponse:
        requested = request.query_params.get("status") or "all"
        if requested not in STATUS_FILTERS:
            raise bad_parameter(
                "status", requested, f"expected one of: {', '.join(STATUS_FILTERS)}"
            )
        namespace = query_namespace(request)
        listing = await self._store.list(KIND, namespace=namespace)
        views = [
            container_view(item)
            for item in listing.items
            if isinstance(item, Instance) and item.spec.runtime == RUNTIME
        ]
        if requested != "all":
            views = [view for view in views if view["status"] == requested]
        return JSONResponse({"total": len(views), "containers": views})

    async def create(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        parsed = parse_create_body(await read_json_object(request))
        created = await create_instance(self._store, parsed, namespace=namespace, noun=NOUN)
        location = f"{COLLECTION_PATH}/{parsed.name}?namespace={namespace}"
        return JSONResponse(
            container_view(created), status_code=201, headers={"Location": location}
        )

    async def get_container(self, request: Request) -> JSONResponse:
        instance = await find_instance(
            self._store,
            namespace=query_namespace(request),
            name=request.path_params["name"],
            runtime=RUNTIME,
            noun=NOUN,
        )
        return JSONResponse(container_view(instance))

    async def delete(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        marked = await delete_instance(
            self._store,
            request,
            namespace=query_namespace(request),
            name=name,
            runtime=RUNTIME,
            noun=NOUN,
        )
        status = "removed" if marked is None else container_status(marked)
        return JSONResponse({"name": name, "deleted": True, "status": status})

    async def start(self, request: Request) -> JSONResponse:
        instance = await self._verb(request, Verb.START, grace_seconds=None)
        return JSONResponse(self._verb_body(instance, Verb.START))

    async def stop(self, request: Request) -> JSONResponse:
        grace = query_int(request, "timeout", default=None, minimum=0, maximum=MAX_GRACE_SECONDS)
        instance = await self._verb(request, Verb.STOP, grace_seconds=grace)
        body = self._verb_body(instance, Verb.STOP)
        body["timeout"] = (
            grace if grace is not None else instance.spec.termination_grace_period_seconds
        )
        return JSONResponse(body)

    async def _verb(self, request: Request, verb: Verb, *, grace_seconds: int | None) -> Instance:
        return await request_lifecycle(
            self._store,
            self._recorder,
            namespace=query_namespace(request),
            name=request.path_params["name"],
            runtime=RUNTIME,
            noun=NOUN,
            verb=verb,
            grace_seconds=grace_seconds,
        )

    @staticmethod
    def _verb_body(instance: Instance, verb: Verb) -> dict[str, Any]:
        view = container_view(instance)
        return {
            "name": view["name"],
            "action": verb.value,
            "status": view["status"],
            "container": view,
        }
