"""The agent's side of a command: run it, stream its output, report how it ended.

A ``RunningCommand`` lives as long as its process, not as long as the connection that started
it: output goes through the agent's outbox, which outlives any one stream. Every process gets
its own session (process group), so signals and the timeout reach its children too.

This module runs inside sandboxes and imports only the standard library, grpc's generated
messages and nothing else from the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import pty
import signal
import struct
import termios
import time
from collections.abc import Callable

from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# Seconds between SIGTERM and SIGKILL when a command times out or the agent shuts down.
KILL_GRACE_SECONDS = 5.0

Emit = Callable[[pb.AgentMessage], None]


class RunningCommand:
    def __init__(self, request: pb.CommandRequest, emit: Emit) -> None:
        self.request = request
        self.command_id = request.command_id
        self._emit = emit
        self._seq = 0
        self._process: asyncio.subprocess.Process | None = None
        self._pty_master: int | None = None
        self.started_at_ms = int(time.time() * 1000)
        self.result: pb.CommandResult | None = None
        # Set once the process was started or failed to start, so stdin waits for it.
        self._spawned = asyncio.Event()

    @property
    def pid(self) -> int:
        return self._process.pid if self._process is not None else 0

    @property
    def last_seq(self) -> int:
        return self._seq

    def session(self) -> pb.Session:
        return pb.Session(
            command_id=self.command_id,
            argv=list(self.request.argv),
            started_at_ms=self.started_at_ms,
            pid=self.pid,
            pty=self.request.pty,
            last_seq=self._seq,
            finished=self.result is not None,
        )

    async def run(self) -> pb.CommandResult:
        """Run the command to its end; return (and emit) its result."""
        started = time.monotonic()
        timed_out = False
        try:
            readers = await self._spawn()
        except OSError as error:
            code = 127 if isinstance(error, FileNotFoundError) else 126
            return self._finish(
                exit_code=code,
                error=f"{self.request.argv[0]!r} could not be started: {error.strerror or error}",
                started=started,
            )
        finally:
            self._spawned.set()
        assert self._process is not None
        waiter = asyncio.ensure_future(self._process.wait())
        timeout = self.request.timeout_seconds or None
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            timed_out = True
            await self.terminate(KILL_GRACE_SECONDS)
            await waiter
        await asyncio.gather(*readers)
        returncode = self._process.returncode or 0
        number = -returncode if returncode < 0 else 0
        reason = f"timed out after {self.request.timeout_seconds} s" if timed_out else ""
        return self._finish(
            exit_code=128 + number if number else returncode,
            signal_number=number,
            error=reason,
            timed_out=timed_out,
            started=started,
        )

    async def _spawn(self) -> list[asyncio.Task[None]]:
        request = self.request
        env = {**os.environ, **dict(request.env)}
        cwd = request.working_dir or None
        if request.pty:
            return await self._spawn_pty(env, cwd)
        process = await asyncio.create_subprocess_exec(
            *request.argv,
            stdin=asyncio.subprocess.PIPE if request.stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self._process = process
        assert process.stdout is not None and process.stderr is not None
        return [
            asyncio.create_task(self._pump(process.stdout, pb.OUTPUT_STREAM_STDOUT)),
            asyncio.create_task(self._pump(process.stderr, pb.OUTPUT_STREAM_STDERR)),
        ]

    async def _spawn_pty(self, env: dict[str, str], cwd: str | None) -> list[asyncio.Task[None]]:
        request = self.request
        master, replica = pty.openpty()
        rows, columns = request.pty_rows or 24, request.pty_columns or 80
        fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env.setdefault("TERM", "xterm-256color")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *request.argv,
                stdin=replica,
                stdout=replica,
                stderr=replica,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(replica)
        self._pty_master = master
        return [asyncio.create_task(self._pump_pty(master))]

    async def _pump(self, reader: asyncio.StreamReader, stream: pb.OutputStream) -> None:
        while data := await reader.read(READ_SIZE):
            self._send_output(stream, data)

    async def _pump_pty(self, master: int) -> None:
        """Read the terminal until the command and its children close it (EIO on Linux)."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(master, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    data = os.read(master, READ_SIZE)
                except OSError as error:
                    if error.errno == errno.EIO:
                        return
                    raise
                if not data:
                    return
                self._send_output(pb.OUTPUT_STREAM_STDOUT, data)
        finally:
            loop.remove_reader(master)
            os.close(master)
            self._pty_master = None

    def _send_output(self, stream: pb.OutputStream, data: bytes) -> None:
        self._seq += 1
        chunk = pb.OutputChunk(command_id=self.command_id, stream=stream, data=data, seq=self._seq)
        self._emit(pb.AgentMessage(output=chunk))

    def _finish(
        self,
        *,
        exit_code: int,
        started: float,
        signal_number: int = 0,
        error: str = "",
        timed_out: bool = False,
    ) -> pb.CommandResult:
        self.result = pb.CommandResult(
            command_id=self.command_id,
            exit_code=exit_code,
            signal=signal_number,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
            timed_out=timed_out,
            last_seq=self._seq,
        )
        self._emit(pb.AgentMessage(result=self.result))
        return self.result

    async def write_stdin(self, data: bytes, eof: bool) -> None:
        await self._spawned.wait()
        if self._pty_master is not None:
            if data:
                os.write(self._pty_master, data)
            if eof:
                os.write(self._pty_master, b"\x04")  # Ctrl-D: end of input on a terminal
            return
        stdin = self._process.stdin if self._process is not None else None
        if stdin is None:
            return
        try:
            if data:
                stdin.write(data)
                await stdin.drain()
            if eof:
                stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("stdin closed by the command command_id=%s", self.command_id)

    def send_signal(self, number: int) -> None:
        """Signal the command's whole process group; a finished command is left alone."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, number)

    async def terminate(self, grace_seconds: float) -> None:
        """Send SIGTERM, then SIGKILL when the command still runs after ``grace_seconds``."""
        if self._process is None or self._process.returncode is not None:
            return
        self.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._process.wait()), grace_seconds)
        except TimeoutError:
            self.send_signal(signal.SIGKILL)
