"""Server-side dry run: ``dryRun=All`` on every write route.

A dry-run request runs the route's own code against a ``DryRunStore``, which reads through to
the real store and computes what each write would store without writing anything. So a dry run
passes exactly the checks of the real request: validation, ownership, resourceVersion
preconditions. Events that the route would record are discarded.

The response is a ``DryRunResult`` instead of the object itself:

    apiVersion         sandbox.agentic.dev/v1alpha1
    kind               DryRunResult
    action             create, apply, patch, delete, start, stop or restart
    outcome            created, updated, unchanged, marked (deletionTimestamp set; the record
                       stays until its sandboxes are removed) or deleted (the record goes at once)
    object             the object as it would be stored; null when its record would go at once
    plannedOperations  [{kind, cause, sandboxId}] that the controller's planner would run next,
                       from the would-be object and the sandboxes the runtime has for its uid;
                       null when the runtime could not be read (``warnings`` says why)
    warnings           sentences about what the dry run could not check

The status code is that of the real request (201 for a create). The would-be object keeps the
stored ``resourceVersion``, because a real write assigns the next value of the store's counter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from agentic_sandbox.api.params import bad_parameter
from agentic_sandbox.controller.desired import desired_hashes
from agentic_sandbox.controller.plan import Observation, plan
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.event import Event
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import API_VERSION, Resource, utcnow
from agentic_sandbox.crds.registry import resource_from_wire
from agentic_sandbox.crds.spechash import HASH_SCHEMA_VERSION
from agentic_sandbox.errors import (
    AlreadyExists,
    Conflict,
    InvalidRuntimeSpec,
    NotFound,
    RuntimeFailure,
)
from agentic_sandbox.runtimes.base import LABEL_CONTROLLER, LABEL_UID, Runtime
from agentic_sandbox.runtimes.router import driver_for
from agentic_sandbox.store.base import ListResult, Store, WatchEvent

logger = logging.getLogger(__name__)

DRY_RUN_KIND = "DryRunResult"
DRY_RUN_PARAMETER = "dryRun"
# Values of ``dryRun`` that ask for a dry run. Kubernetes uses "All"; "true" matches gc's flag.
DRY_RUN_VALUES = frozenset({"All", "all", "true"})


def query_dry_run(request: Request) -> bool:
    """Return True when the request carries ``dryRun=All``; raise 400 for any other value."""
    raw = request.query_params.get(DRY_RUN_PARAMETER)
    if raw is None or raw in ("", "false"):
        return False
    if raw in DRY_RUN_VALUES:
        return True
    raise bad_parameter(DRY_RUN_PARAMETER, raw, "expected All (or true) for a dry run")


class _DiscardedEvents:
    """An event sink that keeps nothing, for the events a dry run would record."""

    async def append(self, event: Event) -> Event:
        return event


def discarding_recorder() -> EventRecorder:
    return EventRecorder(_DiscardedEvents())


def _wire_without_status(obj: Resource) -> dict[str, Any]:
    wire = obj.to_wire()
    wire.pop("status", None)
    return wire


class DryRunStore:
    """A Store that reads from ``store`` and returns what each write would store, writing nothing.

    Writes follow the Store protocol's rules: preconditions on resourceVersion and uid, a new
    ``generation`` only when the normalized spec changed, and deletion that only marks an
    object while finalizers remain.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, kind: str, namespace: str, name: str) -> Resource:
        return await self._store.get(kind, namespace, name)

    async def list(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> ListResult:
        return await self._store.list(kind, namespace=namespace, labels=labels)

    async def list_json(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        phase: str | None = None,
    ) -> tuple[Sequence[str], int]:
        return await self._store.list_json(kind, namespace=namespace, labels=labels, phase=phase)

    async def create(self, obj: Resource) -> Resource:
        try:
            await self._store.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f"{obj.kind} {obj.key} already exists")
        wire = _wire_without_status(obj)
        server_set = ("uid", "resourceVersion", "deletionTimestamp")
        metadata = {key: value for key, value in wire["metadata"].items() if key not in server_set}
        metadata.update(generation=1, creationTimestamp=utcnow().isoformat())
        return resource_from_wire({**wire, "metadata": metadata})

    async def update(self, obj: Resource) -> Resource:
        stored = await self._store.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
        _check_preconditions(stored, obj)
        request = obj.to_wire()["metadata"]
        stored_wire = stored.to_wire()
        metadata = {
            **stored_wire["metadata"],
            "labels": request.get("labels", {}),
            "annotations": request.get("annotations", {}),
            "finalizers": request.get("finalizers", []),
        }
        updated = resource_from_wire({**stored_wire, "metadata": metadata, "spec": obj.spec})
        if updated.to_wire().get("spec") != stored_wire.get("spec"):
            updated.metadata.generation = (stored.metadata.generation or 1) + 1
        return updated

    async def update_status(self, obj: Resource) -> Resource:
        stored = await self._store.get(obj.kind, obj.metadata.namespace, obj.metadata.name)
        _check_preconditions(stored, obj)
        return stored.model_copy(update={"status": obj.status})

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Resource | None:
        stored = await self._store.get(kind, namespace, name)
        if resource_version is not None and resource_version != stored.metadata.resource_version:
            raise Conflict(
                f"{kind} {namespace}/{name} was modified: the request has resourceVersion "
                f"{resource_version} but the stored object has "
                f"{stored.metadata.resource_version}; read it again and retry"
            )
        if not stored.metadata.finalizers:
            return None
        if stored.metadata.deletion_timestamp is None:
            stored.metadata.deletion_timestamp = utcnow()
        return stored

    def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        return self._store.watch(kind, since)

    async def close(self) -> None:
        """Leave the real store open: its owner closes it."""


