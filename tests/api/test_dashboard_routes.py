"""The dashboard's static routes: served without a token, with caching and security headers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agentic_sandbox.api.dashboard_routes import DASHBOARD_DIR, DashboardRoutes
from tests.api.support import assert_problem

MODULES = sorted(path.name for path in DASHBOARD_DIR.glob("*.js"))


async def test_page_served_without_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/dashboard/app.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("name", [*MODULES, "style.css", "index.html"])
async def test_files_served_without_token(anonymous: httpx.AsyncClient, name: str) -> None:
    response = await anonymous.get(f"/dashboard/{name}")

    assert response.status_code == 200
    assert response.content == (DASHBOARD_DIR / name).read_bytes()
    assert response.headers["cache-control"] == "no-cache"


async def test_modules_have_javascript_type(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/dashboard/app.js")

    assert response.headers["content-type"] == "text/javascript; charset=utf-8"


async def test_unchanged_file_revalidates(anonymous: httpx.AsyncClient) -> None:
    first = await anonymous.get("/dashboard/style.css")
    second = await anonymous.get(
        "/dashboard/style.css", headers={"If-None-Match": first.headers["etag"]}
    )

    assert second.status_code == 304
    assert second.content == b""


async def test_unknown_file_needs_token(anonymous: httpx.AsyncClient) -> None:
    assert_problem(await anonymous.get("/dashboard/secret.js"), 401)


async def test_unknown_file_not_found(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/dashboard/missing.js"), 404)

    assert "missing.js" in body["detail"]


async def test_api_still_needs_token(anonymous: httpx.AsyncClient) -> None:
    assert_problem(await anonymous.get("/api/v1/instances"), 401)


async def test_page_rejects_post(anonymous: httpx.AsyncClient) -> None:
    assert_problem(await anonymous.post("/"), 405)


def test_directory_without_index_rejected(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("")

    with pytest.raises(ValueError, match="index.html"):
        DashboardRoutes(tmp_path)


def test_public_paths_list_each_file(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "app.js").write_text("")
    (tmp_path / "notes.txt").write_text("")

    routes = DashboardRoutes(tmp_path)

    assert routes.public_paths == {"/", "/dashboard/index.html", "/dashboard/app.js"}
