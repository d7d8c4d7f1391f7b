"""The events route: the durable event log, newest last.

``GET /api/v1/events`` takes ``instance`` (a name, with ``namespace``, or a ``namespace/name``
key), ``since`` (an event id: return the events after it, oldest first), ``namePrefix`` (such as
``container.``) and ``limit``. Without ``since`` it returns the newest ``limit`` events.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentic_sandbox.api.params import query_int, query_namespace
from agentic_sandbox.crds.event import Event
from agentic_sandbox.crds.meta import API_VERSION, object_key

EVENTS_PATH = "/api/v1/events"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class EventLog(Protocol):
    """The event log as the API uses it: listing, and appending audit events."""

    async def append(self, event: Event) -> Event: ...

    async def list(
        self,
        *,
        since_id: int | None = None,
        instance: str | None = None,
        name_prefix: str | None = None,
        limit: int = 100,
    ) -> list[Event]: ...


def event_wire(event: Event) -> dict[str, object]:
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def _query_instance(request: Request) -> str | None:
    instance = request.query_params.get("instance")
    if not instance:
        return None
    if "/" in instance:
        return instance
    return object_key(query_namespace(request), instance)


class EventRoutes:
    """Handler of ``GET /api/v1/events`` over one event log."""

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log

    def routes(self) -> list[Route]:
        return [Route(EVENTS_PATH, self.list_events, methods=["GET"])]

    async def list_events(self, request: Request) -> JSONResponse:
        instance = _query_instance(request)
        since = query_int(request, "since", default=None, minimum=0)
        limit = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        assert limit is not None
        name_prefix = request.query_params.get("namePrefix") or None

        events = await self._event_log.list(
            since_id=since, instance=instance, name_prefix=name_prefix, limit=limit
        )
        return JSONResponse(
            {
                "apiVersion": API_VERSION,
                "kind": "EventList",
                "items": [event_wire(event) for event in events],
            }
        )
