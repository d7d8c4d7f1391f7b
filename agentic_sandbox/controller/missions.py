"""Mission dispatch: run a command line in a chosen sandbox through its agent, and record it.

``MissionDispatcher.dispatch`` picks an executor (see ``mission_select``), stores the mission
as Dispatched, records ``mission.dispatched``, sends the command to the agent and marks the
mission Running. A background task per mission then stores its output (up to the mission log's
cap) and its end: ``mission.completed`` with the exit code and duration when the command exited
by itself, ``mission.failed`` with the reason otherwise (see ``_ending``).

The objective is a command line and runs as ``/bin/sh -c OBJECTIVE``, with ``MISSION_ID`` and
``SESSION_ID`` in its environment, because an operator writes a mission as they would type it
into a shell (pipes, ``&&``, quoting).

Honest final states:

- ``recover`` runs once at start-up, before the API serves. Missions a previous controller left
  Dispatched or Running get Lost (reason ControllerRestarted) and a ``mission.failed`` event,
  because their output and result went to that process.
- While a mission runs, its task checks every ``liveness_interval`` seconds of silence that the
  executor's sandbox is still the one it was sent to. When the sandbox is gone or was replaced,
  the mission is Lost (SandboxGone). A mission with a timeout that has no result
  ``RESULT_GRACE_SECONDS`` after its timeout is Lost (NoResult).

NOTE: a sandbox restarted in place (same container) keeps its sandbox id, so a mission whose
command died with it and that has no timeout stays Running until the controller restarts.

On shutdown the tasks are cancelled without signalling the commands, which keep running in
their sandboxes; the next start marks those missions Lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentic_sandbox.controller.agent_commands import (
    CommandExit,
    CommandRunner,
    CommandSession,
    CommandSpec,
)
from agentic_sandbox.controller.agent_tracker import AgentTracker
from agentic_sandbox.controller.mission_select import (
    Executor,
    ExecutorFilter,
    choose_executor,
    ready_executors,
)
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import EventName, EventSeverity
from agentic_sandbox.crds.meta import utcnow
from agentic_sandbox.crds.mission import Mission, MissionReason, MissionState
from agentic_sandbox.errors import AgentNotConnected, AlreadyExists, NotFound, StoreError
from agentic_sandbox.store.base import Store
from agentic_sandbox.store.missions import SqliteMissionLog

logger = logging.getLogger(__name__)

SHELL = "/bin/sh"
DEFAULT_LIVENESS_INTERVAL = 30.0
# Seconds past a mission's timeout after which a missing result makes the mission Lost. The
# agent sends SIGTERM at the timeout and SIGKILL 10 s later, then reports the result.
RESULT_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class MissionRequest:
    """A validated dispatch request; executors are searched for in ``namespace``."""

    mission_id: str
    session_id: str
    objective: str
    namespace: str = "default"
    executor_filter: ExecutorFilter = field(default_factory=ExecutorFilter)
    metadata: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: int = 0


@dataclass(frozen=True)
class _Ending:
    state: MissionState
    reason: MissionReason
    message: str
    event: EventName


class MissionDispatcher:
    def __init__(
        self,
        *,
        store: Store,
        missions: SqliteMissionLog,
        commands: CommandRunner,
        agents: AgentTracker,
        recorder: EventRecorder,
        rng: random.Random | None = None,
        liveness_interval: float = DEFAULT_LIVENESS_INTERVAL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self.missions = missions
        self._commands = commands
        self._agents = agents
        self._recorder = recorder
        self._rng = rng or random.Random()
        self._liveness_interval = liveness_interval
        self._clock = clock
        # Missions in flight per instance key, counted from selection until the mission ends.
        self._busy: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    def busy(self, key: str) -> int:
        return self._busy[key]

    async def recover(self) -> list[Mission]:
        """Mark missions a previous controller left unfinished as Lost; return them."""
        lost = await self.missions.end_unfinished(
            state=MissionState.LOST,
            reason=MissionReason.CONTROLLER_RESTARTED,
            message="the controller restarted while the mission ran; its output after that "
            "moment and its result are unknown",
            finished_at=self._clock(),
        )
        for mission in lost:
            logger.warning(
                "mission lost on restart mission_id=%s instance=%s", mission.id, mission.instance
            )
            await self._record_end(mission, EventName.MISSION_FAILED)
        return lost

    async def dispatch(self, request: MissionRequest) -> Mission:
        """Start ``request`` on an executor and return its record (Running, or Failed).

        Raises AlreadyExists for a mission id in use, NoReadyExecutor or NoMatchingExecutor
        when no executor can take it, StoreError when the store fails.
        """
        await self._check_new(request.mission_id)
        listed = await self._store.list("Instance", namespace=request.namespace)
        executor = choose_executor(
            ready_executors(listed.items, self._agents),
            request.executor_filter,
            busy=self._busy,
            rng=self._rng,
            namespace=request.namespace,
        )
        # Counted from now, so that concurrent dispatches see this one while it is stored.
        self._busy[executor.key] += 1
        try:
            mission = await self._start(request, executor)
        except BaseException:
            self._release(executor.key)
            raise
        if mission.finished:
            self._release(executor.key)
        return mission

    async def stop(self) -> None:
        """Cancel the mission tasks; the commands keep running in their sandboxes."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def join(self) -> None:
        """Wait until every mission started so far has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # Starting.

    async def _check_new(self, mission_id: str) -> None:
        try:
            await self.missions.get(mission_id)
        except NotFound:
            return
        raise AlreadyExists(f"mission {mission_id!r} already exists; choose another mission_id")

    async def _start(self, request: MissionRequest, executor: Executor) -> Mission:
        mission = await self.missions.create(
            Mission(
                id=request.mission_id,
                session_id=request.session_id,
                objective=request.objective,
                command=[SHELL, "-c", request.objective],
                instance=executor.key,
                agent_id=executor.agent_id,
                timeout_seconds=request.timeout_seconds,
                metadata=request.metadata,
                dispatched_at=self._clock(),
            )
        )
        logger.info(
            "mission dispatched mission_id=%s session_id=%s instance=%s agent_id=%s",
            mission.id,
            mission.session_id,
            executor.key,
            executor.agent_id,
        )
        await self._record(
            mission, EventName.MISSION_DISPATCHED, reason="Dispatched", uid=executor.uid
        )
        spec = CommandSpec(
            argv=mission.command,
            env={"MISSION_ID": mission.id, "SESSION_ID": mission.session_id},
            timeout_seconds=request.timeout_seconds,
        )
        try:
            session = await self._commands.start(executor.key, spec)
        except AgentNotConnected as error:
            failed = mission.model_copy(
                update={
                    "state": MissionState.FAILED,
                    "reason": MissionReason.AGENT_NOT_CONNECTED,
                    "message": str(error),
                    "finished_at": self._clock(),
                }
            )
            return await self._finish(failed, EventName.MISSION_FAILED)
        running = mission.model_copy(
            update={"state": MissionState.RUNNING, "started_at": self._clock()}
        )
        running = await self.missions.update(running)
        task = asyncio.create_task(
            self._run(running, session, executor), name=f"mission-{mission.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return running

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("mission task failed task=%s", task.get_name(), exc_info=task.exception())

    def _release(self, key: str) -> None:
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]

    # Running.

    async def _run(self, mission: Mission, session: CommandSession, executor: Executor) -> None:
        totals = _OutputTotals()
        pump = asyncio.create_task(self._pump(mission.id, session, totals))
        try:
            ended = await self._wait(pump, mission, executor)
            exit_ = None
            if ended is None:
                exit_ = pump.result()
                ended = _ending(exit_)
            else:
                pump.cancel()
                await session.abandon()
            final = mission.model_copy(
                update={
                    "state": ended.state,
                    "reason": ended.reason,
                    "message": ended.message,
                    "exit_code": exit_.exit_code if exit_ else None,
                    "signal": exit_.signal if exit_ and exit_.signal else None,
                    "duration_ms": exit_.duration_ms if exit_ else None,
                    "output_bytes": totals.produced,
                    "output_truncated": totals.truncated,
                    "finished_at": self._clock(),
                }
            )
            await self._finish(final, ended.event)
        finally:
            pump.cancel()
            self._release(executor.key)

    async def _pump(
        self, mission_id: str, session: CommandSession, totals: _OutputTotals
    ) -> CommandExit:
        """Store the session's output; return its exit."""
        async for event in session.events():
            if isinstance(event, CommandExit):
                return event
            totals.produced += len(event.data)
            if totals.truncated:
                continue
            try:
                stored = await self.missions.append_output(mission_id, event.stream, event.data)
            except StoreError as error:
                # The mission goes on. Its stored output ends here, as output_truncated records.
                logger.warning(
                    "mission output not stored mission_id=%s error=%s", mission_id, error
                )
                totals.truncated = True
                continue
            totals.truncated = stored.truncated
        raise AgentNotConnected("the command's event stream ended without an exit")

    async def _wait(
        self, pump: asyncio.Task[CommandExit], mission: Mission, executor: Executor
    ) -> _Ending | None:
        """Wait for ``pump``; return the ending of a mission found lost meanwhile, else None."""
        loop = asyncio.get_running_loop()
        deadline = None
        if mission.timeout_seconds:
            deadline = loop.time() + mission.timeout_seconds + RESULT_GRACE_SECONDS
        while True:
            done, _ = await asyncio.wait({pump}, timeout=self._liveness_interval)
            if done:
                error = pump.exception()
                if error is None:
                    return None
                return _lost(MissionReason.NO_RESULT, f"the mission's output stopped: {error}")
            expected = self._agents.expected(executor.key)
            if expected is None or expected.sandbox_id != executor.sandbox_id:
                message = f"the sandbox of instance {executor.key} that ran the mission is gone"
                return _lost(MissionReason.SANDBOX_GONE, message)
            if deadline is not None and loop.time() > deadline:
                message = (
                    f"no result {RESULT_GRACE_SECONDS:.0f} s after the mission's timeout of "
                    f"{mission.timeout_seconds} s"
                )
                return _lost(MissionReason.NO_RESULT, message)

    # Recording.

    async def _finish(self, mission: Mission, event: EventName) -> Mission:
        try:
            mission = await self.missions.update(mission)
        except StoreError as error:
            logger.error("mission end not stored mission_id=%s error=%s", mission.id, error)
        logger.info(
            "mission ended mission_id=%s instance=%s state=%s reason=%s exit_code=%s",
            mission.id,
            mission.instance,
            mission.state,
            mission.reason,
            mission.exit_code,
        )
        await self._record_end(mission, event)
        return mission

    async def _record_end(self, mission: Mission, event: EventName) -> None:
        await self._record(mission, event, reason=mission.reason, uid=None)

    async def _record(
        self, mission: Mission, name: EventName, *, reason: str, uid: str | None
    ) -> None:
        details = {
            "missionId": mission.id,
            "sessionId": mission.session_id,
            "agentId": mission.agent_id,
            "state": str(mission.state),
        }
        if mission.exit_code is not None:
            details["exitCode"] = str(mission.exit_code)
        if mission.duration_ms is not None:
            details["durationMs"] = str(mission.duration_ms)
        failed = mission.state in (MissionState.FAILED, MissionState.LOST)
        await self._recorder.record(
            name,
            instance_key=mission.instance,
            uid=uid,
            reason=reason,
            message=_event_message(mission, name),
            severity=EventSeverity.WARNING if failed else EventSeverity.NORMAL,
            details=details,
        )


