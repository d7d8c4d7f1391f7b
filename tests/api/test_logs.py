"""The logs route over a FakeRuntime."""

from __future__ import annotations

import asyncio

import httpx

from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.runtimes.fake import FakeRuntime
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.runtime_support import ObservedRuntime, add_sandbox
from tests.api.support import assert_problem, manifest

LOGS = "/api/v1/instances/web/logs"
# Seconds to wait for the route to start streaming.
OPEN_TIMEOUT = 5.0


async def create_web(store: SqliteStore) -> Instance:
    created = await store.create(Instance.model_validate(manifest("web")))
    assert isinstance(created, Instance)
    return created


async def test_logs_returns_output(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    sandbox = await add_sandbox(runtime, await create_web(store))
    runtime.write_output(sandbox.id, b"one\ntwo\nthree\n")

    response = await runtime_client.get(LOGS)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "one\ntwo\nthree\n"


async def test_logs_tail_limits_lines(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    sandbox = await add_sandbox(runtime, await create_web(store))
    runtime.write_output(sandbox.id, b"one\ntwo\nthree\n")

    response = await runtime_client.get(LOGS, params={"tail": "2"})

    assert response.text == "two\nthree\n"


async def test_logs_follow_until_sandbox_stops(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: ObservedRuntime
) -> None:
    sandbox = await add_sandbox(runtime, await create_web(store))
    runtime.write_output(sandbox.id, b"before\n")

    request = asyncio.create_task(runtime_client.get(LOGS, params={"follow": "true"}))
    async with asyncio.timeout(OPEN_TIMEOUT):
        await runtime.log_streaming.wait()
    runtime.write_output(sandbox.id, b"after\n")
    runtime.exit(sandbox.id, 0)
    response = await request

    assert response.status_code == 200
    assert response.text == "before\nafter\n"


async def test_logs_without_sandbox_is_404(
    runtime_client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await create_web(store)

    response = await runtime_client.get(LOGS)

    problem = assert_problem(response, 404)
    assert "has no sandbox" in problem["detail"]


async def test_logs_missing_instance_is_404(runtime_client: httpx.AsyncClient) -> None:
    response = await runtime_client.get(LOGS)

    assert_problem(response, 404)


async def test_logs_runtime_down_is_503(
    runtime_client: httpx.AsyncClient, store: SqliteStore, runtime: FakeRuntime
) -> None:
    await add_sandbox(runtime, await create_web(store))
    runtime.set_available(False)

    response = await runtime_client.get(LOGS)

    assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"


async def test_logs_without_runtime_is_503(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await create_web(store)

    response = await client.get(LOGS)

    assert_problem(response, 503)
    assert "retry-after" in response.headers


async def test_logs_negative_tail_is_400(runtime_client: httpx.AsyncClient) -> None:
    response = await runtime_client.get(LOGS, params={"tail": "-1"})

    problem = assert_problem(response, 400)
    assert problem["errors"][0]["field"] == "tail"
