"""Bring the store in line with the manifest files of one directory.

``DirectorySync`` keeps, for every manifest file, its stat signature, content hash and the
objects applied from it, and for every object the file that owns it. A sync of some files:

1. observes each file (see ``observe``): missing, empty, unchanged, valid or invalid;
2. resolves which file owns which object (see ``ownership``);
3. applies the documents of every valid file, each with the file's source id;
4. reports invalid files (log line, ``source.invalid`` event, ``SourceSynced`` condition);
5. deletes the objects that files no longer declare, after every apply of the batch, so an
   object moved from one file to another is handed over, never deleted and created again.

Guarantees:

- A file that fails to parse or validate changes nothing applied from it before, and blocks no
  other file. Its error is logged and recorded once per distinct content and error.
- A file that is missing or empty, but had objects, keeps them until it has stayed so for
  ``settle_seconds``. The sync returns the delay after which to look at it again. Editors that
  truncate and write, or rename the old file away before writing the new one, never cause a
  delete unless the save takes longer than ``settle_seconds``.
- A store error while applying one file leaves that file marked unread, and the sync returns a
  retry time for it (exponential backoff); other files go on.
- An object that another source (the API, a GitSource) owns is never written. The file's
  other objects apply, the error names the owner, and the file is retried with backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from agentic_sandbox.crds.manifest import ParsedDocument
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION, Resource
from agentic_sandbox.crds.registry import KINDS
from agentic_sandbox.errors import ManifestError, OwnedByOtherSource, StoreError
from agentic_sandbox.sources.changes import TreeIndex
from agentic_sandbox.sources.metrics import SourceCounters
from agentic_sandbox.sources.observe import FileCondition, Observation, Previous, observe_file
from agentic_sandbox.sources.ownership import (
    Claim,
    Duplicate,
    ObjectKey,
    resolve_claims,
)
from agentic_sandbox.sources.report import (
    SOURCE_PREFIX,
    EventSink,
    duplicate_error,
    error_line,
    owned_elsewhere_error,
    record_applied,
    record_deleted,
    record_invalid,
    source_id,
)
from agentic_sandbox.sources.scan import Signature, scan_tree
from agentic_sandbox.store.apply import ApplyOutcome, apply, delete_if_owned, exclusive_claim
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# Rounds of one sync: the second and later re-check files whose duplicate objects were freed.
MAX_ROUNDS = 4


def object_key(resource: Resource) -> ObjectKey:
    return resource.kind, resource.metadata.namespace, resource.metadata.name


@dataclass
class FileState:
    """The recorded state of one manifest file."""

    # Objects applied from the file that it still owns. Kept while the file is invalid.
    keys: set[ObjectKey] = field(default_factory=set)
    signature: Signature | None = None
    digest: str | None = None
    # False for a file known only from the store's source annotations at startup.
    seen: bool = False
    # Monotonic time when the file was first found missing or empty with objects.
    pending_since: float | None = None
    # Identity of the error last logged, and of the error last recorded in events and status.
    logged_error: str | None = None
    recorded_error: str | None = None
    # Objects the file declares but another file owns; freeing one re-checks the file.
    blocked: set[ObjectKey] = field(default_factory=set)
    failures: int = 0


@dataclass
class _Batch:
    """The files of one sync round, sorted into what must happen to each."""

    observations: dict[str, Observation] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)
    documents: dict[str, list[ParsedDocument]] = field(default_factory=dict)
    invalid: dict[str, ManifestError] = field(default_factory=dict)
    # Files that stayed missing past the settle delay, with the objects they release.
    removed: dict[str, set[ObjectKey]] = field(default_factory=dict)

    def has_read(self, path: str) -> bool:
        """Return whether ``path`` was read in this batch, not skipped as unchanged."""
        return path in self.claims or path in self.invalid

    def released_keys(self, files: dict[str, FileState]) -> set[ObjectKey]:
        released = set().union(*self.removed.values())
        for path, claim in self.claims.items():
            state = files.get(path)
            if state is not None:
                released |= state.keys - claim.declared.keys()
        return released


class DirectorySync:
    """State and sync steps of the directory source; callers serialize calls to ``sync``."""

    def __init__(
        self,
        root: str,
        *,
        store: Store,
        event_log: EventSink,
        settle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.store = store
        self.event_log = event_log
        self.settle_seconds = settle_seconds
        self.clock = clock
        self.files: dict[str, FileState] = {}
        self.owners: dict[ObjectKey, str] = {}
        # Objects a file declares that another source (the API, a GitSource) owns, by file.
        self.foreign: dict[ObjectKey, str] = {}
        self.index = TreeIndex(root)
        self.counters = SourceCounters()
        self._rechecks: dict[str, float] = {}
        # Files with a non-empty ``FileState.blocked``.
        self._blocked: set[str] = set()
        # False while the last walk of the root failed (removed, unmounted, no permission).
        self.root_readable = True

    async def load_owned(self) -> None:
        """Record the objects that files under the root applied before this process started."""
        prefix = source_id(self.root.rstrip(os.sep) + os.sep)
        for kind in KINDS:
            listing = await self.store.list(kind)
            for item in listing.items:
                source = item.metadata.annotations.get(SOURCE_ANNOTATION, "")
                if not source.startswith(prefix):
                    continue
                path = source.removeprefix(SOURCE_PREFIX)
                key = object_key(item)
                self.files.setdefault(path, FileState()).keys.add(key)
                self.owners[key] = path
        logger.info(
            "source objects loaded",
            extra={"root": self.root, "files": len(self.files), "objects": len(self.owners)},
        )

    def missing_from(self, kind: str, items: Iterable[Resource]) -> dict[str, float]:
        """Return the files that own an object of ``kind`` that ``items`` (a fresh listing)
        lacks, to be applied again at once."""
        listed = {object_key(item) for item in items}
        return {
            path: 0.0 for key, path in self.owners.items() if key[0] == kind and key not in listed
        }

    async def rescan(self, extra: Iterable[str] = ()) -> dict[str, float]:
        """Walk the tree again and sync every file; unchanged files cost one ``stat``."""
        try:
            scan = await asyncio.to_thread(scan_tree, self.root)
        except OSError as error:
            # Pruning against a directory that cannot be read would delete everything, so
            # nothing changes until it can be read again.
            if self.root_readable:
                logger.error(
                    "manifest directory cannot be read; keeping every object: %s",
                    error,
                    extra={"root": self.root},
                )
            self.root_readable = False
            return {}
        if not self.root_readable:
            logger.info("manifest directory readable again", extra={"root": self.root})
        self.root_readable = True
        self.counters.rescans += 1
        self.index.update(scan)
        found = set(scan.files)
        absent = {path for path in self.files if path not in found}
        return await self.sync(found | set(extra), absent=absent)

    async def sync(
        self,
        paths: Iterable[str],
        *,
        forced: Collection[str] = (),
        absent: Collection[str] = (),
    ) -> dict[str, float]:
        """Sync ``paths``; return the files to look at again, with the delay in seconds.

        ``forced`` files are read and applied even when they look unchanged. ``absent`` files
        count as missing without a look (a rescan no longer finds them).
        """
        self._rechecks = {}
        todo, force = set(paths) | set(absent), set(forced)
        for _ in range(MAX_ROUNDS):
            batch = _Batch()
            await self._observe(batch, todo, force, absent)
            blocked = self._blocked_on(batch.released_keys(self.files))
            blocked = {path for path in blocked if not batch.has_read(path)}
            await self._observe(batch, blocked, blocked, ())
            await self._act(batch)

            todo = self._unblocked()
            if not todo:
                break
            force, absent = set(todo), ()
        for path in todo:
            self._recheck(path, RETRY_INITIAL_SECONDS)
        return self._rechecks

    # Observing and sorting files.

    async def _observe(
        self, batch: _Batch, paths: set[str], force: set[str], absent: Collection[str]
    ) -> None:
        jobs = {path: self._previous(path, path in force) for path in paths if path not in absent}
        results = await asyncio.to_thread(_observe_all, jobs)
        results.update({path: Observation(path, FileCondition.MISSING) for path in absent})
        for path in sorted(results):
            self._sort(batch, results[path])

    def _previous(self, path: str, force: bool) -> Previous:
        state = self.files.get(path)
        if state is None:
            return Previous(force=force)
        return Previous(signature=state.signature, digest=state.digest, force=force)

    def _sort(self, batch: _Batch, observation: Observation) -> None:
        path = observation.path
        batch.observations[path] = observation
        self.counters.files_read += observation.content_read
        state = self.files.get(path)
        condition = observation.condition
        if condition is FileCondition.VALID:
            declared = {object_key(doc.resource): doc.line for doc in observation.documents}
            batch.claims[path] = Claim(path, declared)
            batch.documents[path] = observation.documents
        elif condition is FileCondition.INVALID:
            assert observation.error is not None
            batch.invalid[path] = observation.error
            if state is not None:
                # A file that does not parse claims nothing, so it waits for no object.
                self._set_blocked(path, state, set())
        elif condition is FileCondition.UNCHANGED:
            if state is not None:
                state.signature = observation.signature
                state.pending_since = None
        elif state is None or not state.keys:
            # Missing or empty with nothing applied: nothing to protect.
            if condition is FileCondition.EMPTY:
                batch.claims[path] = Claim(path, {})
                batch.documents[path] = []
            else:
                self._forget(path)
        elif self._settled(path, state, missing=condition is FileCondition.MISSING):
            if condition is FileCondition.EMPTY:
                batch.claims[path] = Claim(path, {})
                batch.documents[path] = []
            else:
                batch.removed[path] = set(state.keys)

    def _settled(self, path: str, state: FileState, *, missing: bool) -> bool:
        """Return whether a missing or empty file has stayed so long enough to act on it."""
        if missing and not state.seen:
            # Known only from the store: the file was removed while the source was stopped.
            return True
        now = self.clock()
        if state.pending_since is None:
            state.pending_since = now
            self.counters.deferrals += 1
            logger.debug("manifest file missing or empty; waiting", extra={"file": path})
        remaining = state.pending_since + self.settle_seconds - now
        if remaining <= 0:
            return True
        self._recheck(path, remaining)
        return False

    def _blocked_on(self, released: set[ObjectKey]) -> set[str]:
        if not released:
            return set()
        return {path for path in self._blocked if self.files[path].blocked & released}

    def _unblocked(self) -> set[str]:
        """Return the rejected files of which some duplicate object has no owner any more."""
        return {
            path
            for path in self._blocked
            if any(self.owners.get(key) in (None, path) for key in self.files[path].blocked)
        }

    def _set_blocked(self, path: str, state: FileState, keys: set[ObjectKey]) -> None:
        state.blocked = keys
        if keys:
            self._blocked.add(path)
        else:
            self._blocked.discard(path)

    # Acting on a sorted batch.

    async def _act(self, batch: _Batch) -> None:
        released = {path: set(keys) for path, keys in batch.removed.items()}
        rejected = resolve_claims(self.owners, list(batch.claims.values()), released)
        for path, duplicates in rejected.items():
            batch.invalid[path] = duplicate_error(path, duplicates)
            state = self.files.setdefault(path, FileState())
            self._set_blocked(path, state, {dup.key for dup in duplicates})
            del batch.claims[path]

        for path in sorted(batch.claims):
            dropped = await self._apply_file(path, batch)
            if dropped:
                released[path] = dropped
        for path in sorted(batch.invalid):
            await self._report_invalid(path, batch.invalid[path], batch.observations.get(path))
        for path in sorted(released):
            await self._delete_released(path, released[path], file_removed=path in batch.removed)

    async def _apply_file(self, path: str, batch: _Batch) -> set[ObjectKey]:
        """Apply the documents of one accepted file; return the objects it no longer declares."""
        state = self.files.setdefault(path, FileState())
        observation = batch.observations[path]
        source = source_id(path)
        claim = exclusive_claim(source)
        outcomes: list[ApplyOutcome] = []
        foreign: list[Duplicate] = []
        try:
            for document in batch.documents[path]:
                key = object_key(document.resource)
                try:
                    _, outcome = await apply(
                        self.store, document.resource, source=source, claim=claim
                    )
                except OwnedByOtherSource as error:
                    foreign.append(Duplicate(key=key, line=document.line, owner=error.owner))
                    continue
                state.keys.add(key)
                self.owners[key] = path
                outcomes.append(outcome)
        except StoreError as error:
            self._store_failed(path, state, "apply", error)
            return set()

        declared = batch.claims[path].declared.keys() - {dup.key for dup in foreign}
        dropped = state.keys - declared
        state.keys = set(declared)
        self._set_foreign(path, foreign)
        self._accept(path, state, observation, clear_error=not foreign)
        self.counters.files_applied += 1
        self.counters.count(outcomes)
        if foreign:
            # Another source (the API, a GitSource) owns these objects. The file is looked at
            # again with backoff, and at once when one of them is deleted.
            await self._report_invalid(path, owned_elsewhere_error(path, foreign), None)
            state.failures += 1
            self._recheck(path, _retry_delay(state.failures))
        else:
            await self._record_applied(path, state, outcomes)
        return dropped

    def _set_foreign(self, path: str, duplicates: list[Duplicate]) -> None:
        for key in [key for key, owner in self.foreign.items() if owner == path]:
            del self.foreign[key]
        self.foreign.update({dup.key: path for dup in duplicates})

    def _accept(
        self, path: str, state: FileState, observation: Observation, *, clear_error: bool = True
    ) -> None:
        state.signature = observation.signature
        state.digest = observation.digest
        state.seen = True
        state.pending_since = None
        self._set_blocked(path, state, set())
        if clear_error:
            state.failures = 0
            state.logged_error = None
        self.index.record_real_path(path, observation.real_path)

    async def _record_applied(
        self, path: str, state: FileState, outcomes: list[ApplyOutcome]
    ) -> None:
        recovered = state.recorded_error is not None
        if recovered:
            logger.info("manifest file valid again", extra={"file": path})
        try:
            await record_applied(
                self.store, self.event_log, path, state.keys, outcomes, recovered=recovered
            )
        except StoreError as error:
            self._store_failed(path, state, "record applied", error)
            return
        state.recorded_error = None

    async def _report_invalid(
        self, path: str, error: ManifestError, observation: Observation | None
    ) -> None:
        state = self.files.setdefault(path, FileState())
        if observation is not None and observation.condition in _READ:
            state.signature, state.digest = observation.signature, observation.digest
            state.seen = True
            state.pending_since = None
            self.index.record_real_path(path, observation.real_path)
        identity = hashlib.sha256(f"{state.digest}\0{error}".encode()).hexdigest()
        if identity != state.logged_error:
            state.logged_error = identity
            self.counters.invalid_files += 1
            logger.warning(
                "manifest file invalid: %s",
                error,
                extra={"file": path, "line": error_line(error), "objects": len(state.keys)},
            )
        if identity == state.recorded_error:
            return
        try:
            await record_invalid(self.store, self.event_log, path, state.keys, error)
        except StoreError as store_error:
            self._store_failed(path, state, "record invalid", store_error)
            return
        state.recorded_error = identity

    async def _delete_released(
        self, path: str, keys: set[ObjectKey], *, file_removed: bool
    ) -> None:
        """Delete the objects ``path`` released, where it still owns them."""
        state = self.files.get(path)
        source = source_id(path)
        for key in sorted(keys):
            try:
                deleted = await delete_if_owned(self.store, *key, source)
            except StoreError as error:
                if state is not None:
                    state.keys.add(key)
                    self._store_failed(path, state, "delete", error)
                continue
            if self.owners.get(key) == path:
                del self.owners[key]
            if state is not None:
                state.keys.discard(key)
            if deleted:
                self.counters.objects_deleted += 1
                await record_deleted(self.event_log, path, key, file_removed=file_removed)
        if file_removed and state is not None and not state.keys:
            self._forget(path)

    # Bookkeeping.

    def _forget(self, path: str) -> None:
        self.files.pop(path, None)
        self._blocked.discard(path)
        self._set_foreign(path, [])
        self.index.record_real_path(path, None)

    def _store_failed(self, path: str, state: FileState, step: str, error: StoreError) -> None:
        """Mark ``path`` unread so that the retry applies it again, and schedule the retry."""
        state.signature = None
        state.digest = None
        state.failures += 1
        self.counters.store_errors += 1
        delay = _retry_delay(state.failures)
        logger.warning(
            "manifest file sync failed; will retry: %s",
            error,
            extra={"file": path, "step": step, "retry_in": delay},
        )
        self._recheck(path, delay)

    def _recheck(self, path: str, delay: float) -> None:
        self._rechecks[path] = min(delay, self._rechecks.get(path, delay))


_READ = (FileCondition.VALID, FileCondition.INVALID)


def _retry_delay(failures: int) -> float:
    delay: float = RETRY_INITIAL_SECONDS * 2 ** (failures - 1)
    return min(delay, RETRY_MAX_SECONDS)


def _observe_all(jobs: dict[str, Previous]) -> dict[str, Observation]:
    return {path: observe_file(path, previous) for path, previous in jobs.items()}
