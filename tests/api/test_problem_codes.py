"""Every problem document has a stable ``code``, and a 503 for an unavailable store or runtime has
Retry-After."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentic_sandbox.api.problems import (
    EXCEPTION_HANDLERS,
    RETRY_AFTER_SECONDS,
    ApiProblem,
    problem_code,
)
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    ImageNotFound,
    InvalidResource,
    ManifestError,
    NotFound,
    RuntimeTimeout,
    RuntimeUnavailable,
    SandboxError,
    StoreUnavailable,
)
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, assert_problem, manifest

ERROR_CODES = [
    (NotFound("Instance default/web not found"), 404, "NotFound"),
    (AlreadyExists("Instance default/web already exists"), 409, "AlreadyExists"),
    (Conflict("Instance default/web was modified"), 409, "Conflict"),
    (Expired("watch too old"), 410, "Expired"),
    (InvalidResource("spec.image: missing"), 422, "Invalid"),
    (ManifestError("spec.image: missing", file="web.yaml"), 422, "InvalidManifest"),
    (StoreUnavailable("store closed"), 503, "StoreUnavailable"),
    (RuntimeUnavailable("docker down"), 503, "RuntimeUnavailable"),
    (RuntimeTimeout("docker call timed out"), 503, "RuntimeTimeout"),
    (ImageNotFound("image agentic/demo:dev not found"), 500, "ImageNotFound"),
    (SandboxError("something else"), 500, "InternalError"),
    (ApiProblem(409, "owned by a file", kind="OwnedByOtherSource"), 409, "OwnedByOtherSource"),
    (ApiProblem(400, "plain bad request"), 400, "BadRequest"),
    (RuntimeError("a bug"), 500, "InternalError"),
]


def _raising_app(error: Exception) -> Starlette:
    async def boom(request: Request) -> Response:
        raise error

    return Starlette(routes=[Route("/boom", boom)], exception_handlers=EXCEPTION_HANDLERS)


async def _get_boom(error: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=_raising_app(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        return await http.get("/boom")


@pytest.mark.parametrize(("error", "status", "code"), ERROR_CODES)
async def test_error_has_code(error: Exception, status: int, code: str) -> None:
    body = assert_problem(await _get_boom(error), status)

    assert body["code"] == code


@pytest.mark.parametrize(("error", "status", "code"), ERROR_CODES)
async def test_type_uri_matches_code(error: Exception, status: int, code: str) -> None:
    body = assert_problem(await _get_boom(error), status)

    if body["type"] != "about:blank":
        slug = body["type"].rsplit("/", 1)[1]
        assert slug.replace("-", "") == code.lower()


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "BadRequest"), (404, "NotFound"), (405, "MethodNotAllowed"), (413, "BodyTooLarge")],
)
def test_problem_code_of_plain_status(status: int, code: str) -> None:
    assert problem_code(status, None) == code


def test_problem_code_of_unlisted_status() -> None:
    assert problem_code(418, None) == "Http418"


def test_problem_code_prefers_kind() -> None:
    assert problem_code(404, "RouteGone") == "RouteGone"


# Retry-After


@pytest.mark.parametrize(
    "error", [StoreUnavailable("closed"), RuntimeUnavailable("down"), RuntimeTimeout("slow")]
)
async def test_unavailable_has_retry_after(error: SandboxError) -> None:
    response = await _get_boom(error)

    assert_problem(response, 503)
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


@pytest.mark.parametrize(
    "error", [NotFound("gone"), Conflict("modified"), InvalidResource("bad"), SandboxError("x")]
)
async def test_other_errors_have_no_retry_after(error: SandboxError) -> None:
    response = await _get_boom(error)

    assert "retry-after" not in response.headers


async def test_missing_gc_503_has_no_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/gc/sweep")

    body = assert_problem(response, 503)
    assert body["code"] == "GarbageCollectorUnavailable"
    assert "retry-after" not in response.headers


async def test_closed_store_has_retry_after(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await store.close()

    response = await client.get("/api/v1/instances")

    body = assert_problem(response, 503)
    assert body["code"] == "StoreUnavailable"
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


async def test_readyz_has_retry_after(anonymous: httpx.AsyncClient, store: SqliteStore) -> None:
    await store.close()

    response = await anonymous.get("/readyz")

    assert_problem(response, 503)
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


# Codes through the real app


async def test_unauthorized_code(anonymous: httpx.AsyncClient) -> None:
    body = assert_problem(await anonymous.get("/api/v1/instances"), 401)

    assert body["code"] == "Unauthorized"


async def test_unknown_route_code(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/nothing"), 404)

    assert body["code"] == "NotFound"


async def test_wrong_method_code(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.post("/healthz"), 405)

    assert body["code"] == "MethodNotAllowed"


async def test_invalid_parameter_code(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/instances", params={"phase": "Sleeping"}), 400)

    assert body["code"] == "InvalidParameter"


async def test_invalid_json_code(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/instances", content=b"{", headers={"Content-Type": "application/json"}
    )

    assert assert_problem(response, 400)["code"] == "InvalidJson"


async def test_wrong_media_type_code(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/instances", content=b"{}", headers={"Content-Type": "text/plain"}
    )

    assert assert_problem(response, 415)["code"] == "UnsupportedMediaType"


async def test_validation_failure_code(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/instances/web", json=manifest("web", runtime="dockr"))

    body = assert_problem(response, 422)
    assert body["code"] == "Invalid"
    assert body["errors"][0]["field"] == "spec.runtime"


async def test_owned_by_other_source_code(client: httpx.AsyncClient, store: SqliteStore) -> None:
    document = manifest("web")
    document["metadata"]["annotations"] = {SOURCE_ANNOTATION: "directory"}
    await store.create(validate_resource(document))

    response = await client.put("/api/v1/instances/web", json=manifest("web", image="other:1"))

    assert assert_problem(response, 409)["code"] == "OwnedByOtherSource"
