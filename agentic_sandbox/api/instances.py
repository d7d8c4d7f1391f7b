"""Instance routes: list, create, get, apply (PUT), merge patch (PATCH) and delete.

Responses carry the wire form of ``Resource.to_wire()``. Writes validate the body with the same
validator the manifest loaders use, so a field error reads the same from a file and from the API.
PUT is an idempotent apply through ``store.apply``: 201 when it created the object, 200 otherwise,
and the ``Apply-Outcome`` header says ``created``, ``updated`` or ``unchanged``.

Preconditions: a PUT or PATCH body with ``metadata.resourceVersion``, and a DELETE with
``?resourceVersion=``, is rejected with 409 unless the stored object has that resourceVersion.
A PUT without one is a plain apply. Every write takes ``dryRun=All`` (see ``api.dryrun``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentic_sandbox.api.bodies import read_json_object
from agentic_sandbox.api.dryrun import DryRunner, DryRunStore, discarding_recorder, query_dry_run
from agentic_sandbox.api.params import (
    bad_parameter,
    query_bool,
    query_label_selector,
    query_namespace,
    query_namespace_filter,
)
from agentic_sandbox.api.patch import (
    PATCH_ATTEMPTS,
    get_expecting,
    merge_patch,
    patch_resource_version,
    read_merge_patch,
    stored_manifest,
    write_owned_parts,
)
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.controller.deletion import force_delete
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.crds.meta import API_VERSION, SOURCE_ANNOTATION, Resource
from agentic_sandbox.crds.registry import KINDS
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import Conflict, FieldError, NotFound
from agentic_sandbox.store.apply import ApplyOutcome, apply
from agentic_sandbox.store.base import Store

KIND = Instance.KIND
LIST_KIND = f"{KIND}List"
COLLECTION_PATH = "/api/v1/instances"
# The source recorded on objects written through this API.
API_SOURCE = "api"
APPLY_OUTCOME_HEADER = "Apply-Outcome"


def _object_path(resource: Resource) -> str:
    return f"{COLLECTION_PATH}/{resource.metadata.name}?namespace={resource.metadata.namespace}"


def _query_phase(request: Request) -> Phase | None:
    raw = request.query_params.get("phase")
    if not raw:
        return None
    try:
        return Phase(raw)
    except ValueError:
        accepted = ", ".join(phase.value for phase in Phase)
        raise bad_parameter("phase", raw, f"expected one of: {accepted}") from None


def with_namespace(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Fill ``metadata.namespace`` from the URL when the body leaves it out, as kubectl does."""
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "namespace" not in metadata:
        return {**body, "metadata": {**metadata, "namespace": namespace}}
    return body


def _validate_instance(body: dict[str, Any]) -> Resource:
    # Checked before validation, because a body of another served kind (such as Loadout) would
    # otherwise be reported by that kind's field errors instead of by its kind.
    kind = body.get("kind")
    if isinstance(kind, str) and kind != KIND and kind in KINDS:
        raise ApiProblem(
            422,
            f"kind is {kind!r} but this route serves {KIND!r}",
            kind="Invalid",
            errors=[FieldError(path="kind", message=f"expected {KIND!r}", value=kind)],
        )
    return validate_resource(body)


def check_url_matches(resource: Resource, *, name: str, namespace: str) -> None:
    errors = []
    if resource.metadata.name != name:
        errors.append(
            FieldError(
                path="metadata.name",
                message=f"is {resource.metadata.name!r} but the URL names {name!r}",
                value=resource.metadata.name,
            )
        )
    if resource.metadata.namespace != namespace:
        errors.append(
            FieldError(
                path="metadata.namespace",
                message=f"is {resource.metadata.namespace!r} but the URL names {namespace!r}",
                value=resource.metadata.namespace,
            )
        )
    if errors:
        raise ApiProblem(
            422,
            f"the body describes {resource.key} but the URL names {namespace}/{name}; "
            "make metadata.name and metadata.namespace match the URL",
            kind="Invalid",
            errors=errors,
        )


