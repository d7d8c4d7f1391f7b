"""Request limits that keep slow or greedy clients from exhausting the server.

Three limits apply, each at the layer that can enforce it:

- Body size: ``api/bodies.py`` rejects a body over ``MAX_BODY_BYTES`` with 413 while reading it.
- Body read time: ``BodyDeadlineMiddleware`` responds with 408 when a request body has not fully
  arrived ``BODY_READ_TIMEOUT_SECONDS`` after the request reached the app, so a client that
  trickles bytes cannot hold a request open.
- Connections and headers: the uvicorn settings below, which ``agentic_sandbox.app`` passes to
  ``uvicorn.Config``. Past ``MAX_CONCURRENT_CONNECTIONS`` open connections (or running request
  tasks) uvicorn responds to new requests with a plain-text 503; a request line and header section
  still incomplete after ``MAX_HEADER_BYTES`` gets a 400 and the connection closes; an idle
  keep-alive connection closes after ``KEEP_ALIVE_TIMEOUT_SECONDS``.

NOTE: uvicorn 0.55 sets no deadline for receiving the request line and headers, so a client can
hold a connection open by sending headers slowly; only ``MAX_CONCURRENT_CONNECTIONS`` bounds
that. Put a reverse proxy with header timeouts in front of a server reachable from untrusted
networks.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentic_sandbox.api.problems import ApiProblem

# Seconds a request body may take to arrive in full. A manifest of a few kilobytes arrives in
# milliseconds on loopback; 30 s leaves room for slow links without letting a client stall forever.
BODY_READ_TIMEOUT_SECONDS = 30.0

# Open connections (or running request tasks) before uvicorn responds with 503. Each server-sent
# event subscriber holds one connection, so this leaves room for hundreds of subscribers and stays
# under the usual soft limit of 1024 open files per process.
MAX_CONCURRENT_CONNECTIONS = 512
# Bytes of an incomplete request line and header section that h11 buffers before it rejects the
# request (h11's own default, set here so the limit is explicit). It bounds the memory a client
# can tie up per connection. NOTE: h11 checks it only while the headers are incomplete, so a larger
# header section that arrives in one socket read (up to 256 KiB in asyncio) is still accepted.
MAX_HEADER_BYTES = 16 * 1024
# Seconds an idle keep-alive connection stays open between requests (uvicorn's default).
KEEP_ALIVE_TIMEOUT_SECONDS = 5


def _timed_out(seconds: float) -> ApiProblem:
    return ApiProblem(
        408,
        f"the request body did not arrive within {seconds:g} seconds; send the whole body "
        "without pauses, or retry on a faster connection",
        kind="RequestTimeout",
        # Close the connection, because the rest of the body may still be on its way and would
        # otherwise be read as the start of the next request.
        headers={"Connection": "close"},
    )


class BodyDeadlineMiddleware:
    """Raise a 408 problem when a request body is still incomplete after the deadline.

    Only reads of the request body are bounded. Once the last body chunk has arrived, later
    ``receive`` calls (a streaming response waiting for the client to disconnect) pass through
    without a deadline. The deadline is read from ``BODY_READ_TIMEOUT_SECONDS`` at each request,
    so tests can lower it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        seconds = BODY_READ_TIMEOUT_SECONDS
        deadline = asyncio.get_running_loop().time() + seconds
        body_complete = False

        async def receive_before_deadline() -> Message:
            nonlocal body_complete
            if body_complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _timed_out(seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        await self.app(scope, receive_before_deadline, send)
