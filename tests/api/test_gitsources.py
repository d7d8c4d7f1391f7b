"""GitSource routes: CRUD, ownership, and the sync (webhook) and diff routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from agentic_sandbox.api.app import create_app
from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.crds.validation import validate_resource
from agentic_sandbox.errors import SandboxError
from agentic_sandbox.store.apply import apply
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, TOKEN, assert_problem
from tests.sources.git_support import gitsource_doc

URL = "https://git.example.invalid/fleet.git"


class RecordingSyncer:
    """A git sync that records requests; ``preview`` fails when ``failure`` is set."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.requested: list[tuple[str, str]] = []
        self.failure: SandboxError | None = None

    async def request_sync(self, namespace: str, name: str) -> Resource:
        source = await self.store.get("GitSource", namespace, name)
        self.requested.append((namespace, name))
        return source

    async def preview(self, namespace: str, name: str) -> dict[str, Any]:
        if self.failure is not None:
            raise self.failure
        return {"commit": "0" * 40, "guard": None, "changes": []}


@pytest.fixture
def syncer(store: SqliteStore) -> RecordingSyncer:
    return RecordingSyncer(store)


@pytest.fixture
async def git_client(
    store: SqliteStore, syncer: RecordingSyncer
) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(store=store, event_log=store.events, token=TOKEN, git_sync=syncer)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as http:
        yield http


async def test_create_get_list_delete(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/gitsources", json=gitsource_doc("fleet", URL))
    assert created.status_code == 201
    assert created.json()["metadata"]["annotations"]["sandbox.agentic.dev/source"] == "api"

    fetched = await client.get("/api/v1/gitsources/fleet")
    assert fetched.json()["spec"]["interval"] == "5m"
    listing = await client.get("/api/v1/gitsources")
    assert [item["metadata"]["name"] for item in listing.json()["items"]] == ["fleet"]

    deleted = await client.delete("/api/v1/gitsources/fleet")
    assert deleted.status_code == 200
    assert_problem(await client.get("/api/v1/gitsources/fleet"), 404)


async def test_apply_created_then_updated(client: httpx.AsyncClient) -> None:
    first = await client.put("/api/v1/gitsources/fleet", json=gitsource_doc("fleet", URL))
    second_doc = gitsource_doc("fleet", URL, interval=30)
    second = await client.put("/api/v1/gitsources/fleet", json=second_doc)

    assert (first.status_code, first.headers["Apply-Outcome"]) == (201, "created")
    assert (second.status_code, second.headers["Apply-Outcome"]) == (200, "updated")
    assert second.json()["spec"]["interval"] == 30


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"ref": {"branch": "main", "tag": "v1"}}, "spec.ref"),
        ({"ref": {"commit": "abc"}}, "spec.ref.commit"),
        ({"interval": "2d"}, "spec.interval"),
        ({"interval": 0}, "spec.interval"),
        ({"path": "../up"}, "spec.path"),
        ({"url": "ext::sh -c touch% /tmp/x"}, "spec.url"),
    ],
)
async def test_invalid_spec_rejected(
    client: httpx.AsyncClient, spec: dict[str, Any], field: str
) -> None:
    body = gitsource_doc("fleet", URL)
    body["spec"] = {**body["spec"], **spec}  # type: ignore[dict-item]

    problem = assert_problem(await client.post("/api/v1/gitsources", json=body), 422)

    assert field in [error["field"] for error in problem["errors"]]


async def test_instance_body_rejected(client: httpx.AsyncClient) -> None:
    body = {**gitsource_doc("fleet", URL), "kind": "Instance"}

    assert_problem(await client.post("/api/v1/gitsources", json=body), 422)


async def test_file_owned_source_needs_takeover(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await apply(store, validate_resource(gitsource_doc("fleet", URL)), source="file:/m/g.yaml")

    problem = assert_problem(
        await client.put("/api/v1/gitsources/fleet", json=gitsource_doc("fleet", URL)), 409
    )
    assert "file:/m/g.yaml" in problem["detail"]
    taken = await client.put(
        "/api/v1/gitsources/fleet?takeover=true", json=gitsource_doc("fleet", URL)
    )
    assert taken.status_code == 200


async def test_sync_without_git_sync_unavailable(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/gitsources", json=gitsource_doc("fleet", URL))

    assert_problem(await client.post("/api/v1/gitsources/fleet/sync"), 503)


async def test_sync_accepted(git_client: httpx.AsyncClient, syncer: RecordingSyncer) -> None:
    await git_client.post("/api/v1/gitsources", json=gitsource_doc("fleet", URL))

    response = await git_client.post("/api/v1/gitsources/fleet/sync")

    assert response.status_code == 202
    assert response.json()["metadata"]["name"] == "fleet"
    assert syncer.requested == [("default", "fleet")]


async def test_sync_missing_source_not_found(git_client: httpx.AsyncClient) -> None:
    assert_problem(await git_client.post("/api/v1/gitsources/nope/sync"), 404)


async def test_diff_fetch_failure_bad_gateway(
    git_client: httpx.AsyncClient, syncer: RecordingSyncer
) -> None:
    syncer.failure = SandboxError("git fetch failed: connection refused")

    problem = assert_problem(await git_client.get("/api/v1/gitsources/fleet/diff"), 502)

    assert "connection refused" in problem["detail"]