async def check_api_may_write(
    store: Store,
    request: Request,
    *,
    namespace: str,
    name: str,
    deleting: bool = False,
    kind: str = KIND,
) -> None:
    """Reject a write to an object that another source (a file, a GitSource) owns, with 409.

    The owner would undo the change at its next sync, or the API would silently take the
    instance away from its file. For an apply, ``takeover=true`` moves ownership to the API on
    purpose. A delete must go through the owner, except for an instance already being deleted
    (so that a stuck deletion can still be forced).
    """
    if not deleting and query_bool(request, "takeover"):
        return
    try:
        existing = await store.get(kind, namespace, name)
    except NotFound:
        return
    owner = existing.metadata.annotations.get(SOURCE_ANNOTATION)
    if not owner or owner == API_SOURCE or existing.metadata.deletion_timestamp is not None:
        return
    if deleting:
        fix = "delete it there (remove the object from its file, or the file)"
    else:
        fix = (
            "edit it there, or repeat the request with takeover=true (sandboxctl apply "
            "--takeover) to manage it through the API from now on"
        )
    raise ApiProblem(
        409,
        f"{kind.lower()} {namespace}/{name} is managed by {owner}; {fix}",
        kind="OwnedByOtherSource",
    )


class InstanceRoutes:
    """Handlers of the ``/api/v1/instances`` routes over one store."""

    def __init__(
        self, store: Store, recorder: EventRecorder, *, dry_run: DryRunner | None = None
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._dry_run = dry_run or DryRunner()

    def _writer(self, dry_run: bool) -> tuple[Store, EventRecorder]:
        """Return the store and recorder a write uses: simulated ones for a dry run."""
        if dry_run:
            return DryRunStore(self._store), discarding_recorder()
        return self._store, self._recorder

    def routes(self) -> list[Route]:
        item_path = f"{COLLECTION_PATH}/{{name}}"
        return [
            method_route(
                COLLECTION_PATH, {"GET": self.list_instances, "POST": self.create_instance}
            ),
            method_route(
                item_path,
                {
                    "GET": self.get_instance,
                    "PUT": self.apply_instance,
                    "PATCH": self.patch_instance,
                    "DELETE": self.delete_instance,
                },
            ),
        ]

    async def list_instances(self, request: Request) -> Response:
        namespace = query_namespace_filter(request)
        labels = query_label_selector(request)
        phase = _query_phase(request)

        # The stored texts are already the wire form, so they are joined into the body as they
        # are: parsing and re-serialising 1000 objects would cost over 100 ms.
        texts, version = await self._store.list_json(
            KIND, namespace=namespace, labels=labels, phase=phase
        )
        head = json.dumps(
            {
                "apiVersion": API_VERSION,
                "kind": LIST_KIND,
                "metadata": {"resourceVersion": str(version)},
            }
        )
        body = head[:-1] + ', "items": [' + ",".join(texts) + "]}"
        return Response(body, media_type="application/json")

    async def create_instance(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        dry_run = query_dry_run(request)
        body = with_namespace(await read_json_object(request), namespace)
        resource = _validate_instance(body)
        resource.metadata.annotations[SOURCE_ANNOTATION] = API_SOURCE

        store, _ = self._writer(dry_run)
        created = await store.create(resource)
        headers = {"Location": _object_path(created)}
        if dry_run:
            return await self._dry_run.respond(
                created, action="create", outcome="created", status_code=201, headers=headers
            )
        return JSONResponse(created.to_wire(), status_code=201, headers=headers)

    async def get_instance(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        resource = await self._store.get(KIND, namespace, request.path_params["name"])
        return JSONResponse(resource.to_wire())

    async def apply_instance(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        namespace = query_namespace(request)
        dry_run = query_dry_run(request)
        body = with_namespace(await read_json_object(request), namespace)
        resource = _validate_instance(body)
        check_url_matches(resource, name=name, namespace=namespace)
        store, _ = self._writer(dry_run)
        await check_api_may_write(store, request, namespace=namespace, name=name)

        expected = resource.metadata.resource_version
        if expected is None:
            applied, outcome = await apply(store, resource, source=API_SOURCE)
        else:
            current = await get_expecting(
                store, kind=KIND, namespace=namespace, name=name, resource_version=expected
            )
            applied, outcome = await write_owned_parts(store, current, resource, source=API_SOURCE)
        status = 201 if outcome is ApplyOutcome.CREATED else 200
        headers = {APPLY_OUTCOME_HEADER: outcome.value, "Location": _object_path(applied)}
        if dry_run:
            return await self._dry_run.respond(
                applied, action="apply", outcome=outcome.value, status_code=status, headers=headers
            )
        return JSONResponse(applied.to_wire(), status_code=status, headers=headers)

    async def patch_instance(self, request: Request) -> JSONResponse:
        """Apply a JSON merge patch to the stored manifest and write the result like a PUT.

        Without a resourceVersion in the patch, a concurrent change is not overwritten: the
        patch is applied again to the fresh object, a few times at most.
        """
        name = request.path_params["name"]
        namespace = query_namespace(request)
        dry_run = query_dry_run(request)
        patch = await read_merge_patch(request)
        expected = patch_resource_version(patch)
        store, _ = self._writer(dry_run)
        await check_api_may_write(store, request, namespace=namespace, name=name)

        for _ in range(PATCH_ATTEMPTS):
            if expected is None:
                current = await store.get(KIND, namespace, name)
            else:
                current = await get_expecting(
                    store, kind=KIND, namespace=namespace, name=name, resource_version=expected
                )
            resource = _validate_instance(merge_patch(stored_manifest(current), patch))
            check_url_matches(resource, name=name, namespace=namespace)
            try:
                patched, outcome = await write_owned_parts(
                    store, current, resource, source=API_SOURCE
                )
            except Conflict:
                if expected is not None:
                    raise
                continue
            break
        else:
            raise Conflict(f"instance {namespace}/{name} kept changing while it was patched")

        headers = {APPLY_OUTCOME_HEADER: outcome.value}
        if dry_run:
            return await self._dry_run.respond(
                patched, action="patch", outcome=outcome.value, headers=headers
            )
        return JSONResponse(patched.to_wire(), headers=headers)

    async def delete_instance(self, request: Request) -> JSONResponse:
        """Delete an instance and return the object as it was last stored.

        While finalizers remain, the store keeps the object with deletionTimestamp set, and the
        response shows that. Once the record is gone, the response is the object read just
        before the delete. ``force=true`` also releases the runtime finalizer, so the record
        goes even when its sandboxes cannot be removed; that is recorded as an audit event.
        ``resourceVersion`` makes the delete conditional on the stored object's version.
        """
        namespace = query_namespace(request)
        name = request.path_params["name"]
        dry_run = query_dry_run(request)
        expected = request.query_params.get("resourceVersion") or None
        store, recorder = self._writer(dry_run)
        await check_api_may_write(store, request, namespace=namespace, name=name, deleting=True)

        if query_bool(request, "force"):
            if expected is not None:
                # NOTE: checked before the forced delete, not atomically with it.
                await get_expecting(
                    store, kind=KIND, namespace=namespace, name=name, resource_version=expected
                )
            if dry_run:
                # A forced delete removes the record whatever its finalizers, and the garbage
                # collector, not the reconciler, removes the sandboxes it leaves.
                existing = await store.get(KIND, namespace, name)
                return await self._dry_run.respond(
                    existing, action="delete", outcome="deleted", with_plan=False
                )
            forced = await force_delete(
                store, recorder, kind=KIND, namespace=namespace, name=name, requested_by="api"
            )
            return JSONResponse(forced.to_wire())

        existing = await store.get(KIND, namespace, name)
        marked = await store.delete(KIND, namespace, name, resource_version=expected)
        if dry_run:
            return await self._dry_run.respond(
                marked, action="delete", outcome="deleted" if marked is None else "marked"
            )
        return JSONResponse((marked or existing).to_wire())
