"""Computing an instance's status from what one reconcile observed and did.

Status is derived, never accumulated from events: phase and conditions come from the sandbox the
runtime reported at the end of the reconcile, the run strategy and any error. Only
``restartCount``, ``consecutiveRestarts`` and ``lastExit`` carry over from the previous status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentic_sandbox.controller.agent_identity import carries_agent
from agentic_sandbox.controller.agent_tracker import AgentObservation
from agentic_sandbox.controller.conditions import set_condition, sort_conditions
from agentic_sandbox.controller.plan import exit_failed
from agentic_sandbox.crds.instance import (
    AgentInfo,
    ConditionType,
    Instance,
    InstanceStatus,
    LastExit,
    Phase,
    RunStrategy,
    RuntimeRef,
)
from agentic_sandbox.crds.meta import Condition, ConditionStatus
from agentic_sandbox.errors import RuntimeUnavailable, SandboxError
from agentic_sandbox.runtimes.base import LABEL_SPEC_HASH, SandboxState, SandboxStatus

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
# States whose exit facts are final; a container being removed may not report its exit code yet.
EXITED_STATES = (SandboxStatus.EXITED, SandboxStatus.DEAD)


@dataclass(frozen=True)
class Outcome:
    """The result of one reconcile: the sandbox seen last, any error, restarts and retries."""

    sandbox: SandboxState | None
    error: SandboxError | None = None
    restarted: bool = False
    # The restart began a new crash streak because the sandbox had run long enough.
    streak_reset: bool = False
    retry_at: datetime | None = None
    # The requested-action annotation value carried out by this reconcile.
    handled_request: str | None = None
    # The agent expected in the sandbox and its connection, when one is expected.
    agent: AgentObservation | None = None


def _last_exit(sandbox: SandboxState) -> LastExit:
    if sandbox.oom_killed:
        reason = "OOMKilled"
    elif sandbox.exit_code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    signal = None
    if sandbox.exit_code is not None and sandbox.exit_code > 128:
        signal = sandbox.exit_code - 128
    return LastExit(
        code=sandbox.exit_code,
        signal=signal,
        reason=reason,
        oom_killed=sandbox.oom_killed,
        finished_at=sandbox.finished_at,
    )


def _exited_phase(instance: Instance, sandbox: SandboxState, outcome: Outcome) -> Phase:
    strategy = instance.spec.run_strategy
    if strategy in (RunStrategy.HALTED, RunStrategy.MANUAL):
        return Phase.STOPPED
    failed = exit_failed(sandbox)
    if strategy == RunStrategy.ONCE or (strategy == RunStrategy.RERUN_ON_FAILURE and not failed):
        return Phase.FAILED if failed else Phase.SUCCEEDED
    if outcome.retry_at is not None and instance.status.consecutive_restarts > 0:
        return Phase.CRASH_LOOP_BACK_OFF
    return Phase.STARTING


def phase_of(instance: Instance, outcome: Outcome) -> Phase:
    sandbox = outcome.sandbox
    if instance.metadata.deletion_timestamp is not None:
        return Phase.TERMINATING
    if isinstance(outcome.error, RuntimeUnavailable):
        return Phase.UNKNOWN
    if sandbox is None:
        if instance.spec.run_strategy == RunStrategy.HALTED:
            return Phase.STOPPED
        previous = instance.status.phase
        if previous in (Phase.SUCCEEDED, Phase.FAILED) and outcome.error is None:
            return previous
        return Phase.PENDING
    if sandbox.running:
        return Phase.RUNNING
    if sandbox.status == SandboxStatus.CREATED:
        if instance.spec.run_strategy in (RunStrategy.MANUAL, RunStrategy.HALTED):
            return Phase.STOPPED
        return Phase.STARTING
    if sandbox.status == SandboxStatus.PAUSED:
        return Phase.STOPPED
    return _exited_phase(instance, sandbox, outcome)


def build_status(
    instance: Instance, outcome: Outcome, *, node: str, now: datetime
) -> InstanceStatus:
    previous = instance.status
    sandbox = outcome.sandbox
    phase = phase_of(instance, outcome)

    status = InstanceStatus(
        phase=phase,
        conditions=list(previous.conditions),
        observed_generation=instance.metadata.generation,
        node=node,
        restart_count=previous.restart_count + (1 if outcome.restarted else 0),
        consecutive_restarts=previous.consecutive_restarts,
        last_exit=previous.last_exit,
        agent=previous.agent,
        spec_hash=previous.spec_hash,
        next_retry_at=outcome.retry_at,
        handled_request=outcome.handled_request or previous.handled_request,
    )
    if outcome.restarted:
        base = 0 if outcome.streak_reset else previous.consecutive_restarts
        status.consecutive_restarts = base + 1

    # Runtime facts come only from the sandbox the runtime reported.
    if sandbox is not None:
        status.runtime_ref = RuntimeRef(
            runtime=instance.spec.runtime,
            id=sandbox.id,
            name=sandbox.name,
            details=dict(sandbox.details),
        )
        status.spec_hash = sandbox.labels.get(LABEL_SPEC_HASH)
        if sandbox.running:
            status.started_at = sandbox.started_at
            status.ip = sandbox.ip
        elif sandbox.finished_at is not None and sandbox.status in EXITED_STATES:
            status.last_exit = _last_exit(sandbox)
    elif isinstance(outcome.error, RuntimeUnavailable):
        status.runtime_ref = previous.runtime_ref
        status.started_at = previous.started_at
        status.ip = previous.ip

    if outcome.agent is not None:
        status.agent = AgentInfo(
            id=outcome.agent.agent_id,
            connected_at=outcome.agent.connected_at,
            last_heartbeat_at=outcome.agent.last_heartbeat_at,
        )
    elif not isinstance(outcome.error, RuntimeUnavailable):
        status.agent = None

    if outcome.error is not None:
        status.message = str(outcome.error)
    status.conditions = _conditions(instance, outcome, phase, status, now)
    return status


def _conditions(
    instance: Instance, outcome: Outcome, phase: Phase, status: InstanceStatus, now: datetime
) -> list[Condition]:
    generation = instance.metadata.generation
    conditions = status.conditions
    error = outcome.error
    sandbox = outcome.sandbox

    def put(type_: ConditionType, value: str, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            type_=type_,
            status=value,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )

    # RuntimeReady: the runtime object exists and runs.
    if isinstance(error, RuntimeUnavailable):
        put(ConditionType.RUNTIME_READY, UNKNOWN, error.reason, str(error))
    elif sandbox is not None and sandbox.running:
        running = f"{instance.spec.runtime} sandbox is running"
        put(ConditionType.RUNTIME_READY, TRUE, "Running", running)
    elif sandbox is not None:
        put(ConditionType.RUNTIME_READY, FALSE, phase.value, _exit_text(sandbox))
    else:
        put(ConditionType.RUNTIME_READY, FALSE, "NotCreated", "no sandbox exists")

    # AgentConnected, then Ready: what an operator waits for. For a sandbox whose image runs
    # the agent, Ready also needs the agent registered with a fresh heartbeat.
    runtime_ready = next(c for c in conditions if c.type == ConditionType.RUNTIME_READY)
    agent_status, agent_reason, agent_message = _agent_condition(sandbox, outcome.agent)
    put(ConditionType.AGENT_CONNECTED, agent_status, agent_reason, agent_message)
    if runtime_ready.status != TRUE or agent_status != FALSE:
        put(ConditionType.READY, runtime_ready.status, runtime_ready.reason, runtime_ready.message)
    else:
        put(ConditionType.READY, FALSE, f"Agent{agent_reason}", agent_message)

    # Stalled: a terminal error that retrying cannot fix until the spec or the host changes.
    if error is not None and not error.retryable:
        put(ConditionType.STALLED, TRUE, error.reason, str(error))
    else:
        put(ConditionType.STALLED, FALSE, "NoError", "")

    # Reconciling: more work is pending (a retry, a backoff, or a transient error).
    if error is not None and error.retryable:
        put(ConditionType.RECONCILING, TRUE, error.reason, str(error))
    elif outcome.retry_at is not None:
        put(ConditionType.RECONCILING, TRUE, "BackOff", f"next attempt at {outcome.retry_at}")
    elif phase in (Phase.PENDING, Phase.STARTING, Phase.TERMINATING) and error is None:
        put(ConditionType.RECONCILING, TRUE, phase.value, f"instance is {phase.value.lower()}")
    else:
        put(ConditionType.RECONCILING, FALSE, "Converged", "")
    return sort_conditions(conditions)


def _agent_condition(
    sandbox: SandboxState | None, agent: AgentObservation | None
) -> tuple[str, str, str]:
    """Return the AgentConnected status, reason and message.

    Unknown means no agent is expected: there is no sandbox, or its image does not carry the
    agent (no ``dev.agentic.agent=true`` label), and then Ready follows RuntimeReady alone.
    """
    if sandbox is None:
        return UNKNOWN, "NoSandbox", "no sandbox exists"
    if not carries_agent(sandbox.labels):
        return UNKNOWN, "NoAgentInImage", f"image {sandbox.image} does not carry the agent"
    if agent is None:
        return (
            FALSE,
            "NoIdentity",
            "the sandbox was created without an agent secret; recreate it to connect its agent",
        )
    if agent.connected and agent.fresh:
        return TRUE, agent.reason, agent.message
    return FALSE, agent.reason, agent.message


def _exit_text(sandbox: SandboxState) -> str:
    if sandbox.status == SandboxStatus.CREATED:
        return "sandbox is created but not started"
    if sandbox.status == SandboxStatus.PAUSED:
        return (
            "sandbox was paused outside the controller; resume it with docker unpause or "
            "virsh resume"
        )
    if sandbox.oom_killed:
        return "sandbox was killed for running out of memory"
    text = f"sandbox exited with code {sandbox.exit_code}"
    if sandbox.error:
        text += f": {sandbox.error}"
    return text
