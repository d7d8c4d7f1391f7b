"""Lifecycle verbs: start, stop and restart change desired state; the reconciler acts on it.

The verbs follow KubeVirt's meaning. For the run strategies that keep a sandbox running
(Always, RerunOnFailure, Once), stop sets ``runStrategy: Halted`` and remembers the old strategy
in an annotation, and start restores it. Stop never deletes: the container and its data stay.
Under Manual, and for a start or restart that no strategy would do by itself, the verb is
recorded as a one-time request in the ``requested-action`` annotation, which the reconciler
carries out once and acknowledges in ``status.handledRequest``.

Entry surfaces call these functions; nothing here touches the runtime.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import EventName
from agentic_sandbox.crds.instance import Instance, RunStrategy
from agentic_sandbox.crds.meta import (
    PREVIOUS_RUN_STRATEGY_ANNOTATION,
    REQUESTED_ACTION_ANNOTATION,
    STOP_GRACE_ANNOTATION,
)
from agentic_sandbox.errors import Conflict, InvalidResource
from agentic_sandbox.store.base import Store

KIND = "Instance"
UPDATE_ATTEMPTS = 5
# Strategies under which the controller keeps the sandbox running by itself.
RUNNING_STRATEGIES = (RunStrategy.ALWAYS, RunStrategy.RERUN_ON_FAILURE, RunStrategy.ONCE)


class Verb(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"


def _request_value(verb: Verb) -> str:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"{verb}@{stamp}"


def _apply_stop(instance: Instance, grace_seconds: int | None) -> None:
    annotations = instance.metadata.annotations
    strategy = instance.spec.run_strategy
    if strategy in RUNNING_STRATEGIES:
        annotations[PREVIOUS_RUN_STRATEGY_ANNOTATION] = strategy.value
        instance.spec.run_strategy = RunStrategy.HALTED
    elif strategy == RunStrategy.MANUAL:
        annotations[REQUESTED_ACTION_ANNOTATION] = _request_value(Verb.STOP)
    if grace_seconds is not None:
        annotations[STOP_GRACE_ANNOTATION] = str(grace_seconds)


def _apply_start(instance: Instance) -> None:
    annotations = instance.metadata.annotations
    annotations.pop(STOP_GRACE_ANNOTATION, None)
    if instance.spec.run_strategy == RunStrategy.HALTED:
        previous = annotations.pop(PREVIOUS_RUN_STRATEGY_ANNOTATION, RunStrategy.ALWAYS.value)
        instance.spec.run_strategy = RunStrategy(previous)
    else:
        annotations[REQUESTED_ACTION_ANNOTATION] = _request_value(Verb.START)


def _apply_restart(instance: Instance, grace_seconds: int | None) -> None:
    if instance.spec.run_strategy == RunStrategy.HALTED:
        raise InvalidResource(
            f"instance {instance.key} is stopped (runStrategy Halted); use start instead of restart"
        )
    annotations = instance.metadata.annotations
    annotations[REQUESTED_ACTION_ANNOTATION] = _request_value(Verb.RESTART)
    if grace_seconds is not None:
        annotations[STOP_GRACE_ANNOTATION] = str(grace_seconds)
    else:
        annotations.pop(STOP_GRACE_ANNOTATION, None)


async def request_verb(
    store: Store,
    recorder: EventRecorder,
    *,
    namespace: str,
    name: str,
    verb: Verb,
    grace_seconds: int | None = None,
    requested_by: str,
) -> Instance:
    """Record ``verb`` in the instance's desired state; return the updated instance.

    Raises NotFound, InvalidResource (restart of a stopped instance, or a verb on an instance
    being deleted) and Conflict when the object kept changing under every attempt.
    """
    for _ in range(UPDATE_ATTEMPTS):
        found = await store.get(KIND, namespace, name)
        assert isinstance(found, Instance)
        instance = found
        if instance.metadata.deletion_timestamp is not None:
            raise InvalidResource(f"instance {instance.key} is being deleted; {verb} is rejected")
        if verb == Verb.STOP:
            _apply_stop(instance, grace_seconds)
        elif verb == Verb.START:
            _apply_start(instance)
        else:
            _apply_restart(instance, grace_seconds)
        try:
            updated = await store.update(instance)
        except Conflict:
            continue
        assert isinstance(updated, Instance)
        await recorder.record(
            EventName.INSTANCE_VERB_REQUESTED,
            instance=updated,
            reason=verb.value.capitalize(),
            message=f"{verb} requested by {requested_by}",
            details={"verb": verb.value, "requestedBy": requested_by},
        )
        return updated
    raise Conflict(f"instance {namespace}/{name} kept changing; {verb} was not recorded, retry")
