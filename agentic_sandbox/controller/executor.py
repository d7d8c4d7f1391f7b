"""Carrying out a plan against the runtime, one operation after another, deciding nothing.

Every operation that changes the runtime is recorded as an event: ``container.*`` for Docker
sandboxes, ``vm.*`` for libvirt ones. The executor
remembers the last sandbox state it saw, so a failure half-way still lets status tell the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agentic_sandbox.controller.agent_identity import mint_secret
from agentic_sandbox.controller.desired import HostPolicy, build_sandbox_spec
from agentic_sandbox.controller.plan import Operation, OpKind, Plan
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import EventName
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout
from agentic_sandbox.crds.meta import STOP_GRACE_ANNOTATION
from agentic_sandbox.errors import InvalidRuntimeSpec
from agentic_sandbox.runtimes.base import Runtime, SandboxState

# Resolves a loadout name, seen from an instance's namespace, to its merged result.
LoadoutResolver = Callable[[str, str], Awaitable[ResolvedLoadout]]

# The event recorded for each operation, by runtime.
_EVENTS: dict[str, dict[OpKind, EventName]] = {
    "docker": {
        OpKind.CREATE: EventName.CONTAINER_CREATED,
        OpKind.START: EventName.CONTAINER_STARTED,
        OpKind.STOP: EventName.CONTAINER_STOPPED,
        OpKind.REMOVE: EventName.CONTAINER_REMOVED,
    },
    "libvirt": {
        OpKind.CREATE: EventName.VM_DEFINED,
        OpKind.START: EventName.VM_STARTED,
        OpKind.STOP: EventName.VM_STOPPED,
        OpKind.REMOVE: EventName.VM_UNDEFINED,
    },
}


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
        loadouts: LoadoutResolver | None = None,
    ) -> None:
        self._runtime = runtime
        self._loadouts = loadouts
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
            loadout = await self._resolve_loadout(instance)
            # Every new sandbox gets a new agent secret, so a recreate rotates it.
            spec = build_sandbox_spec(instance, self._policy, loadout, agent_secret=mint_secret())
            created = await self._runtime.create(spec)
            self.last_seen = created
            self._log.info(
                "sandbox created sandbox_id=%s cause=%r", created.id[:12], operation.cause
            )
            await self._event(OpKind.CREATE, instance, created.id, operation.cause)
            return created

        target = operation.sandbox_id or (current.id if current is not None else None)
        if target is None:
            raise AssertionError(f"operation {operation.render()} has no sandbox to act on")
        if kind == OpKind.START:
            await self._runtime.start(target)
            self._log.info("sandbox started sandbox_id=%s cause=%r", target[:12], operation.cause)
            await self._event(OpKind.START, instance, target, operation.cause)
            return current
        if kind == OpKind.STOP:
            timeout = stop_grace_seconds(instance)
            await self._runtime.stop(target, timeout)
            self._log.info("sandbox stopped sandbox_id=%s cause=%r", target[:12], operation.cause)
            await self._event(OpKind.STOP, instance, target, operation.cause)
            return current
        await self._runtime.remove(target)
        self._log.info("sandbox removed sandbox_id=%s cause=%r", target[:12], operation.cause)
        await self._event(OpKind.REMOVE, instance, target, operation.cause)
        if current is not None and current.id == target:
            self.last_seen = None
            return None
        return current

    async def _resolve_loadout(self, instance: Instance) -> ResolvedLoadout | None:
        name = instance.spec.loadout
        if instance.spec.runtime != "libvirt" or name is None:
            return None
        if self._loadouts is None:
            raise InvalidRuntimeSpec(
                f"spec.loadout of instance {instance.key} names {name!r}, but this controller "
                "has no loadout catalog",
                field="spec.loadout",
            )
        return await self._loadouts(name, instance.metadata.namespace)

    async def _event(self, kind: OpKind, instance: Instance, sandbox_id: str, cause: str) -> None:
        name = _EVENTS.get(instance.spec.runtime, _EVENTS["docker"])[kind]
        key = "domainUuid" if instance.spec.runtime == "libvirt" else "containerId"
        await self._recorder.record(
            name,
            instance=instance,
            reason=name.value.split(".", 1)[1].capitalize(),
            message=cause,
            details={key: sandbox_id},
        )
