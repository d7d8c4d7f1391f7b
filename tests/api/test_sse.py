"""The event stream (``follow=true``) over a real uvicorn server, and the ``type`` filter.

The server runs in the test's event loop on 127.0.0.1 with an ephemeral port, over the real
SqliteStore, so tests append events to the store directly and read the app's subscriber gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from agentic_sandbox.api import sse
from agentic_sandbox.api.app import create_app
from agentic_sandbox.crds.event import Event
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import TOKEN, assert_problem

# Seconds any single step may take before the test fails.
DEADLINE = 5.0
EVENTS = "/api/v1/events"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the test process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Live:
    app: Starlette
    http: httpx.AsyncClient
    store: SqliteStore

    @property
    def subscribers(self) -> sse.SseSubscriberGauge:
        gauge = self.app.state.sse_subscribers
        assert isinstance(gauge, sse.SseSubscriberGauge)
        return gauge


@dataclass
class Frame:
    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        value = json.loads(self.fields["data"])
        assert isinstance(value, dict)
        return value


class FrameReader:
    """Parses an SSE response into frames, one blank-line-terminated block at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next_frame(self) -> Frame:
        frame = Frame()
        async with asyncio.timeout(DEADLINE):
            async for line in self._lines:
                if line == "":
                    if frame.fields or frame.comments:
                        return frame
                    continue
                if line.startswith(":"):
                    frame.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                frame.fields[name] = value.removeprefix(" ")
        raise EOFError("the event stream ended")

    async def next_event(self) -> Frame:
        """Return the next frame that carries an event, skipping retry and keep-alive frames."""
        while True:
            frame = await self.next_frame()
            if "id" in frame.fields:
                return frame

    async def events(self, count: int) -> list[Frame]:
        return [await self.next_event() for _ in range(count)]


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until it holds, failing after DEADLINE seconds.

    Only for the subscriber gauge, which no event announces.
    """
    async with asyncio.timeout(DEADLINE):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


@pytest.fixture
async def live(store: SqliteStore) -> AsyncIterator[Live]:
    app = create_app(store=store, event_log=store.events, token=TOKEN)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_graceful_shutdown=int(DEADLINE)
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=DEADLINE
        ) as http:
            yield Live(app=app, http=http, store=store)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, DEADLINE)
        listener.close()


@contextlib.asynccontextmanager
async def stream(
    live: Live, path: str = EVENTS, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[FrameReader]:
    """Open an event stream and return once its response headers arrived."""
    query = {"follow": "true", **params}
    async with live.http.stream("GET", path, params=query, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        yield FrameReader(response)


def event(name: str = "container.created", instance: str = "default/web", **extra: Any) -> Event:
    return Event(name=name, instance=instance, message=f"{name} of {instance}", **extra)


async def append(store: SqliteStore, *events: Event) -> list[Event]:
    return [await store.events.append(item) for item in events]


def wire(item: Event) -> dict[str, Any]:
    return item.model_dump(mode="json", by_alias=True, exclude_none=True)


async def test_stream_headers(live: Live) -> None:
    async with stream(live) as reader:
        headers = reader.response.headers

    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"


async def test_stream_frames_id_event_data(live: Live) -> None:
    async with stream(live) as reader:
        appended = await append(live.store, event("container.created"), event("instance.running"))
        frames = await reader.events(2)

    for frame, item in zip(frames, appended, strict=True):
        assert frame.fields["id"] == str(item.id)
        assert frame.fields["event"] == item.name
        assert frame.data == wire(item)


async def test_stream_starts_after_newest(live: Live) -> None:
    await append(live.store, event("container.created"))

    async with stream(live) as reader:
        (later,) = await append(live.store, event("container.started"))
        frame = await reader.next_event()

    assert frame.fields["id"] == str(later.id)


async def test_resume_after_disconnect(live: Live) -> None:
    async with stream(live) as reader:
        seen = await append(live.store, event("container.created"), event("container.started"))
        frames = await reader.events(2)
    last_id = frames[-1].fields["id"]
    await wait_until(lambda: live.subscribers.current == 0)

    # A burst while disconnected, every event with the same timestamp.
    instant = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    burst = await append(
        live.store, *[event("instance.updated", time=instant, reason=f"r{n}") for n in range(6)]
    )
    async with stream(live, headers={"Last-Event-ID": last_id}) as reader:
        missed = await reader.events(len(burst))
        (after,) = await append(live.store, event("container.stopped"))
        live_frame = await reader.next_event()

    assert last_id == str(seen[-1].id)
    assert [frame.fields["id"] for frame in missed] == [str(item.id) for item in burst]
    assert [frame.data["reason"] for frame in missed] == [f"r{n}" for n in range(6)]
    assert live_frame.fields["id"] == str(after.id)


async def test_resume_by_since_parameter(live: Live) -> None:
    first, *rest = await append(live.store, *[event(reason=f"r{n}") for n in range(4)])

    async with stream(live, since=str(first.id)) as reader:
        frames = await reader.events(3)

    assert [frame.fields["id"] for frame in frames] == [str(item.id) for item in rest]


async def test_last_event_id_wins_over_since(live: Live) -> None:
    appended = await append(live.store, *[event(reason=f"r{n}") for n in range(3)])

    headers = {"Last-Event-ID": str(appended[1].id)}
    async with stream(live, headers=headers, since="0") as reader:
        frame = await reader.next_event()

    assert frame.fields["id"] == str(appended[2].id)


async def test_stream_type_and_instance_filter(live: Live) -> None:
    async with stream(live, type="container.", instance="web") as reader:
        appended = await append(
            live.store,
            event("instance.running"),
            event("container.created", instance="team-a/web"),
            event("container.started"),
            event("source.invalid", instance="default/web"),
            event("container.removed"),
        )
        frames = await reader.events(2)

    assert [frame.fields["id"] for frame in frames] == [str(appended[2].id), str(appended[4].id)]


async def test_stream_exact_type(live: Live) -> None:
    async with stream(live, type="container.started") as reader:
        appended = await append(live.store, event("container.created"), event("container.started"))
        frame = await reader.next_event()

    assert frame.fields["id"] == str(appended[1].id)


async def test_instance_route_streams(live: Live) -> None:
    path = "/api/v1/instances/web/events"
    async with stream(live, path, namespace="team-a") as reader:
        appended = await append(
            live.store, event(instance="default/web"), event(instance="team-a/web")
        )
        frame = await reader.next_event()

    assert frame.fields["id"] == str(appended[1].id)
    assert frame.data["instance"] == "team-a/web"


async def test_keepalive_comment(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.01)

    async with stream(live) as reader:
        first = await reader.next_frame()
        second = await reader.next_frame()

    assert first.fields == {"retry": str(sse.RECONNECT_MILLISECONDS)}
    assert second.comments == ["keep-alive"]
    assert second.fields == {}


async def test_keepalive_while_filtered(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.01)

    async with stream(live, type="vm.") as reader:
        await append(live.store, *[event() for _ in range(3)])
        await reader.next_frame()
        frame = await reader.next_frame()

    assert frame.comments == ["keep-alive"]


async def test_subscribers_zero_after_disconnect(live: Live) -> None:
    async with stream(live), stream(live, type="container."):
        await wait_until(lambda: live.subscribers.current == 2)

    await wait_until(lambda: live.subscribers.current == 0)
    steps = [task for task in asyncio.all_tasks() if task.get_name() == "sse-subscription-step"]
    assert steps == []
    assert live.subscribers.opened == 2


async def test_subscribers_zero_after_mid_event_disconnect(live: Live) -> None:
    async with stream(live) as reader:
        await append(live.store, *[event() for _ in range(50)])
        await reader.next_event()

    await wait_until(lambda: live.subscribers.current == 0)


async def test_stream_ends_when_store_closes(live: Live) -> None:
    async with stream(live) as reader:
        await reader.next_frame()
        await live.store.close()

        with pytest.raises(EOFError):
            await reader.next_frame()

    assert live.subscribers.current == 0


async def test_bad_last_event_id_is_400(live: Live) -> None:
    response = await live.http.get(
        EVENTS, params={"follow": "true"}, headers={"Last-Event-ID": "abc"}
    )

    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "Last-Event-ID"
    assert body["errors"][0]["value"] == "abc"


async def test_stream_requires_token(live: Live) -> None:
    response = await live.http.get(
        EVENTS, params={"follow": "true"}, headers={"Authorization": "Bearer wrong"}
    )

    assert_problem(response, 401)


async def test_list_type_filter(client: httpx.AsyncClient, store: SqliteStore) -> None:
    await append(
        store,
        event("container.created"),
        event("container.createdx"),
        event("container.started"),
        event("instance.running"),
    )

    by_prefix = await client.get(EVENTS, params={"type": "container."})
    by_name = await client.get(EVENTS, params={"type": "container.created"})
    by_category = await client.get(EVENTS, params={"type": "container"})

    names = ["container.created", "container.createdx", "container.started"]
    assert [item["name"] for item in by_prefix.json()["items"]] == names
    assert [item["name"] for item in by_name.json()["items"]] == ["container.created"]
    assert [item["name"] for item in by_category.json()["items"]] == names


async def test_list_type_with_prefix_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get(EVENTS, params={"type": "container.", "namePrefix": "c"})

    body = assert_problem(response, 400)
    assert body["errors"][0]["field"] == "type"


async def test_instance_events_list(client: httpx.AsyncClient, store: SqliteStore) -> None:
    appended = await append(
        store, event(instance="default/web"), event(instance="team-a/web"), event("x.y")
    )

    response = await client.get("/api/v1/instances/web/events")

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [appended[0].id, appended[2].id]
