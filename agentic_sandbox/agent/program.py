"""``sandbox-agent``: the program inside each sandbox that dials the controller and runs commands.

Configuration comes from the environment the controller injects: ``AGENT_ID``,
``AGENT_SECRET`` and ``MANAGEMENT_SERVER`` (``host:port`` or ``unix:///path``). The agent
removes ``AGENT_SECRET`` from its own environment at start, so the commands it runs never
inherit it.

The agent keeps one stream open. When the stream breaks (the controller restarts, the network
drops), it reconnects after an exponential backoff with full jitter and registers again. Its
commands keep running meanwhile. Their output waits in the outbox, and the results of
commands that finished recently are sent again on every new stream, so a command started before
a disconnection still reports how it ended.

This module runs inside sandboxes: it imports the standard library, grpc and the generated
messages only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import random
import signal
import socket
import sys
import time
from dataclasses import dataclass

import grpc
import grpc.aio

from agentic_sandbox.agent.commands import KILL_GRACE_SECONDS, RunningCommand
from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb
from agentic_sandbox.agent.rpc import (
    CLIENT_OPTIONS,
    METADATA_AGENT_ID,
    METADATA_AGENT_SECRET,
    channel_target,
    connect_call,
)

logger = logging.getLogger("sandbox-agent")

VERSION = "0.1.0"
CAPABILITIES = ("exec", "pty", "stdin", "signal")
# Reconnect delays: full jitter over 0.5 s doubling to 30 s.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
# Results of finished commands are sent again on each new stream for this long.
RESULT_RETENTION_SECONDS = 600.0
DEFAULT_HEARTBEAT_SECONDS = 10.0


@dataclass(frozen=True)
class AgentConfig:
    agent_id: str
    secret: str
    server: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> AgentConfig:
        missing = [name for name in ("AGENT_ID", "AGENT_SECRET") if not env.get(name)]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} not set; the controller injects them into every "
                "sandbox it creates"
            )
        server = env.get("MANAGEMENT_SERVER") or "host.docker.internal:8120"
        return cls(agent_id=env["AGENT_ID"], secret=env["AGENT_SECRET"], server=server)


def backoff_delay(attempt: int) -> float:
    """Return the wait before reconnect ``attempt`` (1, 2, ...): full jitter up to a cap."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempt, 16))
    return random.uniform(0.0, ceiling)


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.heartbeat_interval = DEFAULT_HEARTBEAT_SECONDS
        # Running commands, and finished ones for RESULT_RETENTION_SECONDS after they end.
        self.commands: dict[str, RunningCommand] = {}
        self._outbox: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
        self._unsent: pb.AgentMessage | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self.connected = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Connect, and reconnect after every failure, until ``stop`` or a Shutdown request."""
        attempt = 0
        while not self._stop.is_set():
            registered = await self._session()
            if self._stop.is_set():
                break
            attempt = 1 if registered else attempt + 1
            delay = backoff_delay(attempt)
            logger.info("reconnecting attempt=%d delay=%.1fs", attempt, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        await self._end_commands(KILL_GRACE_SECONDS)

    async def _session(self) -> bool:
        """Run one stream to its end; return whether the server accepted the registration."""
        registered = False
        metadata = (
            (METADATA_AGENT_ID, self.config.agent_id),
            (METADATA_AGENT_SECRET, self.config.secret),
        )
        target = channel_target(self.config.server)
        heartbeats: asyncio.Task[None] | None = None
        try:
            async with grpc.aio.insecure_channel(target, options=CLIENT_OPTIONS) as channel:
                call = connect_call(channel)(metadata=metadata)
                stopper = asyncio.create_task(self._cancel_on_stop(call))
                writer = asyncio.create_task(self._write(call))
                try:
                    while (message := await call.read()) is not grpc.aio.EOF:
                        if message.WhichOneof("payload") == "register_ack":
                            registered = True
                            heartbeats = self._accept(message.register_ack)
                        else:
                            await self._handle(message)
                except asyncio.CancelledError:
                    # grpc raises CancelledError for a call that ``stop`` cancelled; a
                    # cancellation of this task itself goes on.
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise
                    return registered
                except grpc.aio.AioRpcError as error:
                    # When the server ends the call while Register is still being written, the
                    # read fails with INTERNAL; the call's own status gives the reason it ended.
                    code, details = await call.code(), await call.details()
                    logger.warning(
                        "stream failed server=%s code=%s detail=%s",
                        self.config.server,
                        code.name if code is not None else error.code().name,
                        details or error.details(),
                    )
                    return registered
                finally:
                    stopper.cancel()
                    writer.cancel()
            logger.warning("stream ended by the server")
        except grpc.aio.AioRpcError as error:
            logger.warning(
                "stream failed server=%s code=%s detail=%s",
                self.config.server,
                error.code().name,
                error.details(),
            )
        finally:
            self.connected.clear()
            if heartbeats is not None:
                heartbeats.cancel()
        return registered

    async def _cancel_on_stop(self, call: grpc.aio.StreamStreamCall) -> None:
        await self._stop.wait()
        call.cancel()

    def _accept(self, ack: pb.RegisterAck) -> asyncio.Task[None]:
        if ack.heartbeat_interval_seconds:
            self.heartbeat_interval = float(ack.heartbeat_interval_seconds)
        logger.info(
            "registered server=%s connection_id=%s heartbeat_interval=%.0fs",
            self.config.server,
            ack.connection_id,
            self.heartbeat_interval,
        )
        self.connected.set()
        return asyncio.create_task(self._heartbeat())

    async def _write(self, call: grpc.aio.StreamStreamCall) -> None:
        """Send Register, then results worth sending again, then the outbox, until cancelled.

        A message whose write fails is kept and sent first on the next stream.
        """
        try:
            await call.write(pb.AgentMessage(register=self._register()))
            for command in list(self.commands.values()):
                if command.result is not None:
                    await call.write(pb.AgentMessage(result=command.result))
            while True:
                if self._unsent is None:
                    self._unsent = await self._outbox.get()
                message = self._unsent
                stale_heartbeat = message.WhichOneof("payload") == "heartbeat"
                if not (stale_heartbeat and not self.connected.is_set()):
                    # NOTE: a write that returned may still be lost if the connection drops
                    # before the bytes leave; results are sent again on the next stream,
                    # output is not.
                    await call.write(message)
                self._unsent = None
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as error:
            logger.debug("write ended error=%s", error)

    def _register(self) -> pb.Register:
        uname = os.uname()
        system = pb.SystemInfo(
            os=platform.system(),
            kernel=uname.release,
            machine=uname.machine,
            cpu_count=os.cpu_count() or 0,
            memory_bytes=_meminfo().get("MemTotal", 0),
        )
        return pb.Register(
            agent_id=self.config.agent_id,
            hostname=socket.gethostname(),
            version=VERSION,
            capabilities=list(CAPABILITIES),
            system=system,
            sessions=[command.session() for command in self.commands.values()],
        )

    async def _heartbeat(self) -> None:
        while True:
            self._outbox.put_nowait(pb.AgentMessage(heartbeat=self._heartbeat_message()))
            await asyncio.sleep(self.heartbeat_interval)

    def _heartbeat_message(self) -> pb.Heartbeat:
        running = sum(1 for command in self.commands.values() if command.result is None)
        memory = _meminfo()
        return pb.Heartbeat(
            state=pb.AGENT_STATE_BUSY if running else pb.AGENT_STATE_READY,
            running_commands=running,
            load_average_1m=os.getloadavg()[0],
            memory_total_bytes=memory.get("MemTotal", 0),
            memory_available_bytes=memory.get("MemAvailable", 0),
            uptime_seconds=int(time.monotonic()),
            sent_at_ms=int(time.time() * 1000),
        )

    async def _handle(self, message: pb.ServerMessage) -> None:
        kind = message.WhichOneof("payload")
        if kind == "command":
            self._start(message.command)
        elif kind == "stdin":
            command = self.commands.get(message.stdin.command_id)
            if command is not None:
                await command.write_stdin(message.stdin.data, message.stdin.eof)
        elif kind == "signal":
            command = self.commands.get(message.signal.command_id)
            if command is not None:
                command.send_signal(message.signal.signal)
        elif kind == "config":
            if message.config.heartbeat_interval_seconds:
                self.heartbeat_interval = float(message.config.heartbeat_interval_seconds)
        elif kind == "session_query":
            sessions = [command.session() for command in self.commands.values()]
            report = pb.SessionReport(sessions=sessions)
            self._outbox.put_nowait(pb.AgentMessage(session_report=report))
        elif kind == "shutdown":
            logger.info("shutdown requested reason=%r", message.shutdown.reason)
            await self._end_commands(float(message.shutdown.grace_period_seconds))
            self.stop()

    def _start(self, request: pb.CommandRequest) -> None:
        if request.command_id in self.commands:
            return  # sent again after a reconnect; it already runs
        if not request.argv:
            self._outbox.put_nowait(pb.AgentMessage(result=_rejected(request, "argv is empty")))
            return
        command = RunningCommand(request, self._outbox.put_nowait)
        self.commands[request.command_id] = command
        logger.info("command started command_id=%s program=%r", request.command_id, request.argv[0])
        task = asyncio.create_task(self._run(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, command: RunningCommand) -> None:
        result = await command.run()
        logger.info(
            "command finished command_id=%s exit_code=%d", command.command_id, result.exit_code
        )
        loop = asyncio.get_running_loop()
        loop.call_later(RESULT_RETENTION_SECONDS, self.commands.pop, command.command_id, None)

    async def _end_commands(self, grace_seconds: float) -> None:
        running = [command for command in self.commands.values() if command.result is None]
        await asyncio.gather(*(command.terminate(grace_seconds) for command in running))


def _rejected(request: pb.CommandRequest, reason: str) -> pb.CommandResult:
    return pb.CommandResult(command_id=request.command_id, exit_code=126, error=reason)


def _meminfo() -> dict[str, int]:
    """Return /proc/meminfo's figures in bytes; empty where /proc is not mounted."""
    figures: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    figures[name] = int(parts[0]) * 1024
    except OSError:
        pass
    return figures


async def _main(config: AgentConfig) -> None:
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.stop)
    await agent.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sandbox-agent",
        description="Connect to the agentic-sandbox controller and run the commands it sends. "
        "Reads AGENT_ID, AGENT_SECRET and MANAGEMENT_SERVER from the environment.",
    )
    parser.add_argument("--log-level", default=os.environ.get("AGENT_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = AgentConfig.from_env(dict(os.environ))
    except ValueError as error:
        raise SystemExit(f"sandbox-agent: error: {error}") from None
    # Commands inherit the environment; the secret must not reach them.
    os.environ.pop("AGENT_SECRET", None)
    logger.info(
        "agent starting agent_id=%s server=%s version=%s", config.agent_id, config.server, VERSION
    )
    asyncio.run(_main(config))


if __name__ == "__main__":
    main()
