"""One route per path serving several methods, so a 405 lists every allowed method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def method_route(path: str, endpoints: Mapping[str, Endpoint]) -> Route:
    """Route ``path`` to the endpoint of the request's method; HEAD is served by GET."""
    by_method = dict(endpoints)
    if "GET" in by_method:
        by_method.setdefault("HEAD", by_method["GET"])

    async def dispatch(request: Request) -> Response:
        return await by_method[request.method](request)

    return Route(path, dispatch, methods=list(by_method))
