"""The events routes: the durable event log as a list, newest last, or as a live stream.

``GET /api/v1/events`` takes these query parameters:

    instance    a name, with ``namespace``, or a ``namespace/name`` key
    since       an event id: return the events after it, oldest first
    type        an event name such as ``container.created``, or a prefix ending in a dot
                such as ``container.``
    namePrefix  a plain prefix of the name (not together with ``type``)
    limit       at most this many events; without ``since``, the newest ones

``GET /api/v1/instances/{name}/events`` (with ``namespace``) is the same for one instance, also
after the instance is gone.

With ``follow=true`` both stream server-sent events (see ``api/sse.py``), starting after the
``Last-Event-ID`` header, else after ``since``, else after the newest event when the request
arrived. The header wins over ``since`` because a browser EventSource sends it on reconnect
while its URL keeps the first ``since``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentic_sandbox.api.params import bad_parameter, query_bool, query_int, query_namespace
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.api.sse import (
    EventFilter,
    EventStreamResponse,
    SseSubscriberGauge,
    event_frames,
)
from agentic_sandbox.crds.event import Event
from agentic_sandbox.crds.meta import API_VERSION, object_key
from agentic_sandbox.errors import FieldError

EVENTS_PATH = "/api/v1/events"
INSTANCE_EVENTS_PATH = "/api/v1/instances/{name}/events"
LAST_EVENT_ID_HEADER = "Last-Event-ID"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# The largest event id: the event log keys events by a SQLite integer.
MAX_EVENT_ID = 2**63 - 1


class EventLog(Protocol):
    """The event log as the API uses it: listing, following, and appending audit events."""

    async def append(self, event: Event) -> Event: ...

    async def list(
        self,
        *,
        since_id: int | None = None,
        instance: str | None = None,
        name_prefix: str | None = None,
        limit: int = 100,
    ) -> list[Event]: ...

    def subscribe(self, since_id: int | None = None) -> AsyncGenerator[Event, None]: ...


def event_wire(event: Event) -> dict[str, object]:
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def _query_instance(request: Request) -> str | None:
    instance = request.query_params.get("instance")
    if not instance:
        return None
    if "/" in instance:
        return instance
    return object_key(query_namespace(request), instance)


def _query_filter(request: Request, instance: str | None) -> EventFilter:
    type_ = request.query_params.get("type") or None
    name_prefix = request.query_params.get("namePrefix") or None
    if type_ is not None and name_prefix is not None:
        raise bad_parameter("type", type_, "give type or namePrefix, not both")
    return EventFilter(type=type_, name_prefix=name_prefix, instance=instance)


def _resume_id(request: Request) -> int | None:
    """Return the id to stream after: the Last-Event-ID header, else ``since``, else None."""
    raw = request.headers.get(LAST_EVENT_ID_HEADER, "").strip()
    if not raw:
        return query_int(request, "since", default=None, minimum=0, maximum=MAX_EVENT_ID)
    # The length check comes first: int() refuses texts of thousands of digits.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_EVENT_ID):
        message = f"expected the id of an event, a whole number from 0 to {MAX_EVENT_ID}"
        raise ApiProblem(
            400,
            f"header {LAST_EVENT_ID_HEADER}={raw!r} is invalid: {message}",
            kind="InvalidParameter",
            errors=[FieldError(path=LAST_EVENT_ID_HEADER, message=message, value=raw)],
        )
    return int(raw)


class EventRoutes:
    """Handlers of the events routes over one event log.

    ``subscribers`` counts the open event streams, for metrics.
    """

    def __init__(self, event_log: EventLog, subscribers: SseSubscriberGauge | None = None) -> None:
        self._event_log = event_log
        self.subscribers = subscribers or SseSubscriberGauge()

    def routes(self) -> list[Route]:
        return [
            Route(EVENTS_PATH, self.list_events, methods=["GET"]),
            Route(INSTANCE_EVENTS_PATH, self.instance_events, methods=["GET"]),
        ]

    async def list_events(self, request: Request) -> Response:
        return await self._respond(request, _query_instance(request))

    async def instance_events(self, request: Request) -> Response:
        instance = object_key(query_namespace(request), request.path_params["name"])
        return await self._respond(request, instance)

    async def _respond(self, request: Request, instance: str | None) -> Response:
        event_filter = _query_filter(request, instance)
        if query_bool(request, "follow"):
            return await self._follow(request, event_filter)
        return await self._list(request, event_filter)

    async def _list(self, request: Request, event_filter: EventFilter) -> JSONResponse:
        since = query_int(request, "since", default=None, minimum=0, maximum=MAX_EVENT_ID)
        limit = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        assert limit is not None

        # The log filters by plain prefix; the filter then drops names that only share a
        # prefix with a type, such as container.createdX for type container.created.
        # NOTE: so a list by type may hold fewer than ``limit`` events when such names exist.
        events = await self._event_log.list(
            since_id=since,
            instance=event_filter.instance,
            name_prefix=event_filter.type or event_filter.name_prefix,
            limit=limit,
        )
        return JSONResponse(
            {
                "apiVersion": API_VERSION,
                "kind": "EventList",
                "items": [event_wire(event) for event in events if event_filter.matches(event)],
            }
        )

    async def _follow(self, request: Request, event_filter: EventFilter) -> EventStreamResponse:
        since = _resume_id(request)
        if since is None:
            # Pin the start now, so an event appended once the client has the response
            # headers is streamed, however late the stream's first read runs.
            newest = await self._event_log.list(limit=1)
            since = (newest[-1].id or 0) if newest else 0
        frames = event_frames(
            self._event_log.subscribe(since_id=since),
            event_filter=event_filter,
            wire=event_wire,
            gauge=self.subscribers,
        )
        return EventStreamResponse(frames)
