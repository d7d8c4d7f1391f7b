"""The ``/metrics`` route: controller, store and API metrics in the Prometheus text format.

The route needs no bearer token, so that a Prometheus server can scrape it with no secret. It
serves the text exposition format 0.0.4, rendered by ``prometheus_client``. Every value is read
at scrape time. The sources are the controller's counters and histograms, the work queue's
current sizes, one store listing of Instances (counted by phase and runtime), the server-sent
event subscriber count, and the API's own request durations.

Every family has HELP and TYPE lines and one label set for all its series. A family whose source
this server does not have (an API run without a controller, say) has HELP and TYPE but no series.
Closed label sets (results, phases, runtimes, GC types) are filled with zeros, so a series does
not appear only after its first event.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, get_args

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentic_sandbox.api.timing import RequestDurations
from agentic_sandbox.controller.gc import TargetType
from agentic_sandbox.controller.metrics import RECONCILE_RESULTS, ControllerMetrics, Histogram
from agentic_sandbox.crds.instance import Instance, InstanceSpec, Phase
from agentic_sandbox.errors import StoreError
from agentic_sandbox.store.base import Store

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "agentic_sandbox_"

RUNTIMES: tuple[str, ...] = get_args(InstanceSpec.model_fields["runtime"].annotation)
GC_SWEEP_RESULTS = ("succeeded", "failed")

SubscriberCount = Callable[[], int]


class QueueStats(Protocol):
    """The work queue as metrics read it."""

    @property
    def depth(self) -> int: ...

    @property
    def delayed(self) -> int: ...

    @property
    def processing(self) -> int: ...

    @property
    def retries(self) -> int: ...


@dataclass
class MetricSources:
    """The sources ``/metrics`` reads at each scrape. A None source leaves its families empty."""

    controller: ControllerMetrics | None = None
    queue: QueueStats | None = None
    sse_subscribers: SubscriberCount | None = None


def _bucket_bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _add_histogram(
    family: HistogramMetricFamily, labels: Sequence[str], histogram: Histogram
) -> None:
    buckets = [(_bucket_bound(bound), float(count)) for bound, count in histogram.cumulative()]
    family.add_metric(list(labels), buckets, histogram.sum)


def _counter(name: str, documentation: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, documentation, labels=list(labels))


def _gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=list(labels))


def controller_families(metrics: ControllerMetrics | None) -> list[Metric]:
    """Render the reconcile, error and garbage collection families."""
    durations = HistogramMetricFamily(
        PREFIX + "reconcile_duration_seconds",
        "Time taken by one reconcile of one instance, by result (success or error).",
        labels=["result"],
    )
    errors = _counter(
        "reconcile_errors", "Reconciles that raised, by error reason.", labels=["reason"]
    )
    relists = _counter("store_relists", "Full store listings after a watch was lost or expired.")
    streams = _counter(
        "runtime_event_streams", "Runtime event streams opened, reconnects included."
    )
    removals = _counter(
        "gc_removals", "Objects removed by the garbage collector, by type.", labels=["type"]
    )
    sweeps = _counter("gc_sweeps", "Garbage collection sweeps, by result.", labels=["result"])
    families: list[Metric] = [durations, errors, relists, streams, removals, sweeps]
    if metrics is None:
        return families

    for result in sorted({*RECONCILE_RESULTS, *metrics.reconcile_duration}):
        histogram = metrics.reconcile_duration.get(result) or Histogram()
        _add_histogram(durations, [result], histogram)
    for reason, count in sorted(metrics.errors.items()):
        errors.add_metric([reason], count)
    relists.add_metric([], metrics.store_relists)
    streams.add_metric([], metrics.runtime_event_streams)
    for target in sorted({*(kind.value for kind in TargetType), *metrics.gc_removals}):
        removals.add_metric([target], metrics.gc_removals[target])
    for result in sorted({*GC_SWEEP_RESULTS, *metrics.gc_sweeps}):
        sweeps.add_metric([result], metrics.gc_sweeps[result])
    return families


def queue_families(queue: QueueStats | None) -> list[Metric]:
    """Render the work queue's gauges and its retry counter."""
    depth = _gauge("workqueue_depth", "Instance keys ready and waiting for a worker.")
    delayed = _gauge(
        "workqueue_delayed_keys", "Instance keys waiting for a retry or requeue deadline."
    )
    processing = _gauge("workqueue_processing_keys", "Instance keys being reconciled now.")
    retries = _counter("workqueue_retries", "Keys requeued with backoff after a failed reconcile.")
    if queue is not None:
        depth.add_metric([], queue.depth)
        delayed.add_metric([], queue.delayed)
        processing.add_metric([], queue.processing)
        retries.add_metric([], queue.retries)
    return [depth, delayed, processing, retries]


def instance_families(instances: Sequence[Instance] | None) -> list[Metric]:
    """Render the count of instances by phase and runtime; None when the listing failed."""
    family = _gauge(
        "instances", "Instances in the store, by status phase and runtime.", ["phase", "runtime"]
    )
    if instances is None:
        return [family]

    counts = {(phase.value, runtime): 0 for phase in Phase for runtime in RUNTIMES}
    for instance in instances:
        key = (instance.status.phase.value, instance.spec.runtime)
        counts[key] = counts.get(key, 0) + 1
    for (phase, runtime), count in sorted(counts.items()):
        family.add_metric([phase, runtime], count)
    return [family]


def api_families(
    durations: RequestDurations, sse_subscribers: SubscriberCount | None
) -> list[Metric]:
    """Render the API request duration histogram and the event stream subscriber gauge."""
    requests = HistogramMetricFamily(
        PREFIX + "http_request_duration_seconds",
        "Time from a request's arrival until its response headers are sent, by route template, "
        "method and status code.",
        labels=["route", "method", "status"],
    )
    for labels, histogram in durations.items():
        _add_histogram(requests, labels, histogram)
    subscribers = _gauge("sse_subscribers", "Clients following the event stream now.")
    if sse_subscribers is not None:
        subscribers.add_metric([], sse_subscribers())
    return [requests, subscribers]


class _Scrape(Collector):
    """The families of one scrape, already computed."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class MetricsRoutes:
    def __init__(
        self, store: Store, *, durations: RequestDurations, sources: MetricSources
    ) -> None:
        self._store = store
        self._durations = durations
        self.sources = sources

    def routes(self) -> list[Route]:
        return [Route(METRICS_PATH, self.metrics, methods=["GET"])]

    async def metrics(self, request: Request) -> Response:
        instances = await self._list_instances()
        families = [
            *controller_families(self.sources.controller),
            *queue_families(self.sources.queue),
            *instance_families(instances),
            *api_families(self._durations, self.sources.sse_subscribers),
        ]
        return Response(generate_latest(_Scrape(families)), media_type=CONTENT_TYPE)

    async def _list_instances(self) -> list[Instance] | None:
        try:
            listing = await self._store.list(Instance.KIND)
        except StoreError as error:
            # The other families are still worth serving while the store is down.
            logger.warning("metrics scrape could not list instances error=%s", error)
            return None
        return [item for item in listing.items if isinstance(item, Instance)]
