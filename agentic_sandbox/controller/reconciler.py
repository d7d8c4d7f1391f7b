"""The instance reconciler: observe, plan, act, then write status.

Each call re-reads the instance from the store and the sandboxes from the runtime, so a lost or
duplicated trigger never leaves drift behind. The outcome is a small ``Result``: done, requeue
after N seconds, or an exception that the worker turns into a backoff retry.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentic_sandbox.controller.agent_identity import LABEL_AGENT_SECRET_SHA256
from agentic_sandbox.controller.agent_tracker import AgentTracker, ExpectedAgent
from agentic_sandbox.controller.desired import HostPolicy, desired_hashes, sandbox_name
from agentic_sandbox.controller.executor import Executor, LoadoutResolver
from agentic_sandbox.controller.plan import (
    HEALTHY_RESET,
    Observation,
    Plan,
    pick_current,
    plan,
    sandbox_matches,
)
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.controller.stalls import StallTracker
from agentic_sandbox.controller.status import Outcome, build_status
from agentic_sandbox.crds.event import EventName, EventSeverity
from agentic_sandbox.crds.instance import Instance, InstanceStatus, Phase
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER, split_key, utcnow
from agentic_sandbox.crds.spechash import HASH_SCHEMA_VERSION
from agentic_sandbox.errors import (
    Conflict,
    InvalidRuntimeSpec,
    NotFound,
    RuntimeFailure,
    RuntimeUnavailable,
    SandboxError,
)
from agentic_sandbox.runtimes.base import LABEL_CONTROLLER, LABEL_UID, Runtime, SandboxState
from agentic_sandbox.runtimes.router import driver_for, drivers_of
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

STATUS_WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class Result:
    """The worker's next step for the key: nothing, or another reconcile after a delay."""

    requeue_after: float | None = None


class InstanceLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Appends the instance key and the reconcile id to every message."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = self.extra or {}
        return f"{msg} instance={extra['instance']} reconcile_id={extra['reconcile_id']}", kwargs


# Phases whose change event is a warning: the sandbox is not doing what was asked.
_WARNING_PHASES = frozenset({Phase.FAILED, Phase.CRASH_LOOP_BACK_OFF, Phase.UNKNOWN})


