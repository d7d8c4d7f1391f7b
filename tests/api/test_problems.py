"""Every error is an RFC 7807 problem document with the status its error class maps to."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentic_sandbox.api.bodies import MAX_BODY_BYTES
from agentic_sandbox.api.problems import EXCEPTION_HANDLERS
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
from agentic_sandbox.runtimes.libvirt_circuit import CircuitOpen
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, assert_problem, manifest

MAPPING = [
    (NotFound("Instance default/web not found"), 404, "not-found"),
    (AlreadyExists("Instance default/web already exists"), 409, "already-exists"),
    (Conflict("Instance default/web was modified"), 409, "conflict"),
    (Expired("watch too old"), 410, "expired"),
    (InvalidResource("spec.image: missing"), 422, "invalid"),
    (StoreUnavailable("store closed"), 503, "store-unavailable"),
    (RuntimeUnavailable("docker down"), 503, "runtime-unavailable"),
    (SandboxError("something else"), 500, "internal-error"),
]


def _raising_app(error: Exception) -> Starlette:
    async def boom(request: Request) -> Response:
        raise error

    return Starlette(routes=[Route("/boom", boom)], exception_handlers=EXCEPTION_HANDLERS)


@pytest.mark.parametrize(("error", "status", "slug"), MAPPING)
async def test_error_class_maps_to_status(error: SandboxError, status: int, slug: str) -> None:
    transport = httpx.ASGITransport(app=_raising_app(error))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        response = await http.get("/boom")

    body = assert_problem(response, status)
    assert body["type"] == f"https://sandbox.agentic.dev/problems/{slug}"
    assert body["detail"] == str(error)


async def test_invalid_resource_lists_field_errors() -> None:
    error = InvalidResource(
        "spec.mounts[0].hostPath: not absolute",
        errors=[
            FieldError(path="spec.mounts[0].hostPath", message="not absolute", value="x", line=7)
        ],
    )
    transport = httpx.ASGITransport(app=_raising_app(error))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        response = await http.get("/boom")

    body = assert_problem(response, 422)
    # Python 3.13 renamed the phrase of 422 after RFC 9110.
    assert body["title"] in ("Unprocessable Entity", "Unprocessable Content")
    assert body["errors"] == [
        {"field": "spec.mounts[0].hostPath", "message": "not absolute", "value": "x", "line": 7}
    ]


async def test_field_value_not_json_rendered_as_text() -> None:
    error = InvalidResource("bad", errors=[FieldError(path="spec", message="m", value={1, 2})])
    transport = httpx.ASGITransport(app=_raising_app(error))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        response = await http.get("/boom")

    assert assert_problem(response, 422)["errors"][0]["value"] == "{1, 2}"


async def test_unexpected_error_is_500_problem() -> None:
    transport = httpx.ASGITransport(
        app=_raising_app(RuntimeError("secret internals")), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        response = await http.get("/boom")

    body = assert_problem(response, 500)
    assert "secret internals" not in body["detail"]


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing")

    body = assert_problem(response, 404)
    assert body["type"] == "about:blank"


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/instances/web", json={})

    assert_problem(response, 405)
    assert "PUT" in response.headers["allow"]


# Request bodies


async def test_malformed_json_is_400_with_position(client: httpx.AsyncClient) -> None:
    content = b'{\n  "kind": "Instance",\n  "metadata": {"name": "web"\n}'
    response = await client.put(
        "/api/v1/instances/web", content=content, headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 400)
    assert "line 4" in body["detail"]
    assert "column" in body["detail"]
    assert body["errors"][0]["line"] == 4


async def test_duplicate_json_key_is_400(client: httpx.AsyncClient) -> None:
    content = b'{"kind": "Instance", "kind": "Instance"}'
    response = await client.post(
        "/api/v1/instances", content=content, headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 400)
    assert "'kind'" in body["detail"]


@pytest.mark.parametrize(("content", "word"), [(b"[]", "array"), (b'"web"', "string")])
async def test_body_not_object_is_400(client: httpx.AsyncClient, content: bytes, word: str) -> None:
    response = await client.post(
        "/api/v1/instances", content=content, headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 400)
    assert word in body["detail"]


async def test_empty_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/instances", content=b"", headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 400)


async def test_body_not_utf8_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/instances", content=b'{"a": "\xff"}', headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 400)
    assert "UTF-8" in body["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/yaml", None])
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.put(
        "/api/v1/instances/web", content=json.dumps(manifest("web")).encode(), headers=headers
    )

    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]


async def test_json_with_charset_accepted(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/v1/instances/web",
        content=json.dumps(manifest("web")).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 201


async def test_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    content = b" " * (MAX_BODY_BYTES + 1)
    response = await client.put(
        "/api/v1/instances/web", content=content, headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 413)
    assert str(MAX_BODY_BYTES) in body["detail"]


async def test_streamed_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b" " * 65536

    response = await client.put(
        "/api/v1/instances/web", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_body_at_limit_accepted(client: httpx.AsyncClient) -> None:
    content = json.dumps(manifest("web")).encode()
    content += b" " * (MAX_BODY_BYTES - len(content))
    response = await client.put(
        "/api/v1/instances/web", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201


# Store failures


async def test_closed_store_is_503(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await store.close()

    response = await client.get("/api/v1/instances")

    body = assert_problem(response, 503)
    assert body["type"].endswith("/store-unavailable")


async def test_readyz_503_when_store_closed(
    anonymous: httpx.AsyncClient, store: SqliteStore
) -> None:
    await store.close()

    response = await anonymous.get("/readyz")

    assert_problem(response, 503)


async def test_healthz_200_when_store_closed(
    anonymous: httpx.AsyncClient, store: SqliteStore
) -> None:
    await store.close()

    response = await anonymous.get("/healthz")

    assert response.status_code == 200


async def test_open_circuit_sets_retry_after() -> None:
    error = CircuitOpen("libvirt circuit is open", retry_after=12.2)
    transport = httpx.ASGITransport(app=_raising_app(error))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        response = await http.get("/boom")

    assert_problem(response, 503)
    assert response.headers["Retry-After"] == "13"
