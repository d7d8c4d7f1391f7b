"""Health probes, served without authentication.

``/healthz`` reports that the process serves HTTP. ``/readyz`` reports that the control plane
works, meaning the store returns a list. It does not wait for agents or containers.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agentic_sandbox.api.problems import problem_response
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.errors import StoreError
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


class HealthRoutes:
    def __init__(self, store: Store) -> None:
        self._store = store

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self, request: Request) -> Response:
        try:
            await self._store.list(Instance.KIND, namespace="default")
        except StoreError as exc:
            logger.warning("readiness check failed: store unavailable", extra={"error": str(exc)})
            return problem_response(
                503, f"the store does not answer: {exc}", kind="StoreUnavailable"
            )
        return PlainTextResponse("ok")
