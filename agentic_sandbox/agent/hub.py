"""Routing commands to connected agents and their output back to the callers that started them.

``AgentHub`` implements the controller's ``CommandRunner``. It keeps, per instance, the outbox
of that instance's live stream, and per command the queue its events go to. A command belongs
to the instance, not to one stream: when the agent reconnects, the new stream takes over and the
command's remaining output and result arrive through it. Output chunks carry a per-command
sequence number, so chunks and results the agent sends again after a reconnect are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb
from agentic_sandbox.controller.agent_commands import (
    SIGTERM,
    CommandEvent,
    CommandExit,
    CommandOutput,
    CommandSpec,
)
from agentic_sandbox.errors import AgentNotConnected

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloseStream:
    """Put in a stream's outbox to end that stream; ``reason`` goes to the log."""

    reason: str


OutboxItem = pb.ServerMessage | CloseStream


class HubCommand:
    """One command started through the hub; implements ``CommandSession``."""

    def __init__(self, hub: AgentHub, key: str, command_id: str) -> None:
        self._hub = hub
        self.key = key
        self.command_id = command_id
        self.last_seq = 0
        self.finished = False
        # NOTE: unbounded; a client that stops reading while a command writes without pause
        # makes this queue grow until the client disconnects and the command is abandoned.
        self._queue: asyncio.Queue[CommandEvent] = asyncio.Queue()

    async def events(self) -> AsyncIterator[CommandEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, CommandExit):
                return

    async def write_stdin(self, data: bytes, *, eof: bool = False) -> None:
        stdin = pb.StdinChunk(command_id=self.command_id, data=data, eof=eof)
        self._hub.send(self.key, pb.ServerMessage(stdin=stdin))

    async def signal(self, number: int) -> None:
        request = pb.SignalRequest(command_id=self.command_id, signal=number)
        self._hub.send(self.key, pb.ServerMessage(signal=request))

    async def abandon(self) -> None:
        self._hub.release(self)
        if self.finished:
            return
        try:
            await self.signal(SIGTERM)
        except AgentNotConnected:
            logger.warning(
                "abandoned command not signalled; agent is disconnected instance=%s command_id=%s",
                self.key,
                self.command_id,
            )

    def deliver_output(self, chunk: pb.OutputChunk) -> None:
        if self.finished or chunk.seq <= self.last_seq:
            return
        self.last_seq = chunk.seq
        if chunk.stream == pb.OUTPUT_STREAM_STDERR:
            output = CommandOutput(stream="stderr", data=chunk.data)
        else:
            output = CommandOutput(stream="stdout", data=chunk.data)
        self._queue.put_nowait(output)

    def deliver_result(self, result: pb.CommandResult) -> None:
        if self.finished:
            return
        self.finished = True
        self._queue.put_nowait(
            CommandExit(
                exit_code=result.exit_code,
                signal=result.signal,
                error=result.error,
                timed_out=result.timed_out,
                duration_ms=result.duration_ms,
            )
        )


# Exit code reported for a command that the reconnected agent does not have, as shells report
# a command that could not run to its end.
LOST_EXIT_CODE = 255


class AgentHub:
    def __init__(self, *, is_stale: Callable[[str], bool] | None = None) -> None:
        """``is_stale(key)`` returns whether the agent of ``key`` has missed its heartbeats; such
        an agent is given no new command."""
        # Instance key -> (connection id, outbox) of its live stream.
        self._streams: dict[str, tuple[str, asyncio.Queue[OutboxItem]]] = {}
        self._commands: dict[tuple[str, str], HubCommand] = {}
        self._is_stale = is_stale

    # The server's side.

    def attach(
        self,
        key: str,
        connection_id: str,
        outbox: asyncio.Queue[OutboxItem],
        known: set[str] | None = None,
    ) -> None:
        """Make this stream the instance's live one.

        ``known`` is the command ids the agent reported when it registered. Commands of the
        instance it does not know were lost with its previous process or stream, so they end
        now with an error instead of waiting for a result that will never come.
        """
        self._streams[key] = (connection_id, outbox)
        if known is None:
            return
        lost = [cid for k, cid in self._commands if k == key and cid not in known]
        for command_id in lost:
            command = self._commands.pop((key, command_id))
            logger.warning(
                "command lost; the agent does not know it instance=%s command_id=%s",
                key,
                command_id,
            )
            command.deliver_result(
                pb.CommandResult(
                    command_id=command_id,
                    exit_code=LOST_EXIT_CODE,
                    error="the agent's connection ended while the command ran, and the agent "
                    "that reconnected does not know it; its result is unknown",
                )
            )

    def detach(self, key: str, connection_id: str) -> None:
        current = self._streams.get(key)
        if current is not None and current[0] == connection_id:
            del self._streams[key]

    def deliver_output(self, key: str, chunk: pb.OutputChunk) -> None:
        command = self._commands.get((key, chunk.command_id))
        if command is not None:
            command.deliver_output(chunk)

    def deliver_result(self, key: str, result: pb.CommandResult) -> None:
        command = self._commands.pop((key, result.command_id), None)
        if command is not None:
            command.deliver_result(result)

    def watched(self, key: str) -> list[str]:
        """Return the ids of the commands of ``key`` that someone still follows."""
        return sorted(command_id for k, command_id in self._commands if k == key)

    # The CommandRunner side.

    async def start(self, key: str, spec: CommandSpec) -> HubCommand:
        if not spec.argv:
            raise ValueError("a command needs at least the program name in argv")
        command = HubCommand(self, key, uuid.uuid4().hex)
        request = pb.CommandRequest(
            command_id=command.command_id,
            argv=spec.argv,
            env=spec.env,
            working_dir=spec.working_dir,
            timeout_seconds=spec.timeout_seconds,
            pty=spec.pty,
            stdin=spec.stdin,
        )
        self._commands[(key, command.command_id)] = command
        try:
            self.send(key, pb.ServerMessage(command=request))
        except AgentNotConnected:
            del self._commands[(key, command.command_id)]
            raise
        logger.info(
            "command sent instance=%s command_id=%s program=%r",
            key,
            command.command_id,
            spec.argv[0],
        )
        return command

    def send(self, key: str, message: pb.ServerMessage) -> None:
        stream = self._streams.get(key)
        if stream is not None and message.HasField("command") and self._stale(key):
            raise AgentNotConnected(
                f"the agent of instance {key} has missed its heartbeats, so no command is sent "
                "to it; check its AgentConnected condition with 'sandboxctl describe instance'"
            )
        if stream is None:
            raise AgentNotConnected(
                f"the agent of instance {key} is not connected; check its AgentConnected "
                "condition with 'sandboxctl describe instance'"
            )
        stream[1].put_nowait(message)

    def _stale(self, key: str) -> bool:
        return self._is_stale is not None and self._is_stale(key)

    def release(self, command: HubCommand) -> None:
        self._commands.pop((command.key, command.command_id), None)
