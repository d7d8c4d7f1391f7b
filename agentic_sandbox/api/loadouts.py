"""Loadout routes: the catalog (files and store, merged) and writes of Loadout resources.

Reads go through the ``LoadoutCatalog``, so they show every loadout of the namespace whether it
comes from a file of the loadout directory or from the store, and each one resolved:

- ``GET /api/v1/loadouts``: one summary per loadout (source, extends, the merged cpus, memory,
  disk, base image and kernel), plus one entry per invalid loadout file, with its error;
- ``GET /api/v1/loadouts/{name}``: the summary, the loadout as written, and ``resolved``: the
  merge chain, the merged spec, and which loadout set (``setBy``) or unset (``unsetBy``) each
  value. A loadout that does not resolve has ``resolved: null`` and an ``error``.

Writes change Loadout resources in the store only; a file loadout is edited in its file.
``POST`` creates, ``PUT`` applies (201 when it created the object, 200 otherwise, with the
``Apply-Outcome`` header), ``DELETE`` removes. A body or query ``resourceVersion`` makes a PUT or
DELETE conditional, as for instances. A Loadout that a manifest file or git source wrote is
rejected with 409, except for a PUT with ``takeover=true``.
NOTE: loadout writes have no dry run, so a write with ``dryRun=All`` is rejected with 400.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentic_sandbox.api.bodies import read_json_object
from agentic_sandbox.api.dryrun import query_dry_run
from agentic_sandbox.api.params import bad_parameter, query_bool, query_namespace
from agentic_sandbox.api.patch import get_expecting, write_owned_parts
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.controller.loadouts import STORE_SOURCE, CatalogEntry, LoadoutCatalog
from agentic_sandbox.crds.instance import DEFAULT_MEMORY
from agentic_sandbox.crds.loadout import KIND, Loadout
from agentic_sandbox.crds.meta import API_VERSION, SOURCE_ANNOTATION, Resource
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import FieldError, NotFound
from agentic_sandbox.store.apply import ApplyOutcome, apply
from agentic_sandbox.store.base import Store

COLLECTION_PATH = "/api/v1/loadouts"
CATALOG_KIND = "LoadoutCatalog"
# The source recorded on Loadouts written through this API.
API_SOURCE = "api"
APPLY_OUTCOME_HEADER = "Apply-Outcome"


def loadout_summary(entry: CatalogEntry) -> dict[str, Any]:
    """Return the list item of one catalog entry: where it comes from and its merged sizes."""
    resolved = entry.resolved
    spec = resolved.spec if resolved is not None else None
    resources = spec.resources if spec is not None else None
    memory = None
    if resolved is not None:
        memory = (resources.memory if resources is not None else None) or DEFAULT_MEMORY
    return {
        "name": entry.name,
        "source": entry.source,
        "line": entry.line,
        "overrides": entry.overrides,
        "extends": list(entry.loadout.spec.extends or []) if entry.loadout else [],
        "cpus": resolved.cpus if resolved is not None else None,
        "memory": memory,
        "disk": resources.disk if resources is not None else None,
        "baseImage": spec.base_image if spec is not None else None,
        "kernel": spec.kernel if spec is not None else None,
        "error": entry.error,
    }


def loadout_detail(entry: CatalogEntry) -> dict[str, Any]:
    """Return the summary plus the loadout as written and its resolved form."""
    resolved = None
    if entry.resolved is not None:
        origins = entry.origins
        resolved = {
            "chain": list(entry.resolved.chain),
            "spec": entry.resolved.spec.written(),
            "setBy": origins.set_by if origins is not None else {},
            "unsetBy": origins.unset_by if origins is not None else {},
        }
    return {
        **loadout_summary(entry),
        "loadout": entry.loadout.to_wire() if entry.loadout is not None else None,
        "resolved": resolved,
    }


def _object_path(resource: Resource) -> str:
    return f"{COLLECTION_PATH}/{resource.metadata.name}?namespace={resource.metadata.namespace}"


def _reject_dry_run(request: Request) -> None:
    if query_dry_run(request):
        raise bad_parameter(
            "dryRun",
            request.query_params.get("dryRun"),
            "loadout writes have no dry run; validate the manifest with "
            "'sandboxctl apply --dry-run=client' instead",
        )


def _validate_loadout(body: dict[str, Any], namespace: str) -> Loadout:
    kind = body.get("kind")
    if isinstance(kind, str) and kind != KIND:
        raise ApiProblem(
            422,
            f"kind is {kind!r} but this route serves {KIND!r}",
            kind="Invalid",
            errors=[FieldError(path="kind", message=f"expected {KIND!r}", value=kind)],
        )
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "namespace" not in metadata:
        body = {**body, "metadata": {**metadata, "namespace": namespace}}
    resource = validate_resource(body)
    assert isinstance(resource, Loadout)  # the kind was checked above
    return resource


def _check_url_matches(resource: Loadout, *, name: str, namespace: str) -> None:
    if resource.metadata.name == name and resource.metadata.namespace == namespace:
        return
    raise ApiProblem(
        422,
        f"the body describes loadout {resource.key} but the URL names {namespace}/{name}; "
        "make metadata.name and metadata.namespace match the URL",
        kind="Invalid",
        errors=[
            FieldError(
                path="metadata.name",
                message=f"expected {name!r} in namespace {namespace!r}",
                value=resource.key,
            )
        ],
    )


class LoadoutRoutes:
    """Handlers of the ``/api/v1/loadouts`` routes over one store and its loadout catalog."""

    def __init__(self, store: Store, catalog: LoadoutCatalog) -> None:
        self._store = store
        self._catalog = catalog

    def routes(self) -> list[Route]:
        return [
            method_route(COLLECTION_PATH, {"GET": self.list_loadouts, "POST": self.create_loadout}),
            method_route(
                f"{COLLECTION_PATH}/{{name}}",
                {
                    "GET": self.get_loadout,
                    "PUT": self.apply_loadout,
                    "DELETE": self.delete_loadout,
                },
            ),
        ]

    async def list_loadouts(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        entries = await self._catalog.list(namespace=namespace)
        return JSONResponse(
            {
                "apiVersion": API_VERSION,
                "kind": CATALOG_KIND,
                "items": [loadout_summary(entry) for entry in entries],
            }
        )

    async def get_loadout(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        entry = await self._catalog.get(request.path_params["name"], namespace=namespace)
        return JSONResponse(loadout_detail(entry))

    async def create_loadout(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        _reject_dry_run(request)
        resource = _validate_loadout(await read_json_object(request), namespace)
        resource.metadata.annotations[SOURCE_ANNOTATION] = API_SOURCE
        created = await self._store.create(resource)
        headers = {"Location": _object_path(created)}
        return JSONResponse(created.to_wire(), status_code=201, headers=headers)

    async def apply_loadout(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        namespace = query_namespace(request)
        _reject_dry_run(request)
        resource = _validate_loadout(await read_json_object(request), namespace)
        _check_url_matches(resource, name=name, namespace=namespace)
        await self._check_may_write(request, namespace=namespace, name=name)

        expected = resource.metadata.resource_version
        if expected is None:
            applied, outcome = await apply(self._store, resource, source=API_SOURCE)
        else:
            current = await get_expecting(
                self._store, kind=KIND, namespace=namespace, name=name, resource_version=expected
            )
            applied, outcome = await write_owned_parts(
                self._store, current, resource, source=API_SOURCE
            )
        status = 201 if outcome is ApplyOutcome.CREATED else 200
        headers = {APPLY_OUTCOME_HEADER: outcome.value, "Location": _object_path(applied)}
        return JSONResponse(applied.to_wire(), status_code=status, headers=headers)

    async def delete_loadout(self, request: Request) -> JSONResponse:
        """Delete a Loadout resource and return it as it was last stored."""
        name = request.path_params["name"]
        namespace = query_namespace(request)
        _reject_dry_run(request)
        expected = request.query_params.get("resourceVersion") or None
        await self._check_may_write(request, namespace=namespace, name=name, deleting=True)
        try:
            existing = await self._store.get(KIND, namespace, name)
        except NotFound:
            raise await self._not_in_store(namespace, name) from None
        marked = await self._store.delete(KIND, namespace, name, resource_version=expected)
        return JSONResponse((marked or existing).to_wire())

    async def _not_in_store(self, namespace: str, name: str) -> NotFound:
        """Explain a delete of a loadout that only a file defines, or that does not exist."""
        try:
            entry = await self._catalog.get(name, namespace=namespace)
        except NotFound as error:
            return error
        if entry.source == STORE_SOURCE:
            return NotFound(f"loadout {namespace}/{name} was deleted by another request")
        return NotFound(
            f"loadout {name!r} is not a resource in namespace {namespace}; it is defined in the "
            f"file {entry.source}, so remove it from that file"
        )

    async def _check_may_write(
        self, request: Request, *, namespace: str, name: str, deleting: bool = False
    ) -> None:
        """Reject a write to a Loadout that another source (a manifest file, git) wrote."""
        if not deleting and query_bool(request, "takeover"):
            return
        try:
            existing = await self._store.get(KIND, namespace, name)
        except NotFound:
            return
        owner = existing.metadata.annotations.get(SOURCE_ANNOTATION)
        if not owner or owner == API_SOURCE:
            return
        fix = "delete it there" if deleting else "edit it there, or repeat with takeover=true"
        raise ApiProblem(
            409,
            f"loadout {namespace}/{name} is managed by {owner}; {fix}",
            kind="OwnedByOtherSource",
        )
