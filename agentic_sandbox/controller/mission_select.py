"""Choosing the sandbox that runs a mission: Ready executors, the filter, the least busy one.

An executor is an Instance that can take a mission now:

- it is not being deleted and its ``Ready`` condition is True;
- the agent tracker has a live connection from the agent of its current sandbox, with a fresh
  heartbeat. ``Ready`` also follows the runtime alone for images without an agent, so this
  check is needed as well.

An executor's capabilities are those its agent reported when it registered (such as ``exec``
and ``pty``), plus one for each Instance label ``capability.sandbox.agentic.dev/NAME: "true"``,
so an operator declares what a sandbox offers (``python``, ``claude``) in its manifest.

Among the executors that match the filter, the one running the fewest missions wins. Ties are
broken at random, so that equal sandboxes share the work instead of the first one taking it all.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agentic_sandbox.controller.agent_tracker import AgentTracker
from agentic_sandbox.crds.instance import ConditionType
from agentic_sandbox.crds.meta import GROUP, ConditionStatus, Resource
from agentic_sandbox.errors import AgentError

CAPABILITY_LABEL_PREFIX = f"capability.{GROUP}/"


class NoReadyExecutor(AgentError):
    """No instance in the namespace has a Ready sandbox with a connected agent."""

    reason = "NoReadyExecutor"


class NoMatchingExecutor(AgentError):
    """Ready executors exist, but none matches the mission's executor filter."""

    retryable = False
    reason = "NoMatchingExecutor"


@dataclass(frozen=True)
class ExecutorFilter:
    """The executors that may run a mission: all of ``capabilities``, and ``agent_id`` if set."""

    agent_id: str | None = None
    capabilities: tuple[str, ...] = ()

    def describe(self) -> str:
        terms = []
        if self.agent_id:
            terms.append(f"agent_id={self.agent_id}")
        if self.capabilities:
            terms.append(f"capabilities={','.join(self.capabilities)}")
        return " ".join(terms) or "no filter"


@dataclass(frozen=True)
class Executor:
    """A Ready instance whose agent is connected, as seen at one moment."""

    key: str
    uid: str
    agent_id: str
    sandbox_id: str
    capabilities: frozenset[str]

    def matches(self, executor_filter: ExecutorFilter) -> bool:
        if executor_filter.agent_id and executor_filter.agent_id != self.agent_id:
            return False
        return all(name in self.capabilities for name in executor_filter.capabilities)


def label_capabilities(labels: Mapping[str, str]) -> set[str]:
    return {
        key.removeprefix(CAPABILITY_LABEL_PREFIX)
        for key, value in labels.items()
        if key.startswith(CAPABILITY_LABEL_PREFIX) and value.lower() == "true"
    }


def _is_ready(instance: Resource) -> bool:
    if instance.metadata.deletion_timestamp is not None or instance.status is None:
        return False
    ready = instance.status.condition(ConditionType.READY)
    return ready is not None and ready.status == ConditionStatus.TRUE


def ready_executors(instances: Iterable[Resource], agents: AgentTracker) -> list[Executor]:
    """Return the executors among ``instances``, in the order given."""
    executors = []
    for instance in instances:
        if not _is_ready(instance):
            continue
        observation = agents.observe(instance.key)
        connection = agents.connection(instance.key)
        if observation is None or not observation.fresh or connection is None:
            continue
        capabilities = set(connection.capabilities) | label_capabilities(instance.metadata.labels)
        executors.append(
            Executor(
                key=instance.key,
                uid=instance.metadata.uid or "",
                agent_id=connection.expected.agent_id,
                sandbox_id=connection.expected.sandbox_id,
                capabilities=frozenset(capabilities),
            )
        )
    return executors


def choose_executor(
    executors: list[Executor],
    executor_filter: ExecutorFilter,
    *,
    busy: Mapping[str, int],
    rng: random.Random,
    namespace: str,
) -> Executor:
    """Pick the least busy executor that matches; raise NoReadyExecutor or NoMatchingExecutor."""
    if not executors:
        raise NoReadyExecutor(
            f"no instance in namespace {namespace} is Ready with a connected agent; "
            "start one from an image that runs sandbox-agent, such as agentic/agent:dev, and "
            "wait for it with 'sandboxctl wait --for=condition=Ready NAME'"
        )
    matching = [executor for executor in executors if executor.matches(executor_filter)]
    if not matching:
        offered = "; ".join(
            f"{executor.key} (agent_id={executor.agent_id}, capabilities="
            f"{','.join(sorted(executor.capabilities)) or 'none'})"
            for executor in executors
        )
        raise NoMatchingExecutor(
            f"no Ready instance matches the executor filter ({executor_filter.describe()}); "
            f"Ready instances: {offered}. Add the label "
            f'{CAPABILITY_LABEL_PREFIX}NAME: "true" to an instance to give it a capability'
        )
    fewest = min(busy.get(executor.key, 0) for executor in matching)
    least_busy = [executor for executor in matching if busy.get(executor.key, 0) == fewest]
    return rng.choice(least_busy)
