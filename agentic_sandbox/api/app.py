"""The HTTP API application: routes, bearer authentication and problem-document errors.

The app keeps no state of its own. It reads and writes desired state through the store and reads
the event log; it never calls a runtime. The caller owns the store's lifetime.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from agentic_sandbox.api.auth import BearerAuthMiddleware, check_token
from agentic_sandbox.api.events import EventLog, EventRoutes
from agentic_sandbox.api.gc import Collector, GcRoutes
from agentic_sandbox.api.health import HEALTH_PATHS, HealthRoutes
from agentic_sandbox.api.instances import InstanceRoutes
from agentic_sandbox.api.problems import EXCEPTION_HANDLERS
from agentic_sandbox.api.verbs import VerbRoutes
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.store.base import Store


def create_app(
    *, store: Store, event_log: EventLog, token: str, gc: Collector | None = None
) -> Starlette:
    """Build the API app. Every route except the health probes requires ``token`` as a bearer.

    ``gc`` serves the garbage collection route; without it that route answers 503. Raises
    ValueError when ``token`` is empty, so the API never runs unauthenticated.
    """
    check_token(token)
    routes = [
        *HealthRoutes(store).routes(),
        *InstanceRoutes(store, EventRecorder(event_log)).routes(),
        *VerbRoutes(store, EventRecorder(event_log)).routes(),
        *EventRoutes(event_log).routes(),
        *GcRoutes(gc).routes(),
    ]
    middleware = [Middleware(BearerAuthMiddleware, token=token, public_paths=HEALTH_PATHS)]
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS)
