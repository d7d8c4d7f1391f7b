"""Carrying out a plan against the runtime, one operation after another, deciding nothing.

Every operation that changes the runtime is recorded as a ``container.*`` event. The executor
remembers the last sandbox state it saw, so a failure half-way still lets status tell the truth.
"""

from __future__ import annotations

import logging
from typing import Any

from agentic_sandbox.controller.desired import HostPolicy, build_sandbox_spec
from agentic_sandbox.controller.plan import Operation, OpKind, Plan
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import EventName
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import STOP_GRACE_ANNOTATION
from agentic_sandbox.runtimes.base import Runtime, SandboxState


def stop_grace_seconds(instance: Instance) -> int:
    """Return the grace period of a stop: a stop verb's override, else the spec's."""
    override = instance.metadata.annotations.get(STOP_GRACE_ANNOTATION, "")
    if override.isdigit():
        return int(override)
    return instance.spec.termination_grace_period_seconds


class Executor:
    def __init__(
        self,
        *,
        runtime: Runtime,
        recorder: EventRecorder,
        policy: HostPolicy,
        log: logging.LoggerAdapter[Any],
    ) -> None:
        self._runtime = runtime
        self._recorder = recorder
        self._policy = policy
        self._log = log
        self.last_seen: SandboxState | None = None

    async def run(self, instance: Instance, plan: Plan) -> tuple[SandboxState | None, bool]:
        """Apply every operation; return the final sandbox state and whether it was restarted."""
        self.last_seen = plan.keep
        current = plan.keep
        restarted = False
        for operation in plan.operations:
            current = await self._apply(instance, operation, current)
            restarted = restarted or (operation.kind == OpKind.START and operation.restart)
        if plan.operations and current is not None:
            # Re-inspect once so status reports what the runtime did, not what was asked.
            current = await self._runtime.inspect(current.id)
            self.last_seen = current
        return current, restarted

    async def _apply(
        self, instance: Instance, operation: Operation, current: SandboxState | None
    ) -> SandboxState | None:
        kind = operation.kind
        if kind == OpKind.CREATE:
            spec = build_sandbox_spec(instance, self._policy)
            created = await self._runtime.create(spec)
            self.last_seen = created
            self._log.info(
                "container created container_id=%s cause=%r", created.id[:12], operation.cause
            )
            await self._event(EventName.CONTAINER_CREATED, instance, created.id, operation.cause)
            return created

        target = operation.sandbox_id or (current.id if current is not None else None)
        if target is None:
            raise AssertionError(f"operation {operation.render()} has no sandbox to act on")
        if kind == OpKind.START:
            await self._runtime.start(target)
            self._log.info(
                "container started container_id=%s cause=%r", target[:12], operation.cause
            )
            await self._event(EventName.CONTAINER_STARTED, instance, target, operation.cause)
            return current
        if kind == OpKind.STOP:
            timeout = stop_grace_seconds(instance)
            await self._runtime.stop(target, timeout)
            self._log.info(
                "container stopped container_id=%s cause=%r", target[:12], operation.cause
            )
            await self._event(EventName.CONTAINER_STOPPED, instance, target, operation.cause)
            return current
        await self._runtime.remove(target)
        self._log.info("container removed container_id=%s cause=%r", target[:12], operation.cause)
        await self._event(EventName.CONTAINER_REMOVED, instance, target, operation.cause)
        if current is not None and current.id == target:
            self.last_seen = None
            return None
        return current

    async def _event(
        self, name: EventName, instance: Instance, sandbox_id: str, cause: str
    ) -> None:
        await self._recorder.record(
            name,
            instance=instance,
            reason=name.value.split(".", 1)[1].capitalize(),
            message=cause,
            details={"containerId": sandbox_id},
        )
