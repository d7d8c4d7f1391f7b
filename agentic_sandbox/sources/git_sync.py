"""One sync of a GitSource: fetch, parse, apply, prune, and what it reports.

``GitSync`` belongs to one GitSource and keeps what must survive between its syncs: the git
cache, the parsed manifests of the last commit, and which failures it has already recorded.
Callers serialize ``sync`` and ``preview`` on one instance.

Guarantees (the staleness guard among them):

- A failed fetch (unreachable remote, missing ref, timeout) applies and prunes nothing; the
  outcome carries the reason, and the next sync tries again.
- A store failure while applying stops the sync before anything is pruned.
- Objects are written with ``apply`` and a claim check, so an object owned by another source
  is never written. The exception is an object in this source's inventory that was taken over
  through another channel: that is drift, reverted with a ``source.drift_reverted`` event.
- Pruning deletes only objects whose source annotation names this GitSource, each checked
  and deleted at one resourceVersion (``delete_if_owned``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from agentic_sandbox.crds.gitsource import GitSource, OwnershipConflict, redact_url
from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.errors import OwnedByOtherSource, StoreError
from agentic_sandbox.sources import git_report
from agentic_sandbox.sources.git_client import GitCache, GitError
from agentic_sandbox.sources.git_plan import (
    Desired,
    ParsedTree,
    SyncPlan,
    file_of,
    git_source_id,
    git_writer,
    list_owned,
    parse_tree,
    plan_sync,
)
from agentic_sandbox.sources.git_status import Outcome, Reason, inventory_keys
from agentic_sandbox.sources.ownership import ObjectKey
from agentic_sandbox.sources.report import EventSink, record_deleted, record_invalid
from agentic_sandbox.sources.status import REASON_APPLIED, set_source_synced
from agentic_sandbox.store.apply import (
    ApplyOutcome,
    apply,
    delete_if_owned,
    exclusive_claim,
    owner_of,
    source_owner,
)
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)


@dataclass
class Applied:
    """Result of the apply step: the applied keys, counts and conflicts."""

    keys: set[ObjectKey] = field(default_factory=set)
    created: int = 0
    updated: int = 0
    conflicts: list[OwnershipConflict] = field(default_factory=list)


def desired_digest(desired: Desired) -> str:
    text = json.dumps(desired.resource.to_wire(), sort_keys=True)
    return hashlib.sha256(f"{desired.file}\0{text}".encode()).hexdigest()


class _InventoryClaim:
    """Claim check of one object: free or this source's objects, or any object in the
    inventory (taken over through another channel, so drift). Records the owner it saw."""

    def __init__(self, source_id: str, *, owned: bool) -> None:
        self._exclusive = exclusive_claim(source_id)
        self._owned = owned
        self.seen_owner: str | None = None

    def __call__(self, current: Resource) -> bool:
        self.seen_owner = owner_of(current)
        return self._owned or self._exclusive(current)


class GitSync:
    """Syncs one GitSource into the store; see the module docstring."""

    def __init__(self, cache_dir: Path, *, store: Store, event_log: EventSink, timeout: float):
        self.cache_dir = cache_dir
        self.store = store
        self.event_log = event_log
        self.timeout = timeout
        self._cache: GitCache | None = None
        self._parsed: tuple[tuple[str, str], ParsedTree] | None = None
        # Desired state applied last time, by object: a later update that finds the same
        # desired state must have undone a change made outside this source (drift).
        self._digests: dict[ObjectKey, str] = {}
        # Identities of the failures recorded as events, so each is recorded once.
        self._recorded: dict[str, str] = {}

    def cache(self, source: GitSource) -> GitCache:
        """Return the cache for the source's URL; a new URL starts a new cache."""
        if self._cache is None or self._cache.url != source.spec.url:
            if self._cache is not None:
                self._cache.remove()
            self._cache = GitCache(self.cache_dir, source.spec.url, timeout=self.timeout)
        return self._cache

    async def fetch_and_parse(self, source: GitSource) -> ParsedTree:
        """Fetch the source's ref and parse its path at that commit. Raises GitError."""
        cache = self.cache(source)
        commit = await cache.fetch(source.spec.ref)
        requested = (commit, source.spec.path)
        if self._parsed is not None and self._parsed[0] == requested:
            return self._parsed[1]
        root = await cache.export(commit, source.spec.path)
        tree = await asyncio.to_thread(parse_tree, commit, root, source.spec.path)
        self._parsed = (requested, tree)
        return tree

    async def plan(self, source: GitSource) -> SyncPlan:
        """Fetch, parse and plan a sync without changing anything. Raises GitError."""
        tree = await self.fetch_and_parse(source)
        writer = git_writer(source.metadata.namespace, source.metadata.name)
        return plan_sync(source, tree, await list_owned(self.store, writer))

    async def sync(self, source: GitSource) -> Outcome:
        """Run one sync of ``source`` and return its outcome for the status."""
        writer = git_writer(source.metadata.namespace, source.metadata.name)
        try:
            plan = await self.plan(source)
        except GitError as error:
            return await self._fetch_failed(source, writer, error)
        await self._record_once("fetch", None)

        try:
            applied = await self._apply(source, plan)
            pruned = await self._prune(source, plan)
            await self._report_issues(source, plan)
        except StoreError as error:
            logger.warning("git sync failed; will retry: %s", error, extra={"source": writer})
            return Outcome(Reason.APPLY_FAILED, f"store error while applying: {error}")

        if applied.created or applied.updated or pruned:
            await git_report.record_commit_applied(
                self.event_log,
                writer,
                commit=plan.commit,
                created=applied.created,
                updated=applied.updated,
                pruned=len(pruned),
            )
        inventory = (set(plan.owned) | applied.keys) - pruned
        return await self._outcome(writer, plan, applied, inventory)

    async def _fetch_failed(self, source: GitSource, writer: str, error: GitError) -> Outcome:
        message = (
            f"fetch of {redact_url(source.spec.url)} ({source.spec.ref.describe()}) failed: "
            f"{error}; nothing was applied or pruned, and the last applied objects stay"
        )
        if await self._record_once("fetch", message):
            logger.warning("git fetch failed: %s", error, extra={"source": writer})
            await git_report.record_fetch_failed(self.event_log, writer, message)
        return Outcome(Reason.FETCH_FAILED, message)

    async def _outcome(
        self, writer: str, plan: SyncPlan, applied: Applied, inventory: set[ObjectKey]
    ) -> Outcome:
        outcome = Outcome(
            Reason.SYNCED,
            f"applied commit {plan.commit[:12]}: {len(inventory)} object(s)",
            fetched_commit=plan.commit,
            applied_commit=plan.commit,
            inventory=inventory,
            issues=plan.issues,
            conflicts=applied.conflicts,
        )
        if plan.guard is not None:
            if await self._record_once("empty", plan.guard):
                await git_report.record_empty_path(self.event_log, writer, plan.guard)
            outcome.reason, outcome.message, outcome.stalled = Reason.EMPTY_PATH, plan.guard, True
            outcome.applied_commit = None
            return outcome
        await self._record_once("empty", None)
        if plan.issues:
            first = plan.issues[min(plan.issues)]
            outcome.reason = Reason.INVALID_MANIFESTS
            outcome.message = (
                f"{len(plan.issues)} manifest file(s) at commit {plan.commit[:12]} were not "
                f"applied and keep their objects; the first: {first}"
            )
            outcome.stalled = True
        elif applied.conflicts:
            first_conflict = applied.conflicts[0]
            outcome.reason = Reason.OWNERSHIP_CONFLICT
            outcome.message = (
                f"{len(applied.conflicts)} object(s) are managed by another source and were "
                f"not applied; the first: {first_conflict.kind} {first_conflict.namespace}/"
                f"{first_conflict.name} is managed by {first_conflict.owner}"
            )
        return outcome

    # Applying and pruning.

    async def _apply(self, source: GitSource, plan: SyncPlan) -> Applied:
        namespace, name = source.metadata.namespace, source.metadata.name
        writer = git_writer(namespace, name)
        inventory = inventory_keys(source.status)
        result = Applied()
        for key in sorted(plan.desired):
            desired = plan.desired[key]
            source_id = git_source_id(namespace, name, desired.file)
            claim = _InventoryClaim(source_id, owned=key in inventory)
            try:
                _, outcome = await apply(
                    self.store, desired.resource, source=source_id, claim=claim
                )
            except OwnedByOtherSource as error:
                await self._conflict(writer, desired, error.owner, result)
                continue
            await self._applied(writer, desired, outcome, claim.seen_owner, plan.commit, result)
        self._digests = {key: desired_digest(plan.desired[key]) for key in result.keys}
        self._forget_conflicts({(c.kind, c.namespace, c.name) for c in result.conflicts})
        return result

    async def _applied(
        self,
        writer: str,
        desired: Desired,
        outcome: ApplyOutcome,
        previous_owner: str | None,
        commit: str,
        result: Applied,
    ) -> None:
        result.keys.add(desired.key)
        if outcome is ApplyOutcome.CREATED:
            result.created += 1
            return
        if outcome is not ApplyOutcome.UPDATED:
            return
        result.updated += 1
        taken_over = previous_owner is not None and source_owner(previous_owner) != writer
        if taken_over or self._digests.get(desired.key) == desired_digest(desired):
            await git_report.record_drift(
                self.event_log,
                writer,
                desired.key,
                commit=commit,
                previous_owner=previous_owner if taken_over else None,
            )

    async def _conflict(self, writer: str, desired: Desired, owner: str, result: Applied) -> None:
        kind, namespace, name = desired.key
        result.conflicts.append(
            OwnershipConflict(
                kind=kind, namespace=namespace, name=name, file=desired.file, owner=owner
            )
        )
        if await self._record_once(f"conflict:{desired.key}", f"{desired.file}\0{owner}"):
            logger.warning(
                "object managed by another source; not applied",
                extra={"instance": f"{namespace}/{name}", "source": writer, "owner": owner},
            )
            await git_report.record_rejected(
                self.event_log, writer, desired.key, file=desired.file, owner=owner
            )

    def _forget_conflicts(self, current: set[ObjectKey]) -> None:
        for identity in [name for name in self._recorded if name.startswith("conflict:")]:
            if not any(identity == f"conflict:{key}" for key in current):
                del self._recorded[identity]

    async def _prune(self, source: GitSource, plan: SyncPlan) -> set[ObjectKey]:
        namespace, name = source.metadata.namespace, source.metadata.name
        writer = git_writer(namespace, name)
        deleted: set[ObjectKey] = set()
        present = set(self._parsed[1].documents) if self._parsed else set()
        for key in plan.prune:
            stored = plan.owned[key]
            owner = owner_of(stored) or writer
            if not await delete_if_owned(self.store, *key, owner, whole_writer=True):
                continue
            deleted.add(key)
            self._digests.pop(key, None)
            file = file_of(owner)
            await record_deleted(
                self.event_log, file, key, file_removed=file not in present, source=writer
            )
        return deleted

    # Manifest errors.

    async def _report_issues(self, source: GitSource, plan: SyncPlan) -> None:
        namespace, name = source.metadata.namespace, source.metadata.name
        by_file: dict[str, set[ObjectKey]] = {}
        for key, stored in plan.owned.items():
            by_file.setdefault(file_of(owner_of(stored) or ""), set()).add(key)
        for file, error in sorted(plan.issues.items()):
            if await self._record_once(f"file:{file}", str(error)):
                logger.warning("manifest file invalid: %s", error, extra={"file": file})
                await record_invalid(
                    self.store,
                    self.event_log,
                    file,
                    by_file.get(file, set()),
                    error,
                    source=git_source_id(namespace, name, file),
                )
        for identity in [key for key in self._recorded if key.startswith("file:")]:
            file = identity.removeprefix("file:")
            if file not in plan.issues:
                del self._recorded[identity]
                await self._mark_valid_again(file, by_file.get(file, set()), plan.commit)

    async def _mark_valid_again(self, file: str, keys: set[ObjectKey], commit: str) -> None:
        message = f"{file} is valid again at commit {commit[:12]}"
        for key in sorted(keys):
            await set_source_synced(
                self.store, key, synced=True, reason=REASON_APPLIED, message=message
            )

    async def _record_once(self, topic: str, identity: str | None) -> bool:
        """Remember ``identity`` for ``topic``; return True when it differs from the last one.

        None clears the topic, so that the same failure is recorded again if it comes back.
        """
        if identity is None:
            self._recorded.pop(topic, None)
            return False
        if self._recorded.get(topic) == identity:
            return False
        self._recorded[topic] = identity
        return True
