"""Running commands in a sandbox through its agent: the interface the entry surfaces share.

The agent server implements ``CommandRunner``; the HTTP API (``sandboxctl exec``) and, later,
mission dispatch call it. Both sides import only this module, so entry surfaces never import
each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

# Signal numbers of Linux, which every sandbox runs.
SIGTERM = 15
SIGKILL = 9


@dataclass(frozen=True)
class CommandSpec:
    """One command to run: ``argv`` without a shell, ``env`` added to the agent's own."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    # Seconds; 0 means no limit.
    timeout_seconds: int = 0
    pty: bool = False
    stdin: bool = False


@dataclass(frozen=True)
class CommandOutput:
    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class CommandExit:
    """How a command ended. ``exit_code`` is 128 + the signal number after a signal."""

    exit_code: int
    signal: int = 0
    error: str = ""
    timed_out: bool = False
    duration_ms: int = 0


CommandEvent = CommandOutput | CommandExit


class CommandSession(Protocol):
    """A running command: its output events end with exactly one CommandExit."""

    command_id: str

    def events(self) -> AsyncIterator[CommandEvent]: ...

    async def write_stdin(self, data: bytes, *, eof: bool = False) -> None: ...

    async def signal(self, number: int) -> None: ...

    async def abandon(self) -> None:
        """Stop following the command and end it with SIGTERM, unless it has already ended."""


class CommandRunner(Protocol):
    async def start(self, key: str, spec: CommandSpec) -> CommandSession:
        """Start ``spec`` in the sandbox of instance ``key``.

        Raises AgentNotConnected when that sandbox's agent has no live connection.
        """
        ...
