"""``/api/v1/vms``: the incumbent's VM routes as a view over libvirt Instances.

A VM is an Instance with ``spec.runtime: libvirt``, addressed like a container (see
``compat_containers``). The create body takes the incumbent's fields where they map onto an
Instance: ``name``, ``loadout`` or ``profile``, ``vcpus``, ``memory_mb``, ``disk_gb``,
``agentshare``, ``start`` and ``image`` (a base disk image). The Instance forms ``cpus``,
``memory`` and ``disk`` are accepted in place of the numeric ones. Unset fields get the
incumbent's defaults: loadout ``agentic-dev`` unless ``image`` is set, 4 vCPUs, 8192 MiB,
50 GiB, agentshare on, and started. ``composition`` and ``ssh_key`` have no Instance field yet,
so they are rejected rather than ignored.

Stop takes ``?timeout=`` (seconds) and ``?force=true``. Destroy is a stop with no grace period.
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
from agentic_sandbox.api.params import bad_parameter, query_bool, query_int, query_namespace
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.api.verbs import MAX_GRACE_SECONDS
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.controller.verbs import Verb
from agentic_sandbox.crds.instance import Instance, Phase, RunStrategy
from agentic_sandbox.crds.meta import ConditionStatus
from agentic_sandbox.crds.validation import describe
from agentic_sandbox.errors import FieldError
from agentic_sandbox.store.base import Store

COLLECTION_PATH = "/api/v1/vms"
RUNTIME = "libvirt"
NOUN = "VM"
STATE_FILTERS = ("running", "stopped", "all")
# The incumbent's defaults for a VM created without these fields.
DEFAULT_LOADOUT = "agentic-dev"
DEFAULT_VCPUS = 4
DEFAULT_MEMORY_MB = 8192
DEFAULT_DISK_GB = 50
# Body fields with no Instance field yet, and what to do instead.
UNSUPPORTED_FIELDS = {
    "composition": "compositions are not supported; name a loadout instead",
    "ssh_key": "SSH keys are not injected by this server yet; remove the field",
}
# Each resource as (incumbent field, Instance field, unit suffix, default).
RESOURCE_FIELDS = (
    ("vcpus", "cpus", "", DEFAULT_VCPUS),
    ("memory_mb", "memory", "Mi", DEFAULT_MEMORY_MB),
    ("disk_gb", "disk", "Gi", DEFAULT_DISK_GB),
)
BODY_FIELDS = (
    *(field for resource in RESOURCE_FIELDS for field in resource[:2]),
    *UNSUPPORTED_FIELDS,
    "name",
    "loadout",
    "profile",
    "image",
    "agentshare",
    "start",
    "labels",
)
MEBIBYTE = 2**20
# Phases the incumbent's libvirt states name differently.
STATE_BY_PHASE = {
    Phase.RUNNING: "running",
    Phase.STOPPED: "stopped",
    Phase.SUCCEEDED: "stopped",
    Phase.FAILED: "stopped",
    Phase.STOPPING: "shutdown",
    Phase.CRASH_LOOP_BACK_OFF: "crashed",
}


def vm_state(instance: Instance) -> str:
    if instance.metadata.deletion_timestamp is not None:
        return "terminating"
    phase = instance.status.phase
    return STATE_BY_PHASE.get(phase, phase.value.lower())


def vm_view(instance: Instance) -> dict[str, Any]:
    """Render an Instance in the incumbent's VM shape, plus the Instance's own facts."""
    wire = instance.to_wire()
    ref = instance.status.runtime_ref
    resources = instance.spec.resources
    agent = instance.status.condition("AgentConnected")
    connected_at = instance.status.agent.connected_at if instance.status.agent else None
    cpus: float = resources.cpus
    memory_mb = resources.memory_bytes // MEBIBYTE
    # The running domain's own figures win: a loadout may set them instead of the Instance.
    details = ref.details if ref is not None and ref.runtime == RUNTIME else {}
    if details.get("vcpus", "").isdigit():
        cpus = float(details["vcpus"])
    if details.get("memoryMiB", "").isdigit():
        memory_mb = int(details["memoryMiB"])
    return {
        "name": instance.metadata.name,
        "namespace": instance.metadata.namespace,
        "state": vm_state(instance),
        "phase": instance.status.phase.value,
        "uuid": ref.id if ref is not None and ref.runtime == RUNTIME else None,
        "instance_id": instance.metadata.uid,
        "vcpus": int(cpus) if cpus.is_integer() else cpus,
        "memory_mb": memory_mb,
        "disk": resources.disk,
        "loadout": instance.spec.loadout,
        "ip_address": instance.status.ip,
        "created": wire["metadata"].get("creationTimestamp"),
        "started_at": wire.get("status", {}).get("startedAt"),
        "agent": {
            "connected": agent is not None and agent.status == ConditionStatus.TRUE,
            "connected_at": connected_at.isoformat() if connected_at else None,
        },
        "message": instance.status.message,
    }


def _resources(body: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for number_field, quantity_field, unit, default in RESOURCE_FIELDS:
        number, quantity = body.get(number_field), body.get(quantity_field)
        if number is not None and quantity is not None:
            message = f"set either {number_field} or {quantity_field}, not both"
            errors.append(FieldError(quantity_field, message, quantity))
        elif quantity is not None:
            resources[quantity_field] = quantity
        elif number is None:
            resources[quantity_field] = f"{default}{unit}" if unit else default
        elif isinstance(number, int) and not isinstance(number, bool) and number >= 1:
            resources[quantity_field] = f"{number}{unit}" if unit else number
        else:
            message = f"expected a whole number of at least 1, got {describe(number)}"
            errors.append(FieldError(number_field, message, number))
    return resources


def _paths(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Map Instance fields back to the body fields that supplied them."""
    paths = [
        ("spec.loadout", "profile" if body.get("profile") is not None else "loadout"),
        ("spec.image", "image"),
        ("spec.agentshare", "agentshare"),
        ("metadata.labels", "labels"),
    ]
    for number_field, quantity_field, _, _ in RESOURCE_FIELDS:
        supplied = number_field if body.get(number_field) is not None else quantity_field
        paths.append((f"spec.resources.{quantity_field}", supplied))
    return paths