def _check_preconditions(stored: Resource, request: Resource) -> None:
    expected = request.metadata.resource_version
    if expected is not None and expected != stored.metadata.resource_version:
        raise Conflict(
            f"{stored.kind} {stored.key} was modified: the request has resourceVersion "
            f"{expected} but the stored object has {stored.metadata.resource_version}; "
            "read it again and retry"
        )
    uid = request.metadata.uid
    if uid is not None and uid != stored.metadata.uid:
        raise Conflict(
            f"{stored.kind} {stored.key} was deleted and created again: the request has uid "
            f"{uid} but the stored object has {stored.metadata.uid}"
        )


class DryRunner:
    """Builds dry-run responses, planning with read-only runtime access when a runtime is given.

    ``controller_id`` narrows the runtime listing to this controller's sandboxes, as the
    reconciler does; without it, the instance uid alone selects them.
    """

    def __init__(self, runtime: Runtime | None = None, *, controller_id: str | None = None) -> None:
        self._runtime = runtime
        self._controller_id = controller_id

    async def planned_operations(
        self, obj: Resource | None
    ) -> tuple[list[dict[str, str | None]] | None, list[str]]:
        """Plan for the would-be object; return the operations (or None) and warnings."""
        if obj is None or not isinstance(obj, Instance):
            return [], []
        if self._runtime is None:
            return None, ["the API has no runtime access, so no operations were planned"]
        try:
            # The same rule as the reconciler's, which stalls an instance of a runtime it lacks.
            driver = driver_for(self._runtime, obj.spec.runtime)
        except InvalidRuntimeSpec as error:
            return [], [f"{error}; nothing would be done"]
        sandboxes = []
        if obj.metadata.uid is not None:
            selector = {LABEL_UID: obj.metadata.uid}
            if self._controller_id is not None:
                selector[LABEL_CONTROLLER] = self._controller_id
            try:
                sandboxes = await driver.list_owned(selector)
            except RuntimeFailure as error:
                logger.warning("dry run could not list sandboxes instance=%s", obj.key)
                return None, [f"the runtime could not be read, so nothing was planned: {error}"]
        hashes = desired_hashes(obj)
        observation = Observation(
            instance=obj,
            sandboxes=sandboxes,
            now=utcnow(),
            desired_hash=hashes[str(HASH_SCHEMA_VERSION)],
            hashes_by_schema=hashes,
        )
        operations = [
            {"kind": op.kind.value, "cause": op.cause, "sandboxId": op.sandbox_id}
            for op in plan(observation).operations
        ]
        return operations, []

    async def respond(
        self,
        obj: Resource | None,
        *,
        action: str,
        outcome: str,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        with_plan: bool = True,
    ) -> JSONResponse:
        """Build the DryRunResult response; ``with_plan=False`` leaves plannedOperations empty."""
        operations: list[dict[str, str | None]] | None = []
        warnings: list[str] = []
        if with_plan:
            operations, warnings = await self.planned_operations(obj)
        body = {
            "apiVersion": API_VERSION,
            "kind": DRY_RUN_KIND,
            "action": action,
            "outcome": outcome,
            "object": obj.to_wire() if obj is not None else None,
            "plannedOperations": operations,
            "warnings": warnings,
        }
        return JSONResponse(body, status_code=status_code, headers=headers)
