"""GitSource routes: list, create, get, apply (PUT), delete, sync (the webhook) and diff.

The resource routes work like the instance routes (``api.instances``): bodies are validated
with the manifest validator, PUT is an apply (201 created, 200 otherwise, with the
``Apply-Outcome`` header), and a GitSource that a manifest file or another GitSource owns is
rejected with 409 naming the owner unless the request sets ``takeover=true``.

``POST /api/v1/gitsources/{name}/sync`` wakes the source's sync at once and returns 202 with
the source as stored; a git host's push webhook can call it. ``GET .../diff`` fetches and
plans like a sync and returns what it would change, changing nothing. Both need the git
sync of the running controller; without it they return 503.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentic_sandbox.api.bodies import read_json_object
from agentic_sandbox.api.instances import (
    API_SOURCE,
    APPLY_OUTCOME_HEADER,
    check_api_may_write,
    check_url_matches,
    with_namespace,
)
from agentic_sandbox.api.params import query_namespace, query_namespace_filter
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.routing import method_route
from agentic_sandbox.crds.gitsource import GitSource
from agentic_sandbox.crds.meta import API_VERSION, SOURCE_ANNOTATION, Resource
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import FieldError, SandboxError, StoreError
from agentic_sandbox.store.apply import ApplyOutcome, apply
from agentic_sandbox.store.base import Store

KIND = GitSource.KIND
COLLECTION_PATH = "/api/v1/gitsources"


class GitSyncer(Protocol):
    """The controller's git sync, as the routes use it."""

    async def request_sync(self, namespace: str, name: str) -> Resource: ...

    async def preview(self, namespace: str, name: str) -> dict[str, Any]: ...


def _object_path(resource: Resource) -> str:
    return f"{COLLECTION_PATH}/{resource.metadata.name}?namespace={resource.metadata.namespace}"


def _validate(body: dict[str, Any], namespace: str) -> Resource:
    kind = body.get("kind")
    if kind != KIND:
        raise ApiProblem(
            422,
            f"kind is {kind!r} but this route serves {KIND!r}",
            kind="Invalid",
            errors=[FieldError(path="kind", message=f"expected {KIND!r}", value=kind)],
        )
    return validate_resource(with_namespace(body, namespace))


class GitSourceRoutes:
    """Handlers of the ``/api/v1/gitsources`` routes."""

    def __init__(self, store: Store, syncer: GitSyncer | None = None) -> None:
        self._store = store
        self._syncer = syncer

    def routes(self) -> list[Route]:
        item = f"{COLLECTION_PATH}/{{name}}"
        return [
            method_route(COLLECTION_PATH, {"GET": self.list_sources, "POST": self.create_source}),
            method_route(
                item,
                {"GET": self.get_source, "PUT": self.apply_source, "DELETE": self.delete_source},
            ),
            Route(f"{item}/sync", self.sync_source, methods=["POST"]),
            Route(f"{item}/diff", self.diff_source, methods=["GET"]),
        ]

    async def list_sources(self, request: Request) -> JSONResponse:
        listing = await self._store.list(KIND, namespace=query_namespace_filter(request))
        return JSONResponse(
            {
                "apiVersion": API_VERSION,
                "kind": f"{KIND}List",
                "metadata": {"resourceVersion": str(listing.resource_version)},
                "items": [item.to_wire() for item in listing.items],
            }
        )

    async def create_source(self, request: Request) -> JSONResponse:
        resource = _validate(await read_json_object(request), query_namespace(request))
        resource.metadata.annotations[SOURCE_ANNOTATION] = API_SOURCE
        created = await self._store.create(resource)
        return JSONResponse(
            created.to_wire(), status_code=201, headers={"Location": _object_path(created)}
        )

    async def get_source(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        resource = await self._store.get(KIND, namespace, request.path_params["name"])
        return JSONResponse(resource.to_wire())

    async def apply_source(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        namespace = query_namespace(request)
        resource = _validate(await read_json_object(request), namespace)
        check_url_matches(resource, name=name, namespace=namespace)
        await check_api_may_write(self._store, request, namespace=namespace, name=name, kind=KIND)
        applied, outcome = await apply(self._store, resource, source=API_SOURCE)
        status = 201 if outcome is ApplyOutcome.CREATED else 200
        headers = {APPLY_OUTCOME_HEADER: outcome.value, "Location": _object_path(applied)}
        return JSONResponse(applied.to_wire(), status_code=status, headers=headers)

    async def delete_source(self, request: Request) -> JSONResponse:
        """Delete a GitSource. The objects it applied stay, still annotated with its id."""
        name = request.path_params["name"]
        namespace = query_namespace(request)
        await check_api_may_write(
            self._store, request, namespace=namespace, name=name, deleting=True, kind=KIND
        )
        existing = await self._store.get(KIND, namespace, name)
        marked = await self._store.delete(KIND, namespace, name)
        return JSONResponse((marked or existing).to_wire())

    def _require_syncer(self) -> GitSyncer:
        if self._syncer is None:
            raise ApiProblem(
                503,
                "git sync is not running in this server; start it with 'sandboxctl serve'",
                kind="ServiceUnavailable",
            )
        return self._syncer

    async def sync_source(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        source = await self._require_syncer().request_sync(namespace, request.path_params["name"])
        return JSONResponse(source.to_wire(), status_code=202)

    async def diff_source(self, request: Request) -> JSONResponse:
        namespace = query_namespace(request)
        syncer = self._require_syncer()
        try:
            preview = await syncer.preview(namespace, request.path_params["name"])
        except StoreError:
            raise
        except SandboxError as error:
            # The fetch failed: the repository, not this server, is at fault.
            raise ApiProblem(502, str(error), kind=error.reason) from error
        return JSONResponse({"apiVersion": API_VERSION, "kind": "GitSourceDiff", **preview})
