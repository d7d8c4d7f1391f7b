"""Mission routes: dispatch, records and output over a dispatcher with a fake command runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema_rs
import pytest

from agentic_sandbox.api.app import create_app
from agentic_sandbox.api.openapi import build_openapi
from agentic_sandbox.controller.agent_commands import CommandOutput
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, TOKEN, assert_problem
from tests.controller.mission_support import Harness, build_harness

DEADLINE = 5.0
DISPATCH = "/api/v1/sessions/s1/dispatch"


@pytest.fixture
async def harness(store: SqliteStore) -> AsyncIterator[Harness]:
    built = build_harness(store)
    yield built
    await built.dispatcher.stop()
    built.tracker.close_all("test ended")


@pytest.fixture
async def http(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        store=harness.store,
        event_log=harness.store.events,
        token=TOKEN,
        missions=harness.dispatcher,
    )
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


def _validate(component: str, document: Any) -> None:
    openapi = build_openapi()
    root = {"$ref": f"#/components/schemas/{component}", "components": openapi["components"]}
    jsonschema_rs.Draft202012Validator(root).validate(document)


async def test_dispatch_returns_running_mission(http: httpx.AsyncClient, harness: Harness) -> None:
    await harness.add_executor("a")

    response = await http.post(
        DISPATCH,
        json={"mission_id": "m1", "objective": "make test", "metadata": {"ticket": 12}},
    )

    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/missions/m1"
    body = response.json()
    assert body["state"] == "Running"
    assert body["sessionId"] == "s1"
    assert body["instance"] == "default/a"
    assert body["command"] == ["/bin/sh", "-c", "make test"]
    assert body["metadata"] == {"ticket": 12}
    _validate("Mission", body)


async def test_dispatch_rejects_invalid_body(http: httpx.AsyncClient) -> None:
    response = await http.post(
        DISPATCH,
        json={"objective": "", "executor_filter": {"agent": "x"}, "timeout_seconds": -1},
    )

    problem = assert_problem(response, 422)
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"mission_id", "objective", "executor_filter.agent", "timeout_seconds"}


async def test_dispatch_rejects_invalid_session(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/sessions/-bad/dispatch", json={"mission_id": "m1", "objective": "true"}
    )

    assert_problem(response, 422)


async def test_dispatch_without_executors(http: httpx.AsyncClient, harness: Harness) -> None:
    none_ready = await http.post(DISPATCH, json={"mission_id": "m1", "objective": "true"})
    await harness.add_executor("a")
    no_match = await http.post(
        DISPATCH,
        json={"mission_id": "m2", "objective": "true", "executor_filter": {"agent_id": "zz"}},
    )

    assert assert_problem(none_ready, 409)["code"] == "NoReadyExecutor"
    problem = assert_problem(no_match, 409)
    assert problem["code"] == "NoMatchingExecutor"
    assert "agent_id=zz" in problem["detail"]


async def test_dispatch_duplicate_mission_id(http: httpx.AsyncClient, harness: Harness) -> None:
    await harness.add_executor("a")
    first = await http.post(DISPATCH, json={"mission_id": "m1", "objective": "true"})

    second = await http.post(DISPATCH, json={"mission_id": "m1", "objective": "true"})

    assert first.status_code == 201
    assert assert_problem(second, 409)["code"] == "AlreadyExists"


async def test_mission_record_list_and_output(http: httpx.AsyncClient, harness: Harness) -> None:
    await harness.add_executor("a")
    await http.post(DISPATCH, json={"mission_id": "m1", "objective": "echo hi"})
    session = harness.runner.sessions[0]
    session.queue.put_nowait(CommandOutput(stream="stdout", data=b"hi\n"))
    session.queue.put_nowait(CommandOutput(stream="stderr", data=b"warn\n"))
    session.finish(0)
    async with asyncio.timeout(DEADLINE):
        await harness.dispatcher.join()

    record = await http.get("/api/v1/missions/m1")
    listed = await http.get("/api/v1/missions", params={"session": "s1", "state": "Succeeded"})
    output = await http.get("/api/v1/missions/m1/output")
    missing = await http.get("/api/v1/missions/nope")

    assert record.json()["state"] == "Succeeded"
    assert record.json()["exitCode"] == 0
    assert [item["id"] for item in listed.json()["items"]] == ["m1"]
    _validate("MissionList", listed.json())
    assert output.content == b"hi\nwarn\n"
    assert output.headers["content-type"] == "application/octet-stream"
    assert_problem(missing, 404)


async def test_mission_output_follow(http: httpx.AsyncClient, harness: Harness) -> None:
    await harness.add_executor("a")
    await http.post(DISPATCH, json={"mission_id": "m1", "objective": "echo hi"})
    session = harness.runner.sessions[0]
    session.queue.put_nowait(CommandOutput(stream="stdout", data=b"one\n"))

    async def finish_later() -> None:
        # Once the first chunk is stored, the follower is reading; then the mission ends.
        async with asyncio.timeout(DEADLINE):
            while not await harness.store.missions.read_output("m1"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        session.queue.put_nowait(CommandOutput(stream="stdout", data=b"two\n"))
        session.finish(0)

    finisher = asyncio.create_task(finish_later())
    async with asyncio.timeout(DEADLINE):
        response = await http.get("/api/v1/missions/m1/output", params={"follow": "true"})
    await finisher

    assert response.content == b"one\ntwo\n"


async def test_missions_list_rejects_unknown_state(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/missions", params={"state": "Done"})

    assert_problem(response, 400)


async def test_mission_routes_without_dispatcher(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/missions")

    assert_problem(response, 503)
