"""The worker pool: a fixed number of tasks taking keys from the queue and reconciling them.

The queue guarantees one worker per key. A retryable error requeues the key with backoff; an
unexpected exception is logged with its traceback and retried the same way, so a bug in one
instance's reconcile never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from agentic_sandbox.controller.metrics import ControllerMetrics
from agentic_sandbox.controller.queue import WorkQueue
from agentic_sandbox.controller.reconciler import Result
from agentic_sandbox.errors import SandboxError

logger = logging.getLogger(__name__)

Reconcile = Callable[[str], Awaitable[Result]]


class WorkerPool:
    def __init__(
        self,
        queue: WorkQueue,
        reconcile: Reconcile,
        *,
        workers: int,
        metrics: ControllerMetrics,
    ) -> None:
        self._queue = queue
        self._reconcile = reconcile
        self._workers = workers
        self._metrics = metrics

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for index in range(self._workers):
                group.create_task(self._work(), name=f"worker-{index}")

    async def _work(self) -> None:
        while (key := await self._queue.get()) is not None:
            started = time.monotonic()
            try:
                result = await self._reconcile(key)
            except SandboxError as error:
                delay = self._queue.add_rate_limited(key)
                self._metrics.errors[error.reason] += 1
                self._metrics.observe_reconcile("error", time.monotonic() - started)
                logger.warning(
                    "reconcile failed; will retry instance=%s reason=%s retry_in=%.2fs error=%s",
                    key,
                    error.reason,
                    delay,
                    error,
                )
            except Exception:
                delay = self._queue.add_rate_limited(key)
                self._metrics.errors["Unexpected"] += 1
                self._metrics.observe_reconcile("error", time.monotonic() - started)
                logger.exception(
                    "reconcile failed unexpectedly; will retry instance=%s retry_in=%.2fs",
                    key,
                    delay,
                )
            else:
                self._queue.forget(key)
                self._metrics.observe_reconcile("success", time.monotonic() - started)
                if result.requeue_after is not None:
                    self._queue.add_after(key, result.requeue_after)
            finally:
                self._queue.done(key)
