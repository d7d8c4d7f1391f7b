"""The ``/metrics`` route: Prometheus text format, every family, and counts that move.

The app runs over a real SqliteStore with a real WorkQueue, WorkerPool and ControllerMetrics;
the exposition is parsed with prometheus_client's own text parser.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from agentic_sandbox.api.app import create_app
from agentic_sandbox.api.sse import SseSubscriberGauge
from agentic_sandbox.api.timing import UNMATCHED_ROUTE
from agentic_sandbox.controller.backoff import ExponentialBackoff, RetryLimiter, TokenBucket
from agentic_sandbox.controller.metrics import DURATION_BUCKETS, ControllerMetrics
from agentic_sandbox.controller.queue import WorkQueue
from agentic_sandbox.controller.reconciler import Result
from agentic_sandbox.controller.workers import WorkerPool
from agentic_sandbox.crds.instance import Phase
from agentic_sandbox.errors import StoreUnavailable
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, TOKEN, manifest

# Seconds a polled condition may take before the test fails.
DEADLINE = 5.0

FAMILY_TYPES = {
    "agentic_sandbox_reconcile_duration_seconds": "histogram",
    "agentic_sandbox_reconcile_errors": "counter",
    "agentic_sandbox_store_relists": "counter",
    "agentic_sandbox_runtime_event_streams": "counter",
    "agentic_sandbox_gc_removals": "counter",
    "agentic_sandbox_gc_sweeps": "counter",
    "agentic_sandbox_workqueue_depth": "gauge",
    "agentic_sandbox_workqueue_delayed_keys": "gauge",
    "agentic_sandbox_workqueue_processing_keys": "gauge",
    "agentic_sandbox_workqueue_retries": "counter",
    "agentic_sandbox_instances": "gauge",
    "agentic_sandbox_http_request_duration_seconds": "histogram",
    "agentic_sandbox_sse_subscribers": "gauge",
}


@dataclass
class Harness:
    app: Starlette
    http: httpx.AsyncClient
    metrics: ControllerMetrics
    queue: WorkQueue

    async def scrape(self) -> dict[str, Metric]:
        response = await self.http.get("/metrics")
        assert response.status_code == 200, response.text
        return {family.name: family for family in text_string_to_metric_families(response.text)}


def _queue() -> WorkQueue:
    return WorkQueue(
        RetryLimiter(ExponentialBackoff(base=0.05, cap=1.0), TokenBucket(rate=50.0, burst=50))
    )


@pytest.fixture
async def harness(store: SqliteStore) -> AsyncIterator[Harness]:
    metrics = ControllerMetrics()
    queue = _queue()
    app = create_app(
        store=store, event_log=store.events, token=TOKEN, controller_metrics=metrics, queue=queue
    )
    # No Authorization header: /metrics must not need one.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        yield Harness(app=app, http=http, metrics=metrics, queue=queue)


def sample_value(family: Metric, suffix: str = "", **labels: str) -> float:
    """Return the value of the one sample named ``family.name + suffix`` with exactly ``labels``."""
    matches = [
        sample.value
        for sample in family.samples
        if sample.name == family.name + suffix and sample.labels == labels
    ]
    assert len(matches) == 1, f"{family.name}{suffix}{labels} in {family.samples}"
    return matches[0]


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until it holds, failing after DEADLINE seconds.

    Only for worker progress, which the pool announces to no one.
    """
    async with asyncio.timeout(DEADLINE):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


# Format


async def test_metrics_served_without_token(harness: Harness) -> None:
    response = await harness.http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


async def test_metrics_has_every_family_with_type(harness: Harness) -> None:
    families = await harness.scrape()

    for name, kind in FAMILY_TYPES.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert families[name].documentation, name


async def test_metrics_text_has_help_and_type_lines(harness: Harness) -> None:
    text = (await harness.http.get("/metrics")).text

    for name, kind in FAMILY_TYPES.items():
        exposed = f"{name}_total" if kind == "counter" else name
        assert f"# HELP {exposed} " in text
        assert f"# TYPE {exposed} {kind}\n" in text


async def test_metrics_label_sets_consistent(harness: Harness) -> None:
    harness.metrics.errors["StoreUnavailable"] += 1
    await harness.http.get("/api/v1/instances")
    families = await harness.scrape()

    for family in families.values():
        label_sets = {frozenset(sample.labels) - {"le"} for sample in family.samples}
        assert len(label_sets) <= 1, f"{family.name}: {label_sets}"


async def test_metrics_all_names_prefixed(harness: Harness) -> None:
    families = await harness.scrape()

    assert all(name.startswith("agentic_sandbox_") for name in families)


async def test_reconcile_buckets_span_ms_to_minute(harness: Harness) -> None:
    family = (await harness.scrape())["agentic_sandbox_reconcile_duration_seconds"]

    bounds = {
        float(sample.labels["le"])
        for sample in family.samples
        if sample.name.endswith("_bucket") and sample.labels["result"] == "success"
    }
    assert bounds == {*DURATION_BUCKETS, float("inf")}
    assert min(DURATION_BUCKETS) == 0.001
    assert max(DURATION_BUCKETS) == 60.0


# Controller families


