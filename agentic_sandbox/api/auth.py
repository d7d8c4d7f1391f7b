"""Bearer-token authentication for every route except the health probes.

The middleware compares the presented token with ``tokens_equal`` (constant time) and responds
to a failed check itself with a 401 problem document and ``WWW-Authenticate: Bearer`` (RFC 6750).
Neither the presented nor the expected token is ever logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from agentic_sandbox.api.problems import problem_response
from agentic_sandbox.controller.credentials import tokens_equal

logger = logging.getLogger(__name__)

REALM = "agentic-sandbox"


def check_token(token: str) -> None:
    """Raise ValueError when ``token`` is empty, so the API never runs without authentication."""
    if not token:
        raise ValueError("the API token is empty; pass a non-empty token")


def _bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


class BearerAuthMiddleware:
    """Pass a request on only when it carries ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, *, token: str, public_paths: Collection[str]) -> None:
        check_token(token)
        self.app = app
        self._token = token
        self._public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._public_paths:
            await self.app(scope, receive, send)
            return

        presented = _bearer_token(Headers(scope=scope).get("authorization"))
        if presented is not None and tokens_equal(self._token, presented):
            await self.app(scope, receive, send)
            return

        if presented is None:
            detail = (
                "the request has no bearer token; send 'Authorization: Bearer <token>' with the "
                "token from the file api-token in the controller's state directory"
            )
            challenge = f'Bearer realm="{REALM}"'
        else:
            detail = (
                "the bearer token is not valid for this server; use the token in its api-token file"
            )
            challenge = f'Bearer realm="{REALM}", error="invalid_token"'
        logger.info(
            "request rejected: bearer token missing or invalid",
            extra={"method": scope.get("method"), "path": scope["path"]},
        )
        response = problem_response(
            401, detail, kind="Unauthorized", headers={"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)