class InstanceReconciler:
    def __init__(
        self,
        *,
        store: Store,
        runtime: Runtime,
        recorder: EventRecorder,
        policy: HostPolicy,
        node: str,
        clock: Callable[[], datetime] = utcnow,
        loadouts: LoadoutResolver | None = None,
        agents: AgentTracker | None = None,
    ) -> None:
        self._store = store
        self._agents = agents
        self._loadouts = loadouts
        self._runtime = runtime
        self._recorder = recorder
        self._policy = policy
        self._node = node
        self._clock = clock
        self._stalls = StallTracker()

    async def reconcile(self, key: str) -> Result:
        namespace, name = split_key(key)
        log = InstanceLogger(logger, {"instance": key, "reconcile_id": uuid.uuid4().hex[:8]})
        try:
            found = await self._store.get("Instance", namespace, name)
        except NotFound:
            # Leftover sandboxes of a vanished record are the garbage collector's to judge.
            log.debug("instance not found; nothing to reconcile")
            self._stalls.clear(key)
            if self._agents is not None:
                self._agents.forget(key)
            return Result()
        assert isinstance(found, Instance)
        instance = found

        if instance.metadata.deletion_timestamp is not None:
            return await self._finalize(instance, log)
        if RUNTIME_FINALIZER not in instance.metadata.finalizers and self._runs(instance):
            instance.metadata.finalizers.append(RUNTIME_FINALIZER)
            updated = await self._store.update(instance)
            assert isinstance(updated, Instance)
            instance = updated
        return await self._converge(instance, log)

    def _runs(self, instance: Instance) -> bool:
        """Return whether this controller has the instance's runtime enabled.

        An instance of a runtime this controller does not run gets no finalizer: nothing of it
        can exist here, so deleting it must not wait for this controller.
        """
        try:
            driver_for(self._runtime, instance.spec.runtime)
        except InvalidRuntimeSpec:
            return False
        return True

    async def _observe(self, instance: Instance) -> Observation:
        selector = {
            LABEL_UID: str(instance.metadata.uid),
            LABEL_CONTROLLER: self._policy.controller_id,
        }
        # The instance's own driver must respond. The others are asked too, so that a sandbox
        # left on another runtime after spec.runtime changed is removed, but an outage of
        # another runtime does not make this instance Unknown.
        driver = driver_for(self._runtime, instance.spec.runtime)
        sandboxes = await driver.list_owned(selector)
        ref = instance.status.runtime_ref
        if ref is not None and ref.runtime == instance.spec.runtime:
            # The last sandbox seen ran on this runtime, so the others hold nothing of it; this
            # keeps every reconcile from listing every other runtime's sandboxes.
            return self._observation(instance, sandboxes)
        for other in drivers_of(self._runtime):
            if other is driver:
                continue
            try:
                sandboxes += await other.list_owned(selector)
            except RuntimeFailure as error:
                logger.debug("other runtime not listed runtime=%s error=%s", other.name, error)
        return self._observation(instance, sandboxes)

    def _observation(self, instance: Instance, sandboxes: list[SandboxState]) -> Observation:
        hashes = desired_hashes(instance)
        return Observation(
            instance=instance,
            sandboxes=sandboxes,
            now=self._clock(),
            desired_hash=hashes[str(HASH_SCHEMA_VERSION)],
            hashes_by_schema=hashes,
        )

    async def _converge(self, instance: Instance, log: InstanceLogger) -> Result:
        key = instance.key
        wait = self._stalls.remaining(key, instance.metadata.generation, self._clock())
        if wait is not None:
            log.debug("instance is stalled; waiting before the next attempt")
            return Result(requeue_after=wait)

        executor = Executor(
            runtime=self._runtime,
            recorder=self._recorder,
            policy=self._policy,
            log=log,
            loadouts=self._loadouts,
        )
        try:
            observation = await self._observe(instance)
        except RuntimeUnavailable as error:
            await self._write_status(instance, Outcome(sandbox=None, error=error), log)
            raise
        except InvalidRuntimeSpec as error:
            # The instance names a runtime this controller does not run.
            return await self._handle_error(instance, error, executor, log)
        failure = exec_failure(observation)
        if failure is not None:
            failure_id, failure_error = failure
            if not self._stalls.seen(key, instance.metadata.generation, failure_id):
                executor.last_seen = pick_current(observation.sandboxes)[0]
                return await self._handle_error(instance, failure_error, executor, log, failure_id)

        the_plan = plan(observation)
        if the_plan.operations:
            log.debug("plan:\n%s", the_plan.render())

        try:
            sandbox, restarted = await executor.run(instance, the_plan)
        except SandboxError as error:
            return await self._handle_error(instance, error, executor, log)

        if failure is None:
            # A retry after a command failure is not a success until the command runs.
            self._stalls.clear(key)
        outcome = Outcome(
            sandbox=sandbox,
            restarted=restarted,
            streak_reset=restarted and _ran_healthy(the_plan),
            retry_at=the_plan.retry_at,
            handled_request=the_plan.handles_request,
        )
        await self._write_status(instance, outcome, log)
        if the_plan.retry_at is not None:
            delay = (the_plan.retry_at - self._clock()).total_seconds()
            return Result(requeue_after=max(0.0, delay))
        return Result()

    async def _handle_error(
        self,
        instance: Instance,
        error: SandboxError,
        executor: Executor,
        log: InstanceLogger,
        failure_id: str | None = None,
    ) -> Result:
        outcome = Outcome(sandbox=executor.last_seen, error=error)
        if error.retryable:
            await self._write_status(instance, outcome, log)
            raise error
        generation = instance.metadata.generation
        delay = self._stalls.record(instance.key, generation, self._clock(), failure_id)
        if self._stalls.is_first(instance.key):
            log.warning("instance stalled reason=%s error=%s", error.reason, error)
            await self._recorder.record(
                EventName.INSTANCE_STALLED,
                instance=instance,
                reason=error.reason,
                message=str(error),
                severity=EventSeverity.WARNING,
            )
        retry_at = self._clock() + timedelta(seconds=delay)
        outcome = Outcome(sandbox=executor.last_seen, error=error, retry_at=retry_at)
        await self._write_status(instance, outcome, log)
        return Result(requeue_after=delay)

    async def _finalize(self, instance: Instance, log: InstanceLogger) -> Result:
        """Remove the instance's sandboxes, then release the finalizer so the record goes."""
        if RUNTIME_FINALIZER not in instance.metadata.finalizers:
            return Result()
        executor = Executor(
            runtime=self._runtime,
            recorder=self._recorder,
            policy=self._policy,
            log=log,
            loadouts=self._loadouts,
        )
        try:
            observation = await self._observe(instance)
            await executor.run(instance, plan(observation))
        except SandboxError as error:
            # The record stays until its sandboxes are gone; status shows what blocks it, and
            # `sandboxctl delete --force` releases the finalizer when the cause cannot be fixed.
            log.warning("deletion blocked reason=%s error=%s", error.reason, error)
            blocked = Outcome(sandbox=executor.last_seen, error=error)
            await self._write_status(instance, blocked, log)
            raise

        if self._agents is not None:
            self._agents.forget(instance.key)
        instance.metadata.finalizers.remove(RUNTIME_FINALIZER)
        try:
            await self._store.update(instance)
        except NotFound:
            return Result()
        self._stalls.clear(instance.key)
        log.info("instance deleted")
        await self._recorder.record(
            EventName.INSTANCE_DELETED,
            instance=instance,
            reason="Deleted",
            message=f"instance {instance.key} and its sandboxes were removed",
        )
        return Result()

    async def _write_status(
        self, instance: Instance, outcome: Outcome, log: InstanceLogger
    ) -> None:
        """Write the status computed from ``outcome``, retrying on resourceVersion conflicts."""
        outcome = self._with_agent(instance, outcome)
        current = instance
        for _ in range(STATUS_WRITE_ATTEMPTS):
            status = build_status(current, outcome, node=self._node, now=self._clock())
            if _same_status(current.status, status):
                return
            previous_phase = current.status.phase
            current.status = status
            try:
                await self._store.update_status(current)
            except Conflict:
                fresh = await self._store.get("Instance", *split_key(instance.key))
                assert isinstance(fresh, Instance)
                if fresh.metadata.generation != instance.metadata.generation:
                    return  # the spec changed; the watch has already queued a new reconcile
                current = fresh
                continue
            except NotFound:
                return
            if status.phase != previous_phase:
                log.info("phase changed from=%s to=%s", previous_phase, status.phase)
                await self._record_phase(current, previous_phase, status.phase)
            return
        log.warning("status not written after %d conflicts", STATUS_WRITE_ATTEMPTS)

    async def _record_phase(self, instance: Instance, previous: Phase, phase: Phase) -> None:
        """Record a phase change, so that watchers of the event stream see every one."""
        if phase == Phase.RUNNING:
            await self._recorder.record(
                EventName.INSTANCE_RUNNING,
                instance=instance,
                reason="Running",
                message=f"instance {instance.key} is running",
            )
            return
        severity = EventSeverity.WARNING if phase in _WARNING_PHASES else EventSeverity.NORMAL
        await self._recorder.record(
            EventName.INSTANCE_PHASE_CHANGED,
            instance=instance,
            reason=phase.value,
            message=f"instance {instance.key} is {phase.value}, was {previous.value}",
            severity=severity,
        )

    def _with_agent(self, instance: Instance, outcome: Outcome) -> Outcome:
        """Publish the agent expected in the observed sandbox and add what is known of it.

        While the runtime is unavailable the expectation stays as it was: the sandbox may well
        still run, and its agent may still be connected.
        """
        if self._agents is None:
            return outcome
        sandbox = outcome.sandbox
        digest = sandbox.labels.get(LABEL_AGENT_SECRET_SHA256) if sandbox is not None else None
        if sandbox is not None and digest:
            expected = ExpectedAgent(
                key=instance.key,
                uid=str(instance.metadata.uid),
                agent_id=sandbox_name(instance),
                sandbox_id=sandbox.id,
                secret_digest=digest,
            )
            self._agents.expect(expected)
        elif not isinstance(outcome.error, RuntimeUnavailable):
            self._agents.forget(instance.key)
        return dataclasses.replace(outcome, agent=self._agents.observe(instance.key))


