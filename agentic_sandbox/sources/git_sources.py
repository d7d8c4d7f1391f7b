"""Run every GitSource in the store: one task and one timer per source.

``GitSources.run`` lists the GitSources, then follows the store's watch: a new source starts
a runner that syncs at once; a spec change (a new ``generation``) wakes its runner; a deleted
source stops it. Each runner sleeps on its own timer (``asyncio.wait_for`` on its wake-up
event, for ``spec.interval`` seconds, or less while retrying a failure with backoff), so there
is no loop that polls every source. ``request_sync`` (the webhook) wakes one runner at once.
A suspended source does nothing until its spec changes.

A runner's syncs never overlap: a wake-up during a sync makes one more sync after it.
``stop`` lets running syncs finish up to a deadline, then cancels them (a cancelled sync kills
its git process and leaves the store as the last write left it).

Objects a deleted GitSource applied stay in the store, still annotated with its id. A new
GitSource of the same name and namespace adopts them; ``sandboxctl apply --takeover`` moves
one to the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

from agentic_sandbox.crds.gitsource import KIND, GitSource
from agentic_sandbox.errors import Expired, NotFound, StoreError
from agentic_sandbox.sources.git_client import DEFAULT_TIMEOUT_SECONDS
from agentic_sandbox.sources.git_preview import preview_plan
from agentic_sandbox.sources.git_status import Outcome, Reason, write_status
from agentic_sandbox.sources.git_sync import GitSync
from agentic_sandbox.sources.report import EventSink
from agentic_sandbox.store.base import Store, WatchEventType

logger = logging.getLogger(__name__)

# First retry delay after a failed sync; it doubles up to the source's interval.
RETRY_INITIAL_SECONDS = 5.0
STORE_WATCH_RETRY_SECONDS = 2.0
_RETRIED = (Reason.FETCH_FAILED, Reason.APPLY_FAILED)


class _Runner:
    """The task, timer and state of one GitSource."""

    def __init__(self, key: tuple[str, str], generation: int | None, sync: GitSync) -> None:
        self.key = key
        self.generation = generation
        self.sync = sync
        self.wake = asyncio.Event()
        self.lock = asyncio.Lock()
        self.failures = 0
        self.task: asyncio.Task[None] | None = None


class GitSources:
    """Syncs every GitSource of ``store``; see the module docstring."""

    def __init__(
        self,
        *,
        store: Store,
        event_log: EventSink,
        cache_root: Path,
        git_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry_initial: float = RETRY_INITIAL_SECONDS,
    ) -> None:
        self.store = store
        self.event_log = event_log
        self.cache_root = cache_root
        self.git_timeout = git_timeout
        self.retry_initial = retry_initial
        self._runners: dict[tuple[str, str], _Runner] = {}
        self._stopping = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        # Set once the first listing has started a runner for every source.
        self.started = asyncio.Event()

    async def run(self) -> None:
        """Start a runner per GitSource and follow the store until ``stop`` or cancellation."""
        logger.info("git sources starting", extra={"cache": str(self.cache_root)})
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                watch = group.create_task(self._watch())
                await self._stopping.wait()
                watch.cancel()
        finally:
            self._group = None
            self._runners.clear()
            logger.info("git sources stopped")

    async def stop(self, grace_seconds: float) -> None:
        """Let running syncs finish for up to ``grace_seconds``, then cancel them."""
        self._stopping.set()
        tasks = [runner.task for runner in self._runners.values() if runner.task is not None]
        for runner in self._runners.values():
            runner.wake.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()

    async def request_sync(self, namespace: str, name: str) -> GitSource:
        """Wake the source's runner for a sync now; return the source as stored.

        Raises NotFound when the source does not exist.
        """
        source = await self.store.get(KIND, namespace, name)
        assert isinstance(source, GitSource)
        runner = self._runners.get((namespace, name))
        if runner is None:
            self._start(source)
        else:
            runner.wake.set()
        return source

    async def preview(self, namespace: str, name: str) -> dict[str, Any]:
        """Return what the next sync would change, as a plain dict (see ``git_preview``).

        Raises NotFound when the source does not exist, GitError when the fetch fails.
        """
        source = await self.store.get(KIND, namespace, name)
        assert isinstance(source, GitSource)
        runner = self._runners.get((namespace, name)) or self._new_runner(source)
        async with runner.lock:
            plan = await runner.sync.plan(source)
        return await preview_plan(self.store, source, plan)

    # Following the store.

    async def _watch(self) -> None:
        while True:
            try:
                listing = await self.store.list(KIND)
                self._replace_all([item for item in listing.items if isinstance(item, GitSource)])
                self.started.set()
                async for change in self.store.watch(KIND, listing.resource_version):
                    source = change.object
                    if not isinstance(source, GitSource):
                        continue
                    if change.type is WatchEventType.DELETED:
                        self._forget(source.metadata.namespace, source.metadata.name)
                    else:
                        self._on_change(source)
                return  # the store was closed
            except Expired:
                logger.debug("store watch expired; listing again", extra={"kind": KIND})
            except StoreError as error:
                logger.warning("store watch failed; retrying: %s", error, extra={"kind": KIND})
                await asyncio.sleep(STORE_WATCH_RETRY_SECONDS)

    def _replace_all(self, sources: list[GitSource]) -> None:
        keys = {(item.metadata.namespace, item.metadata.name) for item in sources}
        for namespace, name in [key for key in self._runners if key not in keys]:
            self._stop_runner(namespace, name)
        for source in sources:
            self._on_change(source)

    def _on_change(self, source: GitSource) -> None:
        key = (source.metadata.namespace, source.metadata.name)
        if source.metadata.deletion_timestamp is not None:
            self._stop_runner(*key)
            return
        runner = self._runners.get(key)
        if runner is None or runner.task is None or runner.task.done():
            self._start(source)
        elif runner.generation != source.metadata.generation:
            runner.generation = source.metadata.generation
            runner.failures = 0
            runner.wake.set()

    def _new_runner(self, source: GitSource) -> _Runner:
        namespace, name = source.metadata.namespace, source.metadata.name
        sync = GitSync(
            self.cache_root / namespace / name,
            store=self.store,
            event_log=self.event_log,
            timeout=self.git_timeout,
        )
        runner = _Runner((namespace, name), source.metadata.generation, sync)
        self._runners[(namespace, name)] = runner
        return runner

    def _start(self, source: GitSource) -> None:
        if self._group is None or self._stopping.is_set():
            return
        runner = self._runners.get((source.metadata.namespace, source.metadata.name))
        if runner is None:
            runner = self._new_runner(source)
        runner.task = self._group.create_task(self._loop(runner))

    def _stop_runner(self, namespace: str, name: str) -> asyncio.Task[None] | None:
        runner = self._runners.pop((namespace, name), None)
        if runner is not None and runner.task is not None:
            runner.task.cancel()
            logger.info("git source removed", extra={"source": f"{namespace}/{name}"})
            return runner.task
        return None

    def _forget(self, namespace: str, name: str) -> None:
        """Stop a deleted source and remove its cache once its sync has ended."""
        task = self._stop_runner(namespace, name)
        if self._group is not None:
            self._group.create_task(self._remove_cache(namespace, name, task))

    async def _remove_cache(
        self, namespace: str, name: str, task: asyncio.Task[None] | None
    ) -> None:
        if task is not None:
            # Waits for the cancelled sync to end without raising what ended it.
            await asyncio.wait({task})
        if (namespace, name) in self._runners:
            return  # created again meanwhile; its cache is in use
        directory = self.cache_root / namespace / name
        await asyncio.to_thread(shutil.rmtree, directory, True)
        logger.info("git cache removed", extra={"source": f"{namespace}/{name}"})

    # One source.

    async def _loop(self, runner: _Runner) -> None:
        delay: float | None = 0.0
        while not self._stopping.is_set():
            if delay is None:
                await runner.wake.wait()
            elif delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(runner.wake.wait(), delay)
            runner.wake.clear()
            if self._stopping.is_set():
                return
            try:
                delay = await self._sync_once(runner)
            except NotFound:
                return
            except StoreError as error:
                logger.warning("git source status write failed: %s", error)
                runner.failures += 1
                delay = self.retry_initial

    async def _sync_once(self, runner: _Runner) -> float | None:
        """Sync once; return the seconds until the next sync, or None to wait for a wake-up."""
        namespace, name = runner.key
        source = await self.store.get(KIND, namespace, name)
        assert isinstance(source, GitSource)
        if source.spec.suspend:
            outcome = Outcome(Reason.SUSPENDED, "spec.suspend is true; nothing is synced")
            await write_status(self.store, namespace, name, outcome)
            return None
        async with runner.lock:
            if source.status.observed_generation != source.metadata.generation:
                syncing = Outcome(Reason.SYNCING, "fetching and applying the new spec")
                await write_status(self.store, namespace, name, syncing)
            outcome = await runner.sync.sync(source)
            await write_status(self.store, namespace, name, outcome)
        interval = float(source.spec.interval_seconds)
        if outcome.reason in _RETRIED:
            runner.failures += 1
            backoff: float = self.retry_initial * 2 ** (runner.failures - 1)
            return min(backoff, interval)
        runner.failures = 0
        return interval
