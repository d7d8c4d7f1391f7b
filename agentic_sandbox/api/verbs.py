"""Lifecycle verb routes: ``POST /api/v1/instances/{name}/start|stop|restart``.

Each route records the verb in the instance's desired state and returns the instance; the
controller carries it out. ``timeout`` (seconds) sets the grace period of the stop that stop and
restart perform, and ``force=true`` means a grace period of 0 (the incumbent's "Force off").
``dryRun=All`` records nothing and returns a ``DryRunResult`` (see ``api.dryrun``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentic_sandbox.api.dryrun import DryRunner, DryRunStore, discarding_recorder, query_dry_run
from agentic_sandbox.api.params import query_bool, query_int, query_namespace
from agentic_sandbox.api.routing import Endpoint, method_route
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.controller.verbs import Verb, request_verb
from agentic_sandbox.store.base import Store

ITEM_PATH = "/api/v1/instances/{name}"
# Maximum grace period a stop may request, in seconds; the same bound as the spec's.
MAX_GRACE_SECONDS = 3600


class VerbRoutes:
    def __init__(
        self, store: Store, recorder: EventRecorder, *, dry_run: DryRunner | None = None
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._dry_run = dry_run or DryRunner()

    def routes(self) -> list[Route]:
        return [
            method_route(f"{ITEM_PATH}/{verb.value}", {"POST": self._handler(verb)})
            for verb in Verb
        ]

    def _handler(self, verb: Verb) -> Endpoint:
        async def handle(request: Request) -> Response:
            grace = query_int(
                request, "timeout", default=None, minimum=0, maximum=MAX_GRACE_SECONDS
            )
            if query_bool(request, "force"):
                grace = 0
            dry_run = query_dry_run(request)
            store, recorder = self._store, self._recorder
            if dry_run:
                store, recorder = DryRunStore(self._store), discarding_recorder()
            instance = await request_verb(
                store,
                recorder,
                namespace=query_namespace(request),
                name=request.path_params["name"],
                verb=verb,
                grace_seconds=grace if verb != Verb.START else None,
                requested_by="api",
            )
            if dry_run:
                return await self._dry_run.respond(instance, action=verb.value, outcome="updated")
            return JSONResponse(instance.to_wire())

        return handle
