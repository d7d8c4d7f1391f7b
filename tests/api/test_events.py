"""The events route over the store's real event log."""

from __future__ import annotations

import httpx
import pytest

from agentic_sandbox.crds.event import Event, EventSeverity
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import assert_problem


async def seed(store: SqliteStore) -> list[Event]:
    events = [
        Event(name="container.created", instance="default/web", reason="Created"),
        Event(name="container.started", instance="default/web", reason="Started"),
        Event(name="container.created", instance="team-a/web", reason="Created"),
        Event(
            name="source.invalid",
            source="file:/srv/manifests/bad.yaml",
            severity=EventSeverity.WARNING,
            message="line 3: spec.imag: unknown field",
        ),
    ]
    return [await store.events.append(event) for event in events]


async def test_list_events_newest_last(client: httpx.AsyncClient, store: SqliteStore) -> None:
    appended = await seed(store)

    response = await client.get("/api/v1/events")

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "EventList"
    assert [item["id"] for item in body["items"]] == [event.id for event in appended]
    assert body["items"][3]["severity"] == "Warning"
    assert body["items"][3]["source"] == "file:/srv/manifests/bad.yaml"


async def test_events_of_instance_by_name(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await seed(store)

    response = await client.get("/api/v1/events", params={"instance": "web"})

    names = [item["name"] for item in response.json()["items"]]
    assert names == ["container.created", "container.started"]


async def test_events_of_instance_in_namespace(
    client: httpx.AsyncClient, store: SqliteStore
) -> None:
    await seed(store)

    by_param = await client.get("/api/v1/events", params={"instance": "web", "namespace": "team-a"})
    by_key = await client.get("/api/v1/events", params={"instance": "team-a/web"})

    assert [item["instance"] for item in by_param.json()["items"]] == ["team-a/web"]
    assert by_key.json()["items"] == by_param.json()["items"]


async def test_events_since_id(client: httpx.AsyncClient, store: SqliteStore) -> None:
    appended = await seed(store)

    response = await client.get("/api/v1/events", params={"since": str(appended[1].id)})

    assert [item["id"] for item in response.json()["items"]] == [appended[2].id, appended[3].id]


async def test_events_limit_keeps_newest(client: httpx.AsyncClient, store: SqliteStore) -> None:
    appended = await seed(store)

    response = await client.get("/api/v1/events", params={"limit": "2"})

    assert [item["id"] for item in response.json()["items"]] == [appended[2].id, appended[3].id]


async def test_events_name_prefix(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await seed(store)

    response = await client.get("/api/v1/events", params={"namePrefix": "source."})

    assert [item["name"] for item in response.json()["items"]] == ["source.invalid"]


@pytest.mark.parametrize(
    ("name", "value"), [("limit", "0"), ("limit", "1001"), ("limit", "ten"), ("since", "-1")]
)
async def test_events_bad_parameter_is_400(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    response = await client.get("/api/v1/events", params={name: value})

    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == name
    assert body["errors"][0]["value"] == value
