"""The gRPC plumbing of ``agent.v1.AgentService``, written against grpc's generic API.

The message classes are generated from ``proto/agent/v1/agent.proto`` and committed. The
service glue is these few lines instead of a generated ``agent_pb2_grpc`` module, because
generated glue raises RuntimeError on import under a grpcio older than the grpcio-tools that
wrote it, and the agent runs inside images whose grpcio the controller does not choose.

Both sides use the same keepalive settings, so the server never answers a client's pings
with GOAWAY ``too_many_pings``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio

from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb

SERVICE = "agent.v1.AgentService"
CONNECT_METHOD = f"/{SERVICE}/Connect"

# Call metadata the agent authenticates with (gRPC metadata keys are lower case).
METADATA_AGENT_ID = "x-agent-id"
METADATA_AGENT_SECRET = "x-agent-secret"

# Pings every 20 s on an otherwise idle connection, answered within 10 s, find a dead peer
# (a crashed controller, a host that went to sleep) long before TCP would.
KEEPALIVE_TIME_MS = 20_000
KEEPALIVE_TIMEOUT_MS = 10_000
# The server accepts pings this often; it must not be above the client's ping interval.
MIN_PING_INTERVAL_MS = 10_000
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

CLIENT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Reconnect attempts are the agent's own, with jitter; keep grpc's short.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]

SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]

# The server's handler of Connect: it reads AgentMessages and yields ServerMessages.
ConnectHandler = Callable[
    [AsyncIterator[pb.AgentMessage], grpc.aio.ServicerContext], AsyncIterator[pb.ServerMessage]
]


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def service_handler(connect: ConnectHandler) -> grpc.GenericRpcHandler:
    """Return the generic handler that routes AgentService.Connect to ``connect``."""
    handler = grpc.stream_stream_rpc_method_handler(
        connect,
        request_deserializer=pb.AgentMessage.FromString,
        response_serializer=_serialize,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"Connect": handler})


def connect_call(channel: grpc.aio.Channel) -> Callable[..., Any]:
    """Return the callable that opens a Connect stream on ``channel``."""
    call: Callable[..., Any] = channel.stream_stream(
        CONNECT_METHOD,
        request_serializer=_serialize,
        response_deserializer=pb.ServerMessage.FromString,
    )
    return call


def channel_target(address: str) -> str:
    """Turn a MANAGEMENT_SERVER value into a gRPC target.

    ``unix:///path`` and ``unix:/path`` are Unix sockets; ``host:port`` is TCP; a bare host
    gets the default port 8120.
    """
    address = address.strip()
    if address.startswith("unix:"):
        return address
    if address.startswith("[") or address.count(":") == 1:
        return address
    if ":" not in address:
        return f"{address}:8120"
    return address
