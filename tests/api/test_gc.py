"""The garbage collection route over a real collector, the fake runtime and a real SqliteStore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agentic_sandbox.api.app import create_app
from agentic_sandbox.controller.gc import GarbageCollector, GcSettings
from agentic_sandbox.controller.metrics import ControllerMetrics
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.meta import API_VERSION
from agentic_sandbox.runtimes.base import LABEL_CONTROLLER, LABEL_INSTANCE, LABEL_UID, SandboxSpec
from agentic_sandbox.runtimes.fake import FakeClock, FakeRuntime
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, TOKEN, assert_problem

SWEEP_PATH = "/api/v1/gc/sweep"
GONE_UID = "00000000-0000-0000-0000-00000000dead"


@pytest.fixture
def runtime() -> FakeRuntime:
    # The fake clock starts in 2025, so by the collector's real clock every container is old.
    return FakeRuntime(clock=FakeClock().now)


@pytest.fixture
async def gc_client(
    store: SqliteStore, runtime: FakeRuntime, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    collector = GarbageCollector(
        store=store,
        runtime=runtime,
        recorder=EventRecorder(store.events),
        metrics=ControllerMetrics(),
        controller_id="ctl-a",
        workspace_root=tmp_path / "workspaces",
        settings=GcSettings(creation_grace=60.0),
    )
    app = create_app(store=store, event_log=store.events, token=TOKEN, gc=collector)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as http:
        yield http


async def orphan(runtime: FakeRuntime) -> str:
    labels = {LABEL_CONTROLLER: "ctl-a", LABEL_UID: GONE_UID, LABEL_INSTANCE: "default/web"}
    created = await runtime.create(SandboxSpec(name="web", image="img", labels=labels))
    return created.id


async def test_sweep_dry_run_lists_candidates(
    gc_client: httpx.AsyncClient, runtime: FakeRuntime
) -> None:
    container_id = await orphan(runtime)

    response = await gc_client.post(SWEEP_PATH, params={"dryRun": "true"})

    assert response.status_code == 200
    body = response.json()
    assert body["apiVersion"] == API_VERSION
    assert body["kind"] == "GarbageCollection"
    assert body["dryRun"] is True
    [item] = body["items"]
    assert item["type"] == "container"
    assert item["id"] == container_id
    assert item["name"] == "web"
    assert item["instance"] == "default/web"
    assert item["uid"] == GONE_UID
    assert item["reason"] == "InstanceGone"
    assert "is not in the store" in item["message"]
    assert item["result"] == "WouldRemove"
    assert container_id in runtime.sandboxes


async def test_sweep_removes(gc_client: httpx.AsyncClient, runtime: FakeRuntime) -> None:
    container_id = await orphan(runtime)

    response = await gc_client.post(SWEEP_PATH)

    assert response.status_code == 200
    [item] = response.json()["items"]
    assert item["result"] == "Removed"
    assert "error" not in item
    assert container_id not in runtime.sandboxes


async def test_status_reports_last_pass(gc_client: httpx.AsyncClient, runtime: FakeRuntime) -> None:
    before = (await gc_client.get("/api/v1/gc")).json()
    container_id = await orphan(runtime)
    await gc_client.post(SWEEP_PATH, params={"dryRun": "true"})
    await gc_client.post(SWEEP_PATH)

    response = await gc_client.get("/api/v1/gc")

    assert before["lastPass"] is None
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "GarbageCollectionStatus"
    assert isinstance(body["enabled"], bool)
    [item] = body["lastPass"]["items"]
    assert item["id"] == container_id
    assert item["result"] == "Removed"
    assert body["lastPass"]["error"] is None


async def test_sweep_empty(gc_client: httpx.AsyncClient) -> None:
    response = await gc_client.post(SWEEP_PATH, params={"dryRun": "false"})

    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_sweep_bad_dry_run_rejected(gc_client: httpx.AsyncClient) -> None:
    response = await gc_client.post(SWEEP_PATH, params={"dryRun": "maybe"})

    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "dryRun"


async def test_sweep_runtime_unavailable_503(
    gc_client: httpx.AsyncClient, runtime: FakeRuntime
) -> None:
    await orphan(runtime)
    runtime.set_available(False)

    response = await gc_client.post(SWEEP_PATH)

    assert_problem(response, 503)


async def test_sweep_without_collector_503(client: httpx.AsyncClient) -> None:
    response = await client.post(SWEEP_PATH, params={"dryRun": "true"})

    body = assert_problem(response, 503)
    assert "no garbage collector" in body["detail"]


async def test_sweep_requires_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(SWEEP_PATH, params={"dryRun": "true"})

    assert_problem(response, 401)
