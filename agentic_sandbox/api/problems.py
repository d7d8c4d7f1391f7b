"""RFC 7807 problem documents: the one error shape of every API response.

Every error the API returns, from a failed bearer check to an unexpected exception, is an
``application/problem+json`` object with these members:

    type     a URI naming the kind of problem ("about:blank" for plain HTTP errors)
    code     a stable machine-readable name of the problem, such as ``NotFound``
    title    the HTTP reason phrase of ``status``
    status   the HTTP status code
    detail   a sentence saying what failed, on which value, and what to do
    errors   a list of ``{field, message, value, line}``; empty unless fields were invalid

The project's error classes map to statuses here, so handlers raise the store's and the
validator's errors unchanged and never build error responses by hand.

``code`` is the problem's kind. For a project error it is the error's ``reason`` (``NotFound``,
``Conflict``, ``Invalid``, ``StoreUnavailable``, ``RuntimeUnavailable``...). For an ApiProblem it
is the ``kind`` the handler gives (``InvalidJson``, ``BodyTooLarge``, ``OwnedByOtherSource``,
``Unauthorized``...). A plain HTTP error gets a name fixed per status in ``_CODE_BY_STATUS``
(``MethodNotAllowed``). Clients branch on ``code``, ``type`` is the same name as a URI, and
``detail`` is for people.

A 503 caused by an unavailable store or runtime carries ``Retry-After`` in seconds.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentic_sandbox.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    FieldError,
    InvalidResource,
    NotFound,
    RuntimeUnavailable,
    SandboxError,
    StoreUnavailable,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# NOTE: the type URIs identify a kind of problem; nothing is served at them.
PROBLEM_TYPE_BASE = "https://sandbox.agentic.dev/problems/"

# Seconds a client should wait before retrying a request that failed because the store or the
# runtime was unavailable. The controller's own retries of such failures start at 50 ms and back
# off to 60 s, so 5 s is a hint for clients, not a promise of recovery.
RETRY_AFTER_SECONDS = 5
# Problem codes that mean "try again later". Responses with these codes carry Retry-After.
UNAVAILABLE_CODES = frozenset({"StoreUnavailable", "RuntimeUnavailable", "RuntimeTimeout"})

# Codes of plain HTTP errors (a route that does not exist, a method it does not serve), fixed
# here because the reason phrases differ between Python versions.
_CODE_BY_STATUS: Mapping[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    408: "RequestTimeout",
    409: "Conflict",
    410: "Gone",
    413: "BodyTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    501: "NotImplemented",
    503: "ServiceUnavailable",
}

# Checked in order, so a subclass must come before its base class.
_STATUS_BY_ERROR: Sequence[tuple[type[SandboxError], int]] = (
    (NotFound, 404),
    (AlreadyExists, 409),
    (Conflict, 409),
    (Expired, 410),
    (InvalidResource, 422),
    (StoreUnavailable, 503),
    (RuntimeUnavailable, 503),
)


class ApiProblem(Exception):
    """An error response raised by a handler, rendered as a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.errors = list(errors)
        self.headers = dict(headers or {})


def problem_type(kind: str | None) -> str:
    """Build the ``type`` URI for a problem kind such as ``NotFound`` or ``invalid-json``."""
    if kind is None:
        return "about:blank"
    slug = "".join(f"-{char.lower()}" if char.isupper() else char for char in kind).lstrip("-")
    return PROBLEM_TYPE_BASE + slug


def problem_code(status: int, kind: str | None) -> str:
    """Return the ``code`` member: the kind when there is one, else a name fixed per status."""
    if kind is not None:
        return kind
    return _CODE_BY_STATUS.get(status, f"Http{status}")


def _json_value(value: object) -> Any:
    """Return ``value`` when JSON can encode it, else its text, so a problem always renders."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


def field_error_wire(error: FieldError) -> dict[str, Any]:
    return {
        "field": error.path,
        "message": error.message,
        "value": _json_value(error.value),
        "line": error.line,
    }


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    code = problem_code(status, kind)
    body = {
        "type": problem_type(kind),
        "code": code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": [field_error_wire(error) for error in errors],
    }
    all_headers = dict(headers or {})
    if code in UNAVAILABLE_CODES and "retry-after" not in {name.lower() for name in all_headers}:
        all_headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JSONResponse(
        body, status_code=status, headers=all_headers, media_type=PROBLEM_MEDIA_TYPE
    )


def status_for(error: SandboxError) -> int:
    for error_class, status in _STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


def _handle_api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_response(
        exc.status, exc.detail, kind=exc.kind, errors=exc.errors, headers=exc.headers
    )


def _handle_sandbox_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandboxError)
    status = status_for(exc)
    if status >= 500:
        logger.error(
            "request failed",
            extra={"method": request.method, "path": request.url.path, "reason": exc.reason},
            exc_info=exc,
        )
    errors = exc.errors if isinstance(exc, InvalidResource) else []
    headers = {}
    if isinstance(exc, StoreUnavailable | RuntimeUnavailable):
        # Covers subclasses whose reason is not listed in UNAVAILABLE_CODES. A runtime whose
        # circuit is open knows when it will let calls through again.
        retry_after = getattr(exc, "retry_after", None) or RETRY_AFTER_SECONDS
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return problem_response(status, str(exc), kind=exc.reason, errors=errors, headers=headers)


def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if status_phrase(exc.status_code) == detail:
        detail = f"{request.method} {request.url.path}: {detail.lower()}"
    return problem_response(exc.status_code, detail, headers=exc.headers)


def _handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.error(
        "request failed with an unexpected error",
        extra={"method": request.method, "path": request.url.path},
        exc_info=exc,
    )
    return problem_response(
        500,
        "the server failed to handle the request; its log has the details",
        kind="InternalError",
    )


def status_phrase(status: int) -> str:
    return HTTPStatus(status).phrase


EXCEPTION_HANDLERS = {
    ApiProblem: _handle_api_problem,
    SandboxError: _handle_sandbox_error,
    HTTPException: _handle_http_exception,
    Exception: _handle_unexpected,
}
