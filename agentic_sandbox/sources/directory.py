"""The directory source: a watched directory of manifests becomes desired state in the store.

``DirectorySource.run`` syncs the whole tree once, then watches it with watchfiles (inotify on
Linux) and syncs the files each batch of changes touches, until it is cancelled. It writes only
to the store and the event log; the controller turns the stored objects into containers.

Each applied object records its file in the ``crds.meta.SOURCE_ANNOTATION`` annotation as
``file:<path>``, where the path is the file's path under the root as given, with symlinks left
unresolved. Removing a file, or an object from a file, deletes exactly those objects. The first
sync also deletes the objects of files that were removed while the source was stopped. An
object that a file still declares but that disappears from the store (deleted through the API,
or declared again while its deletion was finishing) is applied again from its file.

How files are found is in ``scan``, which events lead to which files in ``changes``, and what a
sync does and guarantees in ``sync``.

The watch is restarted when the set of outside directories reached through symlinks changes,
because inotify watches only what existed when the watch started. Each (re)start is followed
by a rescan, so a change made while no watch was active is still seen.

NOTE: a file symlink whose target lies outside the watched directories is read on every
rescan, but a change of the target's content alone raises no event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.crds.registry import KINDS
from agentic_sandbox.errors import Expired, StoreError
from agentic_sandbox.sources.metrics import SourceCounters
from agentic_sandbox.sources.report import EventSink
from agentic_sandbox.sources.sync import DirectorySync, object_key
from agentic_sandbox.store.base import Store, WatchEventType

logger = logging.getLogger(__name__)

# How long a file that had objects may stay missing or empty before its objects are deleted.
DEFAULT_SETTLE_SECONDS = 1.0
# watchfiles yields a batch once no change arrived for this long (bounded by the debounce).
WATCH_STEP_MS = 50
# Delay before the rescan that follows each watch (re)start.
CATCH_UP_SECONDS = 0.05
# Wait before restarting a watch that failed to start.
WATCH_RETRY_SECONDS = 2.0
# Wait before watching the store again after a store error.
STORE_WATCH_RETRY_SECONDS = 2.0
# Timer name of the pending rescan. File timers are named by the file's absolute path.
RESCAN_TIMER = "<rescan>"


class DirectorySource:
    """Applies the manifests under ``root`` to ``store``, as the module docstring describes."""

    def __init__(
        self,
        root: Path,
        *,
        store: Store,
        event_log: EventSink,
        debounce_ms: int = 100,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    ) -> None:
        if debounce_ms < 1:
            raise ValueError(f"debounce_ms is {debounce_ms}; set at least 1")
        # Absolute but not resolved: the paths in source ids must not depend on symlink targets.
        self.root = os.path.abspath(root)
        self.debounce_ms = debounce_ms
        self._store = store
        self._sync = DirectorySync(
            self.root, store=store, event_log=event_log, settle_seconds=settle_seconds
        )
        self._lock = asyncio.Lock()
        # Set once the first sync finished and the directory is being watched.
        self.watching = asyncio.Event()
        self._loaded = False
        self._group: asyncio.TaskGroup | None = None
        self._timers: dict[str, asyncio.Task[None]] = {}
        # Event loop time at which each timer fires.
        self._due: dict[str, float] = {}
        # The paths of the active watch and the event that ends it.
        self._session: tuple[list[str], asyncio.Event] | None = None

    @property
    def counters(self) -> SourceCounters:
        return self._sync.counters

    @property
    def root_readable(self) -> bool:
        """False while the last walk of the root failed; nothing is deleted meanwhile."""
        return self._sync.root_readable

    @property
    def pending_timers(self) -> int:
        """Number of scheduled rechecks (waiting files, retries) and rescans."""
        return len(self._timers)

    async def sync_all(self) -> None:
        """Walk the whole tree and sync every file; the first call also prunes the objects of
        files removed while the source was stopped."""
        async with self._lock:
            if not self._loaded:
                await self._sync.load_owned()
                self._loaded = True
            rechecks = await self._sync.rescan()
        self._after_sync(rechecks)

    async def run(self) -> None:
        """Sync once, then watch and sync changes until cancelled."""
        if not await asyncio.to_thread(os.path.isdir, self.root):
            raise NotADirectoryError(
                f"manifest directory {self.root} does not exist or is not a directory; "
                "create it or pass another directory"
            )
        logger.info("directory source starting", extra={"root": self.root})
        stopping = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self.sync_all()
                group.create_task(self._watch(stopping))
                for kind in KINDS:
                    group.create_task(self._watch_deletions(kind))
                try:
                    # Park here until cancelled. The watch thread only notices its stop
                    # event, so that must be set before the task group waits for the watch.
                    await stopping.wait()
                finally:
                    stopping.set()
                    self._restart_watch()
        finally:
            self.watching.clear()
            self._session = None
            self._group = None
            await self.close()
            logger.info("directory source stopped", extra={"root": self.root})

    async def close(self) -> None:
        """Cancel the pending rechecks. ``run`` does this itself when it ends."""
        timers = list(self._timers.values())
        self._timers.clear()
        self._due.clear()
        for timer in timers:
            timer.cancel()
        for timer in timers:
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    # Watching the directory.

    async def _watch(self, stopping: asyncio.Event) -> None:
        failing = False
        while not stopping.is_set():
            paths = self._sync.index.watch_paths()
            session = asyncio.Event()
            self._session = (paths, session)
            self._spawn(RESCAN_TIMER, CATCH_UP_SECONDS, self._rescan_later(CATCH_UP_SECONDS))
            try:
                await self._watch_session(paths, session)
                failing = False
            except OSError as error:
                # The root (or a symlink target) was removed: retry until it is back.
                if not failing:
                    logger.error(
                        "directory watch failed; retrying every %g s: %s",
                        WATCH_RETRY_SECONDS,
                        error,
                        extra={"root": self.root},
                    )
                failing = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), WATCH_RETRY_SECONDS)

    async def _watch_session(self, paths: list[str], session: asyncio.Event) -> None:
        """Watch ``paths`` until ``session`` is set: on stop, or when other paths need a watch."""
        # watchfiles skips missing paths when set to ignore unreadable ones, so check the root.
        if not await asyncio.to_thread(os.path.isdir, self.root):
            raise FileNotFoundError(f"manifest directory {self.root} does not exist")
        logger.debug("directory watch started", extra={"paths": paths})
        changes_stream = awatch(
            *paths,
            watch_filter=None,
            debounce=self.debounce_ms,
            step=min(WATCH_STEP_MS, self.debounce_ms),
            stop_event=session,
            recursive=True,
            ignore_permission_denied=True,
        )
        async with contextlib.aclosing(changes_stream):
            # The first iteration creates the inotify watches before it awaits anything, so
            # a task woken by ``watching`` runs only once they exist.
            self.watching.set()
            async for changes in changes_stream:
                await self._on_changes(changes)

    def _restart_watch(self) -> None:
        if self._session is not None:
            self._session[1].set()

    async def _on_changes(self, changes: set[tuple[Change, str]]) -> None:
        async with self._lock:
            found = self._sync.index.classify(
                (path for _, path in changes), tracked=self._sync.files.keys()
            )
            if found.rescan:
                rechecks = await self._sync.rescan(extra=found.files)
            elif found.files:
                rechecks = await self._sync.sync(found.files)
            else:
                return
        self._after_sync(rechecks)

    def _after_sync(self, rechecks: dict[str, float]) -> None:
        self._schedule(rechecks)
        if self._session is None or self._session[1].is_set():
            return
        if not self._sync.root_readable:
            # The inotify watch of a removed root reports nothing once the root is back.
            logger.debug("directory watch restarting: the root cannot be read")
            self._restart_watch()
        elif self._session[0] != self._sync.index.watch_paths():
            logger.info("directory watch restarting for changed symlink targets")
            self._restart_watch()

    async def _watch_deletions(self, kind: str) -> None:
        """Re-apply a file when an object it declares disappears from the store.

        The object may have been deleted through the API, or it was re-declared while it was
        being deleted and its finalizer then let it go. Either way the file still declares it.
        """
        while True:
            try:
                listing = await self._store.list(kind)
                async with self._lock:
                    rechecks = self._sync.missing_from(kind, listing.items)
                self._schedule(rechecks)
                async for change in self._store.watch(kind, listing.resource_version):
                    if change.type is WatchEventType.DELETED:
                        self._on_deleted(change.object)
                return  # the store was closed
            except Expired:
                logger.debug("store watch expired; listing again", extra={"kind": kind})
            except StoreError as error:
                logger.warning("store watch failed; retrying: %s", error, extra={"kind": kind})
                await asyncio.sleep(STORE_WATCH_RETRY_SECONDS)

    def _on_deleted(self, obj: Resource) -> None:
        key = object_key(obj)
        path = self._sync.owners.get(key) or self._sync.foreign.get(key)
        if path is not None:
            logger.info(
                "declared object deleted; applying its file again",
                extra={"instance": obj.key, "file": path},
            )
            self._schedule({path: 0.0})

    # Timers: a recheck of one file after a delay (settle or retry), or a rescan.

    def _schedule(self, rechecks: dict[str, float]) -> None:
        now = asyncio.get_running_loop().time()
        for path, delay in rechecks.items():
            # A timer that fires sooner covers this request: the recheck is level-triggered.
            if path in self._timers and self._due[path] <= now + delay:
                continue
            self._spawn(path, delay, self._recheck_later(path, delay))

    async def _recheck_later(self, path: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._fired(path)
        async with self._lock:
            rechecks = await self._sync.sync({path}, forced={path})
        self._after_sync(rechecks)

    async def _rescan_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._fired(RESCAN_TIMER)
        async with self._lock:
            rechecks = await self._sync.rescan()
        self._after_sync(rechecks)

    def _fired(self, name: str) -> None:
        self._timers.pop(name, None)
        self._due.pop(name, None)

    def _spawn(self, name: str, delay: float, work: Coroutine[Any, Any, None]) -> None:
        """Start a timer task, replacing the one of the same name that has not fired yet.

        Timers run in the task group while ``run`` is active, so a crash stops the source
        instead of going unnoticed. A timer leaves ``_timers`` before it takes the lock, so
        replacing or closing never cancels a sync half-way.
        """
        previous = self._timers.pop(name, None)
        if previous is not None:
            previous.cancel()
        if self._group is not None:
            task = self._group.create_task(work)
        else:
            task = asyncio.create_task(work)
        self._timers[name] = task
        self._due[name] = asyncio.get_running_loop().time() + delay
