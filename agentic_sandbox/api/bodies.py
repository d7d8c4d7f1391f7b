"""Reading JSON request bodies: media type, size limit and parse errors as problem documents."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.errors import FieldError

# Maximum request body size, in bytes. A manifest is a few kilobytes.
MAX_BODY_BYTES = 1024 * 1024
JSON_MEDIA_TYPE = "application/json"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _check_media_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    described = repr(content_type) if content_type else "missing"
    raise ApiProblem(
        415,
        f"Content-Type is {described}; send the body as JSON with "
        f"'Content-Type: {JSON_MEDIA_TYPE}'",
        kind="UnsupportedMediaType",
    )


def _too_large(size: str) -> ApiProblem:
    return ApiProblem(
        413,
        f"request body is {size}; the maximum is {MAX_BODY_BYTES} bytes",
        kind="BodyTooLarge",
    )


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(f"{declared} bytes")

    # The declared length can be absent (chunked) or wrong, so count what actually arrives.
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise _too_large(f"more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _invalid_json(detail: str, *, line: int | None = None) -> ApiProblem:
    error = FieldError(path="", message=detail, line=line)
    return ApiProblem(
        400, f"request body is not valid JSON: {detail}", kind="InvalidJson", errors=[error]
    )


def _parse(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_json(f"byte {exc.start} is not UTF-8") from exc
    if not text.strip():
        raise _invalid_json("the body is empty; send a JSON object")
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise _invalid_json(f"{exc.msg} at {where}", line=exc.lineno) from exc
    except _DuplicateKey as exc:
        raise _invalid_json(f"the key {exc.key!r} appears twice in one object") from exc
    except ValueError as exc:
        raise _invalid_json(str(exc)) from exc


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


async def read_json_object(request: Request) -> dict[str, Any]:
    """Read the request body as one JSON object.

    Raises ApiProblem: 415 for a media type other than JSON, 413 past MAX_BODY_BYTES, 400 when
    the body is not UTF-8 JSON or not an object.
    """
    _check_media_type(request)
    data = _parse(await _read_limited(request))
    if not isinstance(data, dict):
        raise ApiProblem(
            400,
            f"request body is a JSON {_json_type(data)}; send one JSON object (a manifest)",
            kind="InvalidJson",
        )
    return data
