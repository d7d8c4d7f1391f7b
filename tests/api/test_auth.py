"""Bearer authentication: every route but the health probes needs the token."""

from __future__ import annotations

import logging

import httpx
import pytest

from agentic_sandbox.api import auth
from agentic_sandbox.api.app import create_app
from agentic_sandbox.controller import credentials
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import TOKEN, assert_problem

PROTECTED = [
    ("GET", "/api/v1/instances"),
    ("POST", "/api/v1/instances"),
    ("GET", "/api/v1/instances/web"),
    ("PUT", "/api/v1/instances/web"),
    ("DELETE", "/api/v1/instances/web"),
    ("GET", "/api/v1/events"),
    ("GET", "/no-such-route"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_route_without_token_is_401(
    anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await anonymous.request(method, path)

    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="agentic-sandbox"'
    assert "api-token" in body["detail"]


async def test_wrong_token_is_401_invalid_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(
        "/api/v1/instances", headers={"Authorization": "Bearer not-the-token"}
    )

    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "authorization", [f"Basic {TOKEN}", TOKEN, "Bearer", "Bearer ", f"Token {TOKEN}"]
)
async def test_malformed_authorization_is_401(
    anonymous: httpx.AsyncClient, authorization: str
) -> None:
    response = await anonymous.get("/api/v1/instances", headers={"Authorization": authorization})

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_right_token_passes(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(
        "/api/v1/instances", headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert response.status_code == 200


async def test_scheme_is_case_insensitive(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(
        "/api/v1/instances", headers={"Authorization": f"bearer {TOKEN}"}
    )

    assert response.status_code == 200


async def test_token_compared_with_constant_time_helper(
    anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = credentials.tokens_equal

    def spy(expected: str, presented: str) -> bool:
        calls.append((expected, presented))
        return real(expected, presented)

    monkeypatch.setattr(auth, "tokens_equal", spy)

    await anonymous.get("/api/v1/instances", headers={"Authorization": "Bearer wrong"})
    await anonymous.get("/api/v1/instances", headers={"Authorization": f"Bearer {TOKEN}"})

    assert calls == [(TOKEN, "wrong"), (TOKEN, TOKEN)]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_probes_need_no_token(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)

    assert response.status_code == 200
    assert response.text == "ok"


async def test_token_never_logged(
    anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await anonymous.get("/api/v1/instances", headers={"Authorization": "Bearer presented-secret"})
    await anonymous.get("/api/v1/instances", headers={"Authorization": f"Bearer {TOKEN}"})

    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "presented-secret" not in logged
    assert TOKEN not in logged
    assert any("bearer token" in record.getMessage() for record in caplog.records)


async def test_empty_token_rejected(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="token is empty"):
        create_app(store=store, event_log=store.events, token="")
