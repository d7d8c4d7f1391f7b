"""sandboxctl events and events --watch against a real API server, through a cuttable proxy.

The proxy forwards TCP between sandboxctl and the server on 127.0.0.1, so a test can drop the
watch's connection for real. Tests act at fixed points of the watch (when it connects, when it
prints an event) and end it there with KeyboardInterrupt, as Ctrl-C would.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from agentic_sandbox.cli import events as events_cli
from agentic_sandbox.cli.events import EventClient, EventPrinter, parse_frames, reconnect_delay
from agentic_sandbox.crds.event import Event
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl

CHUNK_BYTES = 65536


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 whose open connections a test can cut at any moment."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            with self._lock:
                self._sockets += [downstream, upstream]
                self.connections += 1
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK_BYTES):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                _close(end)

    def cut(self) -> None:
        """Close every open connection in both directions."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for end in sockets:
            _close(end)

    def close(self) -> None:
        """Stop accepting, so that new connections are refused, and cut the open ones."""
        _close(self._listener)
        self._thread.join(5)
        self.cut()


def _close(end: socket.socket) -> None:
    try:
        end.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    end.close()


@pytest.fixture
def proxy(client_env: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[CuttableProxy]:
    """Point sandboxctl at a proxy in front of the server, and make reconnects quick."""
    port = urlsplit(client_env.url).port
    assert port is not None
    running = CuttableProxy(port)
    monkeypatch.setenv("SANDBOXCTL_SERVER", running.url)
    monkeypatch.setattr(events_cli, "RECONNECT_BASE_SECONDS", 0.01)
    try:
        yield running
    finally:
        running.close()


def append(server: ApiServer, *events: Event) -> list[Event]:
    assert server.store is not None
    return [server.call(server.store.events.append(item)) for item in events]


def event(name: str = "container.created", reason: str = "Created", **extra: Any) -> Event:
    return Event(name=name, instance="default/web", reason=reason, message=name, **extra)


def on_connect(monkeypatch: pytest.MonkeyPatch, action: Callable[[int], object]) -> None:
    """Call ``action(n)`` each time the watch's stream has connected, n counting from 1."""
    original = EventClient.stream
    count = 0

    def stream(self: EventClient, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        inner = kwargs.pop("on_connect")

        def connected() -> None:
            nonlocal count
            inner()
            count += 1
            action(count)

        return original(self, *args, on_connect=connected, **kwargs)

    monkeypatch.setattr(EventClient, "stream", stream)


def on_print(monkeypatch: pytest.MonkeyPatch, action: Callable[[list[int]], None]) -> list[int]:
    """Call ``action(ids)`` after each streamed event is printed; returns the ids printed."""
    original = EventPrinter.print_event
    printed: list[int] = []

    def print_event(self: EventPrinter, item: dict[str, Any]) -> None:
        original(self, item)
        printed.append(item["id"])
        action(printed)

    monkeypatch.setattr(EventPrinter, "print_event", print_event)
    return printed


def test_events_table(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    append(client_env, event("container.created"), event("instance.running", "Running"))

    result = sandboxctl("events", "--type", "container.")

    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split() == ["AGE", "TYPE", "EVENT", "REASON", "OBJECT", "MESSAGE"]
    assert len(rows) == 1
    assert rows[0].split()[2:5] == ["container.created", "Created", "instance/default/web"]


def test_watch_streams_new_rows(
    proxy: CuttableProxy,
    client_env: ApiServer,
    sandboxctl: Sandboxctl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    append(client_env, event("container.created"))
    on_connect(monkeypatch, lambda _: append(client_env, event("container.started", "Started")))

    def stop(printed: list[int]) -> None:
        raise KeyboardInterrupt

    on_print(monkeypatch, stop)

    result = sandboxctl("events", "--watch")

    assert result.code == 130
    header, listed, streamed = result.out.splitlines()
    assert listed.split()[2] == "container.created"
    assert streamed.split()[2] == "container.started"
    assert streamed.index("Started") == header.index("REASON")
    assert streamed.index("instance/") == header.index("OBJECT")


def test_watch_long_cell_keeps_gap(
    proxy: CuttableProxy,
    client_env: ApiServer,
    sandboxctl: Sandboxctl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long_name = Event(name="container.started", instance="default/" + "w" * 40, message="hello")
    on_connect(monkeypatch, lambda _: append(client_env, long_name))

    def stop(printed: list[int]) -> None:
        raise KeyboardInterrupt

    on_print(monkeypatch, stop)

    result = sandboxctl("events", "--watch")

    assert result.code == 130
    streamed = result.out.splitlines()[-1]
    assert streamed.split()[-2:] == ["instance/default/" + "w" * 40, "hello"]


def test_watch_resumes_after_dropped_connection(
    proxy: CuttableProxy,
    client_env: ApiServer,
    sandboxctl: Sandboxctl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed = append(client_env, event("container.created"), event("container.started", "Started"))
    first: list[Event] = []
    burst: list[Event] = []
    last: list[Event] = []
    instant = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def connected(count: int) -> None:
        if count == 1:
            first.extend(append(client_env, event("instance.running", "Running")))

    def printed_one(printed: list[int]) -> None:
        if len(printed) == 1:
            # Drop the connection, then append a burst that shares one timestamp.
            proxy.cut()
            events = [event("instance.updated", f"Burst{n}", time=instant) for n in range(5)]
            burst.extend(append(client_env, *events))
        elif len(printed) == 6:
            last.extend(append(client_env, event("container.stopped", "Stopped")))
        elif len(printed) == 7:
            raise KeyboardInterrupt

    on_connect(monkeypatch, connected)
    printed = on_print(monkeypatch, printed_one)

    result = sandboxctl("events", "--watch")

    assert result.code == 130
    assert printed == [item.id for item in first + burst + last]
    reasons = [line.split()[3] for line in result.out.splitlines()[1:]]
    assert reasons == ["Created", "Started", "Running", *(f"Burst{n}" for n in range(5)), "Stopped"]
    assert "reconnecting" in result.err
    assert proxy.connections >= 2
    assert listed[-1].id is not None
    assert first[0].id == listed[-1].id + 1


def test_watch_since_skips_listed(
    proxy: CuttableProxy,
    client_env: ApiServer,
    sandboxctl: Sandboxctl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded = append(client_env, *[event(reason=f"Seed{n}") for n in range(4)])

    def stop(printed: list[int]) -> None:
        raise KeyboardInterrupt

    printed = on_print(monkeypatch, stop)

    result = sandboxctl("events", "--watch", "--since", str(seeded[0].id), "--limit", "2")

    assert result.code == 130
    assert printed == [seeded[3].id]
    reasons = [line.split()[3] for line in result.out.splitlines()[1:]]
    assert reasons == ["Seed1", "Seed2", "Seed3"]


def test_watch_gives_up_after_retries(
    proxy: CuttableProxy,
    client_env: ApiServer,
    sandboxctl: Sandboxctl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_cli, "MAX_RECONNECT_ATTEMPTS", 3)
    on_connect(monkeypatch, lambda _: append(client_env, event()))

    def refuse_connections(printed: list[int]) -> None:
        proxy.close()

    on_print(monkeypatch, refuse_connections)

    result = sandboxctl("events", "--watch")

    assert result.code == 1
    assert "lost the event stream" in result.err
    assert result.err.count("reconnecting in") == 3


def test_watch_json_lines(
    proxy: CuttableProxy,
    client_env: ApiServer,
    sandboxctl: Sandboxctl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    append(client_env, event("container.created"))
    on_connect(monkeypatch, lambda _: append(client_env, event("vm.started"), event()))

    def stop(printed: list[int]) -> None:
        raise KeyboardInterrupt

    on_print(monkeypatch, stop)

    result = sandboxctl("events", "--watch", "--type", "container.", "-o", "json")

    assert result.code == 130
    names = [json.loads(line)["name"] for line in result.out.splitlines()]
    assert names == ["container.created", "container.created"]


def test_events_bad_token(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("events", "--watch", "--token", "wrong")

    assert result.code == 1
    assert "rejected the token given with --token" in result.err


def test_parse_frames_fields() -> None:
    lines = ["retry: 2000", "", ": keep-alive", "", "id: 7", "event: a.b", "data: {", "data: }", ""]

    frames = list(parse_frames(lines))

    assert frames == [{"retry": "2000"}, {"id": "7", "event": "a.b", "data": "{\n}"}]


def test_reconnect_delay_capped() -> None:
    delays = [reconnect_delay(attempt) for attempt in range(1, 10)]

    assert delays[:3] == [0.5, 1.0, 2.0]
    assert max(delays) == events_cli.RECONNECT_MAX_SECONDS
    assert delays == sorted(delays)