@dataclass
class _OutputTotals:
    produced: int = 0
    truncated: bool = False


def _lost(reason: MissionReason, message: str) -> _Ending:
    return _Ending(MissionState.LOST, reason, message, EventName.MISSION_FAILED)


def _ending(exit_: CommandExit) -> _Ending:
    """Classify a command's exit: it completed (any exit code) or the mission failed."""
    if exit_.timed_out:
        return _Ending(
            MissionState.FAILED, MissionReason.TIMED_OUT, exit_.error, EventName.MISSION_FAILED
        )
    if exit_.signal:
        message = f"the command was ended by signal {exit_.signal}"
        return _Ending(
            MissionState.FAILED, MissionReason.SIGNALED, message, EventName.MISSION_FAILED
        )
    if exit_.error:
        return _Ending(
            MissionState.FAILED, MissionReason.COMMAND_ERROR, exit_.error, EventName.MISSION_FAILED
        )
    if exit_.exit_code == 0:
        return _Ending(
            MissionState.SUCCEEDED, MissionReason.COMPLETED, "", EventName.MISSION_COMPLETED
        )
    message = f"the command exited with code {exit_.exit_code}"
    return _Ending(
        MissionState.FAILED, MissionReason.NON_ZERO_EXIT, message, EventName.MISSION_COMPLETED
    )


def _event_message(mission: Mission, name: EventName) -> str:
    if name == EventName.MISSION_DISPATCHED:
        return f"mission {mission.id} dispatched to agent {mission.agent_id}"
    if name == EventName.MISSION_COMPLETED:
        return (
            f"mission {mission.id} completed with exit code {mission.exit_code} "
            f"in {mission.duration_ms} ms"
        )
    return f"mission {mission.id} {str(mission.state).lower()}: {mission.message}"
