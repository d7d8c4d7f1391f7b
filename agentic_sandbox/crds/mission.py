"""Missions: commands dispatched to a sandbox's agent through the API, and their records.

A mission is not a resource kind with spec and status: it is a record of one run, written only
by the controller's dispatcher and kept in the store's SQLite file next to the event log.

States and the transitions the dispatcher makes:

    Dispatched -> Running -> Succeeded   the command exited with code 0
                          -> Failed      non-zero exit, timeout, signal, or it could not start
                          -> Lost        the sandbox went away or the controller restarted
    Dispatched -> Failed                 the agent disconnected before the command was sent
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from agentic_sandbox.crds.meta import Model, utcnow

# Mission and session ids: letters, digits and '.', '_', ':', '-', starting with a letter or
# digit, at most 128 characters. They appear in URLs, so nothing needs escaping.
MISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MISSION_ID_MAX = 128


class MissionState(StrEnum):
    DISPATCHED = "Dispatched"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LOST = "Lost"


FINAL_STATES = frozenset({MissionState.SUCCEEDED, MissionState.FAILED, MissionState.LOST})


class MissionReason(StrEnum):
    """The reason a mission ended. ``Completed`` is the only reason of a Succeeded mission."""

    COMPLETED = "Completed"
    NON_ZERO_EXIT = "NonZeroExit"
    TIMED_OUT = "TimedOut"
    SIGNALED = "Signaled"
    COMMAND_ERROR = "CommandError"
    AGENT_NOT_CONNECTED = "AgentNotConnected"
    SANDBOX_GONE = "SandboxGone"
    NO_RESULT = "NoResult"
    CONTROLLER_RESTARTED = "ControllerRestarted"


class Mission(Model):
    """The record of one mission. ``instance`` is the ``namespace/name`` key of its executor."""

    id: str
    session_id: str
    objective: str
    # The argv the agent ran: ``["/bin/sh", "-c", objective]``.
    command: list[str]
    instance: str
    agent_id: str
    state: MissionState = MissionState.DISPATCHED
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    duration_ms: int | None = None
    timeout_seconds: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Bytes of output the command produced, and whether the stored output stops short of them.
    output_bytes: int = 0
    output_truncated: bool = False
    dispatched_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
