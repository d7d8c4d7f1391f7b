"""Request timing: a middleware that records how long each API request takes.

Durations are kept per route template (``/api/v1/instances/{name}``), method and status code,
never per raw path, so the number of series stays bounded whatever paths clients send. A request
that matches no route is recorded under the route ``unmatched``, and a method outside the
standard set under ``other``.

The duration runs from the request's arrival at this middleware until the response's status
line and headers are sent. For ordinary JSON responses that is the whole request. For streams
(server-sent events, followed logs) it is the time to set the stream up, not its lifetime, which
would otherwise swamp every bucket.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentic_sandbox.controller.metrics import Histogram

UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)

# (route template, method, status code)
RequestLabels = tuple[str, str, str]


class RequestDurations:
    """Request duration histograms, one per (route template, method, status code)."""

    def __init__(self) -> None:
        self._histograms: dict[RequestLabels, Histogram] = {}

    def observe(self, labels: RequestLabels, seconds: float) -> None:
        histogram = self._histograms.get(labels)
        if histogram is None:
            histogram = self._histograms[labels] = Histogram()
        histogram.observe(seconds)

    def items(self) -> Iterable[tuple[RequestLabels, Histogram]]:
        return sorted(self._histograms.items())


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """Return the path template of the route that serves ``scope``, or ``unmatched``.

    A partial match (right path, wrong method) still names the route, because the 405 it
    produces belongs to that route.
    """
    partial: str | None = None
    for route in routes:
        if not isinstance(route, Route):
            continue
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route.path
        if match is Match.PARTIAL and partial is None:
            partial = route.path
    return partial or UNMATCHED_ROUTE


class RequestTimingMiddleware:
    """Observe every HTTP request's duration into ``durations``.

    Place it outermost among the app's middleware, so that requests rejected by authentication
    or by the body deadline are timed too. An exception that escapes the app is recorded as a
    500 (the server error handler outside this middleware turns it into one) and re-raised.
    """

    def __init__(
        self, app: ASGIApp, *, routes: Sequence[BaseRoute], durations: RequestDurations
    ) -> None:
        self.app = app
        self._routes = routes
        self._durations = durations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.monotonic()
        method = scope["method"] if scope["method"] in STANDARD_METHODS else OTHER_METHOD
        template = route_template(self._routes, scope)
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                labels = (template, method, str(status))
                self._durations.observe(labels, time.monotonic() - started)

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            record(500)
            raise
