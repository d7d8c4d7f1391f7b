"""Event ids past the event log's integer range are rejected as bad parameters, not errors."""

from __future__ import annotations

import httpx

from tests.api.support import assert_problem

HUGE_ID = str(2**64)


async def test_events_since_too_large(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/events", params={"since": HUGE_ID}), 400)
    assert body["errors"][0]["field"] == "since"


async def test_events_last_event_id_too_large(client: httpx.AsyncClient) -> None:
    headers = {"Last-Event-ID": HUGE_ID}
    response = await client.get("/api/v1/events?follow=true", headers=headers)
    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "Last-Event-ID"


async def test_events_last_event_id_thousands_of_digits(client: httpx.AsyncClient) -> None:
    headers = {"Last-Event-ID": "9" * 5000}
    response = await client.get("/api/v1/events?follow=true", headers=headers)
    assert_problem(response, 400)
