"""The garbage collection routes: the last pass, a sweep now, or what one would remove.

``GET /api/v1/gc`` returns a ``GarbageCollectionStatus`` document: whether the periodic sweep is
on, and the last pass that was not a dry run (``lastPass``: ``finishedAt``, ``error`` when its
listing failed, and ``items`` as below), or null before the first.

``POST /api/v1/gc/sweep`` runs one pass of the controller's garbage collector under its usual
rules and returns every candidate with its reason. With ``dryRun=true`` nothing is removed. The
response is a ``GarbageCollection`` document whose ``items`` carry ``type`` (container or
workspace), ``id``, ``name``, ``instance``, ``uid``, ``reason``, ``message`` and ``result``:
``WouldRemove`` in a dry run, else ``Removed``, ``Kept`` (the object changed since the listing)
or ``Failed``, the last two with ``error``. A failed container or store listing returns 503.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentic_sandbox.api.params import bad_parameter
from agentic_sandbox.api.problems import ApiProblem
from agentic_sandbox.controller.gc import Candidate, LastPass, SweepResult
from agentic_sandbox.crds.meta import API_VERSION

GC_PATH = "/api/v1/gc"
GC_SWEEP_PATH = "/api/v1/gc/sweep"
KIND = "GarbageCollection"
STATUS_KIND = "GarbageCollectionStatus"


class Collector(Protocol):
    last_pass: LastPass | None

    @property
    def enabled(self) -> bool: ...

    async def sweep(self, *, dry_run: bool = False) -> SweepResult: ...


def query_dry_run(request: Request) -> bool:
    raw = request.query_params.get("dryRun")
    if raw is None or raw == "":
        return False
    value = raw.lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise bad_parameter("dryRun", raw, "expected true or false")


def _outcome(candidate: Candidate, result: SweepResult) -> tuple[str, str | None]:
    if result.dry_run:
        return "WouldRemove", None
    if candidate.id in result.failed:
        return "Failed", result.failed[candidate.id]
    if candidate.id in result.kept:
        return "Kept", result.kept[candidate.id]
    return "Removed", None


def candidate_wire(candidate: Candidate, result: SweepResult) -> dict[str, object]:
    outcome, error = _outcome(candidate, result)
    item: dict[str, object] = {
        "type": candidate.type.value,
        "id": candidate.id,
        "name": candidate.name,
        "instance": candidate.instance,
        "uid": candidate.uid,
        "reason": candidate.reason.value,
        "message": candidate.message,
        "result": outcome,
    }
    if error is not None:
        item["error"] = error
    return item


def sweep_wire(result: SweepResult) -> dict[str, object]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "dryRun": result.dry_run,
        "items": [candidate_wire(candidate, result) for candidate in result.candidates],
    }


def last_pass_wire(last: LastPass | None) -> dict[str, object] | None:
    if last is None:
        return None
    items = [] if last.result is None else sweep_wire(last.result)["items"]
    return {"finishedAt": last.finished_at.isoformat(), "error": last.error, "items": items}


class GcRoutes:
    """Handlers of the collector's routes. Without a collector they return 503."""

    def __init__(self, collector: Collector | None) -> None:
        self._collector = collector

    def routes(self) -> list[Route]:
        return [
            Route(GC_PATH, self.status, methods=["GET"]),
            Route(GC_SWEEP_PATH, self.sweep, methods=["POST"]),
        ]

    async def status(self, request: Request) -> JSONResponse:
        collector = self._require()
        return JSONResponse(
            {
                "apiVersion": API_VERSION,
                "kind": STATUS_KIND,
                "enabled": collector.enabled,
                "lastPass": last_pass_wire(collector.last_pass),
            }
        )

    def _require(self) -> Collector:
        if self._collector is None:
            raise ApiProblem(
                503, "this server runs no garbage collector", kind="GarbageCollectorUnavailable"
            )
        return self._collector

    async def sweep(self, request: Request) -> JSONResponse:
        dry_run = query_dry_run(request)
        result = await self._require().sweep(dry_run=dry_run)
        return JSONResponse(sweep_wire(result))
