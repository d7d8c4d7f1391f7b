"""The API's listening socket: accepted connections send small responses without delay."""

from __future__ import annotations

import asyncio
import socket

from agentic_sandbox.app import bind_socket

DEADLINE = 10.0


class _NoDelayProbe(asyncio.Protocol):
    def __init__(self, result: asyncio.Future[int]) -> None:
        self._result = result

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        accepted = transport.get_extra_info("socket")
        self._result.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        transport.close()


async def test_bind_socket_accepted_connection_nodelay() -> None:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[int] = loop.create_future()
    listener = bind_socket("127.0.0.1", 0)
    server = await loop.create_server(lambda: _NoDelayProbe(result), sock=listener)
    try:
        async with asyncio.timeout(DEADLINE):
            _, writer = await asyncio.open_connection(*listener.getsockname())
            nodelay = await result
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()

    # Without TCP_NODELAY, Nagle's algorithm delays each response body by the client's
    # delayed ACK.
    assert nodelay != 0
