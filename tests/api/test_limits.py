"""Request limits: the body read deadline (408) and the uvicorn connection and header limits.

A deadline of zero makes the 408 deterministic without waiting: a ``receive`` that returns at
once still completes, and one that has to wait for the client times out at its first pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from agentic_sandbox.api import limits
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.app import server_config
from agentic_sandbox.controller.config import Settings
from tests.api.support import TOKEN, assert_problem

# Seconds any single network step may take before the test fails.
DEADLINE = 5.0
JSON_HEADERS = {"Content-Type": "application/json"}


async def test_stalled_body_is_408(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "BODY_READ_TIMEOUT_SECONDS", 0.0)
    never = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"kind": '
        await never.wait()
        yield b'"Instance"}'

    response = await client.post("/api/v1/instances", content=trickle(), headers=JSON_HEADERS)

    body = assert_problem(response, 408)
    assert body["code"] == "RequestTimeout"
    assert response.headers["connection"] == "close"


async def test_body_complete_then_receive_unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BODY_READ_TIMEOUT_SECONDS", 0.0)
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append(await receive())
        # What a streaming response does while it waits for the client to go away.
        messages.append(await receive())

    async def receive() -> Message:
        if not messages:
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.sleep(0)  # a pause that the zero deadline would turn into a timeout
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError(f"unexpected response message {message}")

    await limits.BodyDeadlineMiddleware(app)({"type": "http"}, receive, send)

    assert [message["type"] for message in messages] == ["http.request", "http.disconnect"]


async def test_stalled_chunk_raises_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "BODY_READ_TIMEOUT_SECONDS", 0.0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await receive()

    async def receive() -> Message:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": b"{", "more_body": True}

    async def send(message: Message) -> None:
        raise AssertionError(f"unexpected response message {message}")

    with pytest.raises(ApiProblem) as raised:
        await limits.BodyDeadlineMiddleware(app)({"type": "http"}, receive, send)

    assert raised.value.status == 408


# A real uvicorn server with the production settings


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the test process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def test_server_config_sets_limits() -> None:
    config = server_config(Starlette(), Settings(state_dir=Path("/nonexistent")))

    assert config.limit_concurrency == limits.MAX_CONCURRENT_CONNECTIONS
    assert config.h11_max_incomplete_event_size == limits.MAX_HEADER_BYTES
    assert config.timeout_keep_alive == limits.KEEP_ALIVE_TIMEOUT_SECONDS
    assert config.http == "h11"


@pytest.fixture
async def server_port(app: Starlette) -> AsyncIterator[int]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    config = server_config(app, Settings(host="127.0.0.1", port=0))
    config.log_level = "warning"
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, DEADLINE)
        listener.close()


async def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection."""
    # The listening socket exists before the server starts, so the kernel accepts at once.
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return response


async def test_live_stalled_body_is_408_and_closed(
    server_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "BODY_READ_TIMEOUT_SECONDS", 0.05)
    request = (
        b"POST /api/v1/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        + b'{"kind": '
    )

    # Reading to EOF shows that the server closed the connection after the 408.
    response = await _exchange(server_port, request)

    assert response.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"RequestTimeout"' in response


async def test_live_endless_headers_rejected(server_port: int) -> None:
    padding = "x" * (limits.MAX_HEADER_BYTES + 1)
    # No blank line ends the header section, so the server can only buffer it or give up.
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {padding}".encode()

    response = await _exchange(server_port, request)

    assert response.startswith(b"HTTP/1.1 400 ")


async def test_live_normal_request_served(server_port: int) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

    response = await _exchange(server_port, request)

    assert response.startswith(b"HTTP/1.1 200 ")
