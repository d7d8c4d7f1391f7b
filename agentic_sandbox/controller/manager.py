"""The controller's public interface: one object that owns the queue, the workers and triggers.

It composes small parts (queue, reconciler, worker pool, watchers) and runs them under one task
group, so the crash of any part is noticed and stops the controller instead of failing silently.
Entry surfaces (API, sources, CLI) never call it to change the runtime; they write desired state
to the store, which the controller watches.
"""

from __future__ import annotations

import asyncio
import logging

from agentic_sandbox.controller.agent_tracker import DEFAULT_HEARTBEAT_INTERVAL, AgentTracker
from agentic_sandbox.controller.backoff import ExponentialBackoff, RetryLimiter, TokenBucket
from agentic_sandbox.controller.desired import HostPolicy
from agentic_sandbox.controller.executor import LoadoutResolver
from agentic_sandbox.controller.gc import GarbageCollector, GcSettings
from agentic_sandbox.controller.metrics import ControllerMetrics
from agentic_sandbox.controller.queue import WorkQueue
from agentic_sandbox.controller.reconciler import InstanceReconciler
from agentic_sandbox.controller.recorder import EventRecorder, EventSink
from agentic_sandbox.controller.watchers import (
    pump_runtime_events,
    resync_periodically,
    watch_instances,
)
from agentic_sandbox.controller.workers import WorkerPool
from agentic_sandbox.runtimes.base import LABEL_CONTROLLER, Runtime
from agentic_sandbox.runtimes.router import drivers_of
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

# Retry delays of a failing key: 50 ms doubling to 60 s. Global cap: 50 retries per second.
RETRY_BASE_SECONDS = 0.05
RETRY_CAP_SECONDS = 60.0
RETRY_RATE = 50.0
RETRY_BURST = 200


class Controller:
    def __init__(
        self,
        *,
        store: Store,
        runtime: Runtime,
        events: EventSink,
        policy: HostPolicy,
        node: str,
        workers: int = 16,
        resync_interval: float = 300.0,
        gc: GcSettings | None = None,
        loadouts: LoadoutResolver | None = None,
        agent_heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        """``gc`` configures the garbage collector; None leaves its periodic sweep off.

        ``runtime`` may be a RuntimeRouter over several drivers; ``loadouts`` resolves the
        loadouts of libvirt instances. ``agents`` tracks the in-sandbox agents, which the agent
        server reports to; ``agent_heartbeat_interval`` is the interval agents are told to use.
        """
        self.store = store
        self.runtime = runtime
        self.policy = policy
        self.metrics = ControllerMetrics()
        self.recorder = EventRecorder(events)
        limiter = RetryLimiter(
            ExponentialBackoff(base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS),
            TokenBucket(rate=RETRY_RATE, burst=RETRY_BURST),
        )
        self.queue = WorkQueue(limiter)
        self.agents = AgentTracker(
            enqueue=self.queue.add, heartbeat_interval=agent_heartbeat_interval
        )
        self.reconciler = InstanceReconciler(
            store=store,
            runtime=runtime,
            recorder=self.recorder,
            policy=policy,
            node=node,
            loadouts=loadouts,
            agents=self.agents,
        )
        self._workers = WorkerPool(
            self.queue, self.reconciler.reconcile, workers=workers, metrics=self.metrics
        )
        self._resync_interval = resync_interval
        # Built even when its periodic sweep is off, so that a dry run can be requested.
        self.gc = GarbageCollector(
            store=store,
            runtime=runtime,
            recorder=self.recorder,
            metrics=self.metrics,
            controller_id=policy.controller_id,
            workspace_root=policy.workspace_root,
            settings=gc or GcSettings(enabled=False),
        )
        self._triggers: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Run until cancelled or until ``stop`` drains the workers."""
        labels = {LABEL_CONTROLLER: self.policy.controller_id}
        logger.info(
            "controller starting controller_id=%s runtimes=%s",
            self.policy.controller_id,
            ",".join(driver.name for driver in drivers_of(self.runtime)),
        )
        async with asyncio.TaskGroup() as group:
            # Each driver's event stream is followed on its own, so that one runtime's outage
            # neither hides nor interrupts another's events.
            pumps = [
                group.create_task(
                    pump_runtime_events(
                        driver, self.store, self.queue, labels=labels, metrics=self.metrics
                    )
                )
                for driver in drivers_of(self.runtime)
            ]
            self._triggers = [
                group.create_task(watch_instances(self.store, self.queue, self.metrics)),
                *pumps,
                group.create_task(
                    resync_periodically(self.store, self.queue, self._resync_interval)
                ),
            ]
            group.create_task(self._workers.run())
            if self.gc.settings.enabled:
                group.create_task(self.gc.run())

    async def stop(self, grace_seconds: float = 10.0) -> bool:
        """Stop taking new work and wait up to ``grace_seconds`` for running reconciles."""
        for task in self._triggers:
            task.cancel()
        self.gc.stop()
        self.queue.shut_down()
        drained = await self.queue.drain(grace_seconds)
        if not drained:
            logger.warning(
                "shutdown timed out with reconciles still running grace=%.1fs", grace_seconds
            )
        return drained