async def test_reconciles_counted_by_result(harness: Harness) -> None:
    async def reconcile(key: str) -> Result:
        if key == "default/broken":
            raise StoreUnavailable("database is locked")
        return Result()

    pool = WorkerPool(harness.queue, reconcile, workers=2, metrics=harness.metrics)
    running = asyncio.create_task(pool.run())
    try:
        harness.queue.add("default/web")
        harness.queue.add("default/broken")
        await wait_until(lambda: harness.metrics.reconcile_duration["success"].count >= 1)
        await wait_until(lambda: harness.metrics.reconcile_duration["error"].count >= 1)
    finally:
        harness.queue.shut_down()
        await asyncio.wait_for(running, DEADLINE)
    families = await harness.scrape()

    durations = families["agentic_sandbox_reconcile_duration_seconds"]
    assert sample_value(durations, "_count", result="success") == 1
    assert sample_value(durations, "_count", result="error") >= 1
    assert sample_value(durations, "_bucket", result="success", le="+Inf") == 1
    errors = families["agentic_sandbox_reconcile_errors"]
    assert sample_value(errors, "_total", reason="StoreUnavailable") >= 1
    retries = families["agentic_sandbox_workqueue_retries"]
    assert sample_value(retries, "_total") >= 1


async def test_reconcile_series_zero_before_first(harness: Harness) -> None:
    durations = (await harness.scrape())["agentic_sandbox_reconcile_duration_seconds"]

    assert sample_value(durations, "_count", result="success") == 0
    assert sample_value(durations, "_count", result="error") == 0


async def test_queue_gauges_read_at_scrape(harness: Harness) -> None:
    harness.queue.add("default/web")
    harness.queue.add("default/db")
    harness.queue.add_after("default/late", 60.0)

    families = await harness.scrape()

    assert sample_value(families["agentic_sandbox_workqueue_depth"]) == 2
    assert sample_value(families["agentic_sandbox_workqueue_delayed_keys"]) == 1
    assert sample_value(families["agentic_sandbox_workqueue_processing_keys"]) == 0
    harness.queue.shut_down()


async def test_gc_counters_by_type_and_result(harness: Harness) -> None:
    harness.metrics.gc_removals["container"] += 2
    harness.metrics.gc_sweeps["failed"] += 1

    families = await harness.scrape()

    removals = families["agentic_sandbox_gc_removals"]
    assert sample_value(removals, "_total", type="container") == 2
    assert sample_value(removals, "_total", type="workspace") == 0
    sweeps = families["agentic_sandbox_gc_sweeps"]
    assert sample_value(sweeps, "_total", result="failed") == 1
    assert sample_value(sweeps, "_total", result="succeeded") == 0


async def test_controller_families_empty_without_controller(store: SqliteStore) -> None:
    app = create_app(store=store, event_log=store.events, token=TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        text = (await http.get("/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(text)}

    assert families["agentic_sandbox_reconcile_duration_seconds"].samples == []
    assert families["agentic_sandbox_workqueue_depth"].samples == []
    assert families["agentic_sandbox_instances"].samples != []


# Store and API families


async def test_instances_by_phase_and_runtime(harness: Harness, store: SqliteStore) -> None:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    async with client:
        for name in ("web", "db"):
            response = await client.put(f"/api/v1/instances/{name}", json=manifest(name))
            assert response.status_code == 201, response.text

    instances = (await harness.scrape())["agentic_sandbox_instances"]

    assert sample_value(instances, phase=Phase.PENDING.value, runtime="docker") == 2
    assert sample_value(instances, phase=Phase.RUNNING.value, runtime="docker") == 0
    assert sample_value(instances, phase=Phase.PENDING.value, runtime="libvirt") == 0


async def test_instances_family_empty_when_store_closed(
    harness: Harness, store: SqliteStore
) -> None:
    await store.close()

    families = await harness.scrape()

    assert families["agentic_sandbox_instances"].samples == []
    assert sample_value(families["agentic_sandbox_workqueue_depth"]) == 0


async def test_requests_timed_by_route_template(harness: Harness) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(2):
        response = await harness.http.get("/api/v1/instances/nothing-here", headers=headers)
        assert response.status_code == 404

    requests = (await harness.scrape())["agentic_sandbox_http_request_duration_seconds"]

    count = sample_value(
        requests, "_count", route="/api/v1/instances/{name}", method="GET", status="404"
    )
    assert count == 2
    assert all("nothing-here" not in sample.labels.get("route", "") for sample in requests.samples)


async def test_rejected_request_timed_as_401(harness: Harness) -> None:
    await harness.http.get("/api/v1/instances")

    requests = (await harness.scrape())["agentic_sandbox_http_request_duration_seconds"]

    count = sample_value(requests, "_count", route="/api/v1/instances", method="GET", status="401")
    assert count == 1


async def test_unknown_path_timed_as_unmatched(harness: Harness) -> None:
    await harness.http.get("/no/such/path/1")
    await harness.http.get("/no/such/path/2")

    requests = (await harness.scrape())["agentic_sandbox_http_request_duration_seconds"]

    count = sample_value(requests, "_count", route=UNMATCHED_ROUTE, method="GET", status="401")
    assert count == 2


async def test_unusual_method_timed_as_other(harness: Harness) -> None:
    await harness.http.request("BREW", "/healthz")

    requests = (await harness.scrape())["agentic_sandbox_http_request_duration_seconds"]

    assert sample_value(requests, "_count", route="/healthz", method="other", status="405") == 1


async def test_scrape_itself_counted(harness: Harness) -> None:
    await harness.scrape()

    requests = (await harness.scrape())["agentic_sandbox_http_request_duration_seconds"]

    assert sample_value(requests, "_count", route="/metrics", method="GET", status="200") == 1


async def test_sse_subscribers_read_from_gauge(harness: Harness) -> None:
    gauge = harness.app.state.sse_subscribers
    assert isinstance(gauge, SseSubscriberGauge)
    gauge.add()
    gauge.add()
    gauge.remove()

    families = await harness.scrape()

    assert sample_value(families["agentic_sandbox_sse_subscribers"]) == 1