def parse_create_body(body: dict[str, Any]) -> CreateRequest:
    """Translate a create body into Instance parts, collecting the problems of each field."""
    errors = check_known_fields(body, BODY_FIELDS)
    for field, message in UNSUPPORTED_FIELDS.items():
        if body.get(field) is not None:
            errors.append(FieldError(field, message, body[field]))
    name = required_string(body, "name", errors) or ""
    loadout = optional_string(body, "loadout", errors)
    profile = optional_string(body, "profile", errors)
    if loadout is not None and profile is not None:
        errors.append(FieldError("profile", "set either loadout or profile, not both", profile))
    start = value_or(body, "start", True)
    if not isinstance(start, bool):
        errors.append(FieldError("start", f"expected true or false, got {describe(start)}", start))

    spec: dict[str, Any] = {
        "runtime": RUNTIME,
        "loadout": loadout or profile or (None if body.get("image") else DEFAULT_LOADOUT),
        "resources": _resources(body, errors),
        "agentshare": value_or(body, "agentshare", True),
        "runStrategy": (RunStrategy.HALTED if start is False else RunStrategy.ALWAYS).value,
    }
    if body.get("image") is not None:
        spec["image"] = body["image"]
    return CreateRequest(
        name=name, labels=value_or(body, "labels", {}), spec=spec, paths=_paths(body), errors=errors
    )


class VmRoutes:
    """Handlers of the ``/api/v1/vms`` routes over one store."""

    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self._store = store
        self._recorder = recorder

    def routes(self) -> list[Route]:
        item_path = f"{COLLECTION_PATH}/{{name}}"
        return [
            method_route(COLLECTION_PATH, {"GET": self.list_vms, "POST": self.create}),
            method_route(item_path, {"GET": self.get_vm, "DELETE": self.delete}),
            method_route(f"{item_path}/start", {"POST": self.start}),
            method_route(f"{item_path}/stop", {"POST": self.stop}),
            method_route(f"{item_path}/destroy", {"POST": self.destroy}),
        ]

    async def list_vms(self, request: Request) -> JSONResponse:
        requested = request.query_params.get("state") or "all"
        if requested not in STATE_FILTERS:
            raise bad_parameter("state", requested, f"expected one of: {', '.join(STATE_FILTERS)}")
        prefix = request.query_params.get("prefix") or "*"
        listing = await self._store.list(KIND, namespace=query_namespace(request))
        views = [
            vm_view(item)
            for item in listing.items
            if isinstance(item, Instance)
            and item.spec.runtime == RUNTIME
            and (prefix == "*" or item.metadata.name.startswith(prefix))
        ]
        if requested != "all":
            views = [view for view in views if view["state"] == requested]
        return JSONResponse({"vms": views, "total": len(views)})

    async def create(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        parsed = parse_create_body(await read_json_object(request))
        name = parsed.name
        created = await create_instance(self._store, parsed, namespace=namespace, noun=NOUN)
        location = f"{COLLECTION_PATH}/{name}?namespace={namespace}"
        return JSONResponse(
            {"vm": vm_view(created), "message": f"VM {name} created; the controller provisions it"},
            status_code=201,
            headers={"Location": location},
        )

    async def get_vm(self, request: Request) -> JSONResponse:
        instance = await find_instance(
            self._store,
            namespace=query_namespace(request),
            name=request.path_params["name"],
            runtime=RUNTIME,
            noun=NOUN,
        )
        return JSONResponse(vm_view(instance))

    async def delete(self, request: Request) -> JSONResponse:
        # NOTE: delete_disk and force are parsed for compatibility but have no effect. A delete
        # always stops the VM first, and what happens to its disk is up to the libvirt runtime.
        query_bool(request, "delete_disk")
        query_bool(request, "force")
        name = request.path_params["name"]
        marked = await delete_instance(
            self._store,
            request,
            namespace=query_namespace(request),
            name=name,
            runtime=RUNTIME,
            noun=NOUN,
        )
        state = "removed" if marked is None else vm_state(marked)
        return JSONResponse({"name": name, "deleted": True, "state": state})

    async def start(self, request: Request) -> JSONResponse:
        instance = await self._verb(request, Verb.START, grace_seconds=None)
        return self._verb_response(instance, "start requested")

    async def stop(self, request: Request) -> JSONResponse:
        grace = query_int(request, "timeout", default=None, minimum=0, maximum=MAX_GRACE_SECONDS)
        if query_bool(request, "force"):
            grace = 0
        instance = await self._verb(request, Verb.STOP, grace_seconds=grace)
        return self._verb_response(instance, "stop requested")

    async def destroy(self, request: Request) -> JSONResponse:
        instance = await self._verb(request, Verb.STOP, grace_seconds=0)
        return self._verb_response(instance, "forced stop requested")

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
    def _verb_response(instance: Instance, message: str) -> JSONResponse:
        view = vm_view(instance)
        return JSONResponse({"vm": view, "message": f"{message} for VM {view['name']}"})
