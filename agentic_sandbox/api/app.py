"""The HTTP API application: routes, bearer authentication and problem-document errors.

The app keeps no state of its own. It reads and writes desired state through the store and reads
the event log. Its runtime calls are read-only: the image listing, the sandbox listing that a
dry run plans against, and log streams. The caller owns the store's lifetime.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware

from agentic_sandbox.api.auth import BearerAuthMiddleware, check_token
from agentic_sandbox.api.compat_containers import ContainerRoutes
from agentic_sandbox.api.compat_vms import VmRoutes
from agentic_sandbox.api.dashboard_routes import DashboardRoutes
from agentic_sandbox.api.dryrun import DryRunner
from agentic_sandbox.api.events import EventLog, EventRoutes
from agentic_sandbox.api.exec import ExecRoutes
from agentic_sandbox.api.gc import Collector, GcRoutes
from agentic_sandbox.api.gitsources import GitSourceRoutes, GitSyncer
from agentic_sandbox.api.health import HEALTH_PATHS, HealthRoutes
from agentic_sandbox.api.images import DEFAULT_CATALOG_PATH, ImageCatalog, ImageRoutes
from agentic_sandbox.api.instances import InstanceRoutes
from agentic_sandbox.api.limits import BodyDeadlineMiddleware
from agentic_sandbox.api.loadouts import LoadoutRoutes
from agentic_sandbox.api.logs import LogRoutes
from agentic_sandbox.api.metrics import METRICS_PATH, MetricSources, MetricsRoutes, QueueStats
from agentic_sandbox.api.missions import MissionRoutes
from agentic_sandbox.api.openapi import OpenApiRoutes
from agentic_sandbox.api.problems import EXCEPTION_HANDLERS
from agentic_sandbox.api.timing import RequestDurations, RequestTimingMiddleware
from agentic_sandbox.api.verbs import VerbRoutes
from agentic_sandbox.controller.agent_commands import CommandRunner
from agentic_sandbox.controller.loadouts import LoadoutCatalog
from agentic_sandbox.controller.metrics import ControllerMetrics
from agentic_sandbox.controller.missions import MissionDispatcher
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.runtimes.base import Runtime
from agentic_sandbox.store.base import Store


def create_app(
    *,
    store: Store,
    event_log: EventLog,
    token: str,
    gc: Collector | None = None,
    runtime: Runtime | None = None,
    image_catalog: Path = DEFAULT_CATALOG_PATH,
    controller_metrics: ControllerMetrics | None = None,
    queue: QueueStats | None = None,
    controller_id: str | None = None,
    loadouts: LoadoutCatalog | None = None,
    git_sync: GitSyncer | None = None,
    commands: CommandRunner | None = None,
    missions: MissionDispatcher | None = None,
) -> Starlette:
    """Build the API app. Every route except the health probes, ``/metrics`` and the
    dashboard's static files requires ``token`` as a bearer.

    ``gc`` serves the garbage collection route; without it that route returns 503. Raises
    ValueError when ``token`` is empty, so the API never runs unauthenticated.
    ``runtime`` is used only to read which catalog images (``image_catalog``) exist locally;
    without it their presence is reported as unknown.
    ``runtime`` also serves instance logs and the planned operations of dry runs, which list
    the sandboxes labelled with ``controller_id`` (all controllers' when it is None); without
    a runtime, logs answer 503 and dry runs plan nothing.
    ``controller_metrics`` and ``queue`` feed the controller families of ``/metrics``, which
    needs no token; without them those families have no series.
    ``loadouts`` serves the loadout routes; without it they serve the store's Loadout
    resources only, with no loadout directory.
    ``git_sync`` serves the GitSource sync (webhook) and diff routes; without it they
    return 503.
    ``commands`` runs exec requests through the sandboxes' agents; without it exec returns 503.
    ``missions`` dispatches missions and serves their records and output; without it the
    mission routes return 503.
    """
    check_token(token)
    event_routes = EventRoutes(event_log)
    dashboard = DashboardRoutes()
    dry_run = DryRunner(runtime, controller_id=controller_id)
    routes = [
        *HealthRoutes(store).routes(),
        *InstanceRoutes(store, EventRecorder(event_log), dry_run=dry_run).routes(),
        *LoadoutRoutes(store, loadouts or LoadoutCatalog(store, None)).routes(),
        *GitSourceRoutes(store, git_sync).routes(),
        *VerbRoutes(store, EventRecorder(event_log), dry_run=dry_run).routes(),
        *LogRoutes(store, runtime, controller_id=controller_id).routes(),
        *event_routes.routes(),
        *GcRoutes(gc).routes(),
        *ContainerRoutes(store, EventRecorder(event_log)).routes(),
        *VmRoutes(store, EventRecorder(event_log)).routes(),
        *ImageRoutes(ImageCatalog(image_catalog), runtime).routes(),
        *ExecRoutes(store, commands).routes(),
        *MissionRoutes(missions).routes(),
        *OpenApiRoutes().routes(),
        *dashboard.routes(),
    ]
    durations = RequestDurations()
    metric_sources = MetricSources(
        controller=controller_metrics,
        queue=queue,
        sse_subscribers=lambda: event_routes.subscribers.current,
    )
    routes += MetricsRoutes(store, durations=durations, sources=metric_sources).routes()
    # The dashboard's files hold no data; the page sends the token with each API call.
    public_paths = HEALTH_PATHS | {METRICS_PATH} | dashboard.public_paths
    # Outermost first: timing measures every request, including those the later layers reject.
    middleware = [
        Middleware(RequestTimingMiddleware, routes=routes, durations=durations),
        Middleware(BodyDeadlineMiddleware),
        Middleware(BearerAuthMiddleware, token=token, public_paths=public_paths),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS)
    # The open event streams, as an SseSubscriberGauge, for the metrics route.
    app.state.sse_subscribers = event_routes.subscribers
    return app
