"""The management side of the agent protocol: a grpc.aio server for AgentService.Connect.

Each stream is authenticated from its call metadata against the agents the reconciler expects
(``AgentTracker``), bound to that one instance, and must begin with Register whose ``agent_id``
matches the authenticated id. The server reports connections and heartbeats to the tracker and
routes command traffic through the ``AgentHub``; it never writes instance status itself.

The server listens on loopback, on the Docker bridge gateway that containers reach as
``host.docker.internal``, and on a Unix socket that sandboxes without a network get mounted. It
never binds the wildcard address unless an operator lists it. Secrets are never logged: a
rejected attempt is logged with the claimed agent id and the peer address only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import grpc.aio

from agentic_sandbox.agent.hub import AgentHub, CloseStream, OutboxItem
from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb
from agentic_sandbox.agent.rpc import (
    METADATA_AGENT_ID,
    METADATA_AGENT_SECRET,
    SERVER_OPTIONS,
    service_handler,
)
from agentic_sandbox.controller.agent_tracker import RECONNECTED, AgentTracker, ExpectedAgent
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import EventName, EventSeverity

logger = logging.getLogger(__name__)

# How long a rejected agent's first message is waited for before the call ends.
REJECT_READ_SECONDS = 2.0

# Seconds an authenticated stream may take to send Register.
REGISTER_TIMEOUT = 10.0
# Longest agent id quoted in a log line; ids come from unauthenticated peers.
MAX_LOGGED_ID = 80


class AgentServerError(Exception):
    """The server could not listen on an address; the message names it and the fix."""


class AgentServer:
    def __init__(
        self,
        *,
        tracker: AgentTracker,
        hub: AgentHub,
        recorder: EventRecorder,
        addresses: Sequence[str],
        unix_socket: Path | None = None,
    ) -> None:
        """``addresses`` are ``host:port`` TCP listeners; ``unix_socket`` is a socket path."""
        self._tracker = tracker
        self._hub = hub
        self._recorder = recorder
        self._addresses = list(addresses)
        self._unix_socket = unix_socket
        self._server: grpc.aio.Server | None = None
        # Sandboxes whose agent has registered at least once, for agent.registered.
        self._registered: set[str] = set()
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        server.add_generic_rpc_handlers((service_handler(self._connect),))
        for address in self._addresses:
            try:
                # grpcio returns 0 for a port it cannot bind, or raises in newer releases.
                port = server.add_insecure_port(address)
            except RuntimeError:
                port = 0
            if port == 0:
                raise AgentServerError(
                    f"the agent server cannot listen on {address}: the port is in use or the "
                    "address is not on this machine; stop what uses the port or choose another "
                    "with --grpc-port (env AGENTIC_SANDBOX_GRPC_PORT)"
                )
            self.ports[address] = port
        if self._unix_socket is not None:
            self._prepare_socket(self._unix_socket)
            server.add_insecure_port(f"unix:{self._unix_socket}")
        await server.start()
        if self._unix_socket is not None:
            # Sandboxes run as any uid without capabilities; the secret, not the file mode,
            # decides who may talk to the server.
            os.chmod(self._unix_socket, 0o666)
        self._server = server
        listening = [*self._addresses, *([str(self._unix_socket)] if self._unix_socket else [])]
        logger.info("agent server listening addresses=%s", ",".join(listening))

    @staticmethod
    def _prepare_socket(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
        # A socket left by an earlier run blocks the bind.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    async def stop(self, grace_seconds: float) -> None:
        if self._server is None:
            return
        self._tracker.close_all("the controller is shutting down")
        await self._server.stop(grace_seconds)
        self._server = None
        if self._unix_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self._unix_socket.unlink()

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    # One stream.

    async def _connect(
        self, requests: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ServerMessage]:
        expected = await self._authenticate(requests, context)
        register = await self._read_register(requests, context, expected)
        connection_id = uuid.uuid4().hex[:12]
        outbox: asyncio.Queue[OutboxItem] = asyncio.Queue()

        def close(reason: str) -> None:
            outbox.put_nowait(CloseStream(reason))

        accepted = self._tracker.connect(
            expected,
            connection_id=connection_id,
            close=close,
            hostname=register.hostname,
            version=register.version,
            capabilities=tuple(register.capabilities),
        )
        if not accepted:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the sandbox was replaced; reconnect"
            )
        known = {session.command_id for session in register.sessions}
        self._hub.attach(expected.key, connection_id, outbox, known)
        await self._record_connected(expected, register, connection_id)

        reader = asyncio.create_task(self._read(requests, expected, connection_id, outbox))
        reason = "the stream ended"
        try:
            ack = pb.RegisterAck(
                heartbeat_interval_seconds=max(1, round(self._tracker.heartbeat_interval)),
                connection_id=connection_id,
            )
            yield pb.ServerMessage(register_ack=ack)
            while True:
                item = await outbox.get()
                if isinstance(item, CloseStream):
                    reason = item.reason
                    break
                yield item
        finally:
            reader.cancel()
            self._hub.detach(expected.key, connection_id)
            # A stream the tracker closed is no longer its current one; it is still reported,
            # unless a newer stream of the same agent replaced it.
            current = self._tracker.disconnect(expected.key, connection_id, reason)
            if current or reason != RECONNECTED:
                await self._record_disconnected(expected, connection_id, reason)

    async def _authenticate(
        self, requests: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext
    ) -> ExpectedAgent:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        agent_id = str(metadata.get(METADATA_AGENT_ID, ""))
        secret = str(metadata.get(METADATA_AGENT_SECRET, ""))
        expected = self._tracker.authenticate(agent_id, secret) if agent_id and secret else None
        if expected is None:
            reason = "missing credentials" if not (agent_id and secret) else "invalid credentials"
            logger.warning(
                "agent rejected agent_id=%r peer=%s reason=%s",
                agent_id[:MAX_LOGGED_ID],
                context.peer(),
                reason,
            )
            # Ending the call while the agent still writes its Register makes the agent see
            # INTERNAL instead of this status, so the Register is read first (briefly).
            with contextlib.suppress(TimeoutError, StopAsyncIteration, grpc.aio.AioRpcError):
                await asyncio.wait_for(anext(requests), REJECT_READ_SECONDS)
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "the agent id or secret is invalid; the agent must use the AGENT_ID and "
                "AGENT_SECRET of its own sandbox",
            )
            raise AssertionError("abort returned")  # abort always raises
        return expected

    async def _read_register(
        self,
        requests: AsyncIterator[pb.AgentMessage],
        context: grpc.aio.ServicerContext,
        expected: ExpectedAgent,
    ) -> pb.Register:
        try:
            first = await asyncio.wait_for(anext(requests), REGISTER_TIMEOUT)
        except (TimeoutError, StopAsyncIteration):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"send Register within {REGISTER_TIMEOUT:.0f} s of opening the stream",
            )
            raise AssertionError("abort returned") from None
        if first.WhichOneof("payload") != "register":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be Register"
            )
        if first.register.agent_id != expected.agent_id:
            logger.warning(
                "agent rejected agent_id=%r claimed=%r peer=%s reason=%s",
                expected.agent_id,
                first.register.agent_id[:MAX_LOGGED_ID],
                context.peer(),
                "registered under another id",
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "Register.agent_id differs from the authenticated agent id",
            )
        return first.register

    async def _read(
        self,
        requests: AsyncIterator[pb.AgentMessage],
        expected: ExpectedAgent,
        connection_id: str,
        outbox: asyncio.Queue[OutboxItem],
    ) -> None:
        """Dispatch the agent's messages until its side of the stream ends."""
        key = expected.key
        reason = "the agent closed the stream"
        try:
            async for message in requests:
                kind = message.WhichOneof("payload")
                if kind == "heartbeat":
                    self._tracker.heartbeat(key, connection_id)
                elif kind == "output":
                    self._hub.deliver_output(key, message.output)
                elif kind == "result":
                    self._hub.deliver_result(key, message.result)
                elif kind == "session_report":
                    logger.debug(
                        "session report instance=%s sessions=%d",
                        key,
                        len(message.session_report.sessions),
                    )
                else:
                    logger.warning("unexpected agent message instance=%s kind=%s", key, kind)
        except grpc.aio.AioRpcError as error:
            reason = f"the stream failed: {error.code().name}"
        except asyncio.CancelledError:
            raise
        outbox.put_nowait(CloseStream(reason))

    async def _record_connected(
        self, expected: ExpectedAgent, register: pb.Register, connection_id: str
    ) -> None:
        logger.info(
            "agent connected instance=%s agent_id=%s connection_id=%s version=%s",
            expected.key,
            expected.agent_id,
            connection_id,
            register.version,
        )
        details = {
            "agentId": expected.agent_id,
            "connectionId": connection_id,
            "hostname": register.hostname,
            "version": register.version,
        }
        if expected.sandbox_id not in self._registered:
            self._registered.add(expected.sandbox_id)
            await self._recorder.record(
                EventName.AGENT_REGISTERED,
                instance_key=expected.key,
                uid=expected.uid,
                reason="Registered",
                message=f"agent {expected.agent_id} registered",
                details=details,
            )
        await self._recorder.record(
            EventName.AGENT_CONNECTED,
            instance_key=expected.key,
            uid=expected.uid,
            reason="Connected",
            message=f"agent {expected.agent_id} connected",
            details=details,
        )

    async def _record_disconnected(
        self, expected: ExpectedAgent, connection_id: str, reason: str
    ) -> None:
        logger.info(
            "agent disconnected instance=%s agent_id=%s connection_id=%s reason=%r",
            expected.key,
            expected.agent_id,
            connection_id,
            reason,
        )
        await self._recorder.record(
            EventName.AGENT_DISCONNECTED,
            instance_key=expected.key,
            uid=expected.uid,
            reason="Disconnected",
            message=f"agent {expected.agent_id} disconnected: {reason}",
            severity=EventSeverity.WARNING,
            details={"agentId": expected.agent_id, "connectionId": connection_id},
        )