def exec_failure(observation: Observation) -> tuple[str, InvalidRuntimeSpec] | None:
    """Return the failure id and error when the sandbox's command could not be executed.

    docker-init exits 127 (not found) or 126 (not executable) and the driver reports its reason
    in ``error``. Retrying at once cannot help, so this is a terminal error until the spec changes.
    """
    current = pick_current(observation.sandboxes)[0]
    if current is None or current.running or not current.error:
        return None
    if current.exit_code not in (126, 127):
        return None
    if not sandbox_matches(current, observation.hashes_by_schema):
        return None  # the spec changed since; the plan recreates the sandbox
    command = observation.instance.spec.command
    message = (
        f"spec.command of instance {observation.instance.key} cannot run: {current.error}; "
        f"fix the command (now {command!r}) or the image"
    )
    failure_id = f"{current.id}:{current.finished_at}"
    return failure_id, InvalidRuntimeSpec(message, field="spec.command", value=command)


def _ran_healthy(the_plan: Plan) -> bool:
    sandbox = the_plan.keep
    if sandbox is None or sandbox.started_at is None or sandbox.finished_at is None:
        return False
    return sandbox.finished_at - sandbox.started_at >= HEALTHY_RESET


def _same_status(old: InstanceStatus, new: InstanceStatus) -> bool:
    return old.model_dump(mode="json") == new.model_dump(mode="json")
