"""API benchmark: list latency, apply throughput and event-stream fan-out of a live server.

Runs one ``sandboxctl serve`` process on loopback and measures, in one run:

- apply throughput: instances created per second by ``PUT /api/v1/instances/{name}``, first from
  one client in sequence, then from C concurrent clients, then the same manifests applied again
  unchanged (the idempotent no-op path) by C clients;
- list latency: ``GET /api/v1/instances`` returning all N instances (default 1000), p50 and p99
  over R requests, timed from sending the request until the whole body was read;
- event fan-out: S subscribers (default 100) follow ``GET /api/v1/events?follow=true``. For each
  of E events, a ``POST .../stop`` appends an ``instance.verb_requested`` event before it
  responds. The benchmark records when each subscriber receives that frame. Latency is
  reported from the moment the write request was sent, and from the event's own timestamp
  (set by the server when it recorded the event, just before the append; both clocks are this
  host's).

Every instance has ``runStrategy: Halted``, for which the controller plans no container, so the
run creates no container. The controller still reconciles each instance (one Docker listing and a
status write each), and the list figures are taken after every instance was reconciled.

There is no reference to compare with: raw Docker has no equivalent of these routes, so the
figures stand alone, against the budget "list of 1000 instances under 50 ms p50". The
subscribers run in this process on the same host, so on a small machine they share the CPU with
the server and inflate the fan-out figures. Usage:

    .venv/bin/python bench/api.py --count 1000 --concurrency 16 --subscribers 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
from common import IMAGE, BenchController

LIST_BUDGET_SECONDS = 0.050
FANOUT_EVENT = "instance.verb_requested"
DURATION_METRIC = "agentic_sandbox_http_request_duration_seconds"
LIST_LABELS = {'route="/api/v1/instances"', 'method="GET"', 'status="200"'}
# Maximum wait for one event to reach every subscriber before the run fails.
FANOUT_TIMEOUT_SECONDS = 30.0


def halted_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "sandbox.agentic.dev/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {"image": IMAGE, "runStrategy": "Halted"},
    }


def percentile(samples: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``samples`` (``fraction`` 0.5 is the median)."""
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def milliseconds(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms"


# Apply and list


def apply_all(controller: BenchController, names: list[str], concurrency: int) -> float:
    """PUT one Halted instance per name with ``concurrency`` clients; return the seconds taken."""

    def put(name: str) -> None:
        response = controller.client.put(f"/api/v1/instances/{name}", json=halted_manifest(name))
        response.raise_for_status()

    started = time.perf_counter()
    if concurrency == 1:
        for name in names:
            put(name)
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(put, names))
    return time.perf_counter() - started


def wait_reconciled(controller: BenchController, count: int, limit: float = 600) -> None:
    """Wait until all ``count`` instances report the generation the controller last observed."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        items = controller.client.get("/api/v1/instances").json()["items"]
        observed = [
            item
            for item in items
            if item.get("status", {}).get("observedGeneration") == item["metadata"]["generation"]
        ]
        if len(items) == count and len(observed) == count:
            return
        time.sleep(0.5)
    raise SystemExit(f"instances were not all reconciled within {limit:.0f} s")


def server_list_seconds(controller: BenchController) -> tuple[float, int]:
    """Return the summed seconds and the count of list requests in the server's histogram.

    The server measures from a request's arrival until its response headers are sent, which
    for a JSON response includes rendering the body.
    """
    metrics = controller.client.get("/metrics").text
    totals = {"_sum": 0.0, "_count": 0.0}
    for line in metrics.splitlines():
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        if not name.startswith(DURATION_METRIC) or not LIST_LABELS <= set(
            labels.rstrip("}").split(",")
        ):
            continue
        suffix = name.removeprefix(DURATION_METRIC)
        if suffix in totals:
            totals[suffix] += float(value)
    return totals["_sum"], int(totals["_count"])


def time_list(controller: BenchController, requests: int, count: int) -> list[float]:
    """Return the seconds of each of ``requests`` full list requests."""
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = controller.client.get("/api/v1/instances")
        body = response.read()
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
        found = body.count(b'"kind":"Instance"')
        if found != count:
            raise SystemExit(f"list returned {found} instances; expected {count}")
    return samples


# Event fan-out


class FanOut:
    """Arrival times of the fan-out events, per event, across all subscribers."""

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.sent_at: dict[str, float] = {}
        self.received: dict[str, list[tuple[float, float]]] = {}
        self.complete: dict[str, asyncio.Event] = {}

    def expect(self, instance: str) -> asyncio.Event:
        self.received[instance] = []
        self.complete[instance] = asyncio.Event()
        return self.complete[instance]

    def arrived(self, data: dict[str, Any]) -> None:
        """Record one frame: its arrival time and the seconds since the server appended it."""
        now, wall = time.perf_counter(), time.time()
        appended = datetime.fromisoformat(data["time"].replace("Z", "+00:00")).timestamp()
        instance = data["instance"]
        arrivals = self.received[instance]
        arrivals.append((now, wall - appended))
        if len(arrivals) == self.subscribers:
            self.complete[instance].set()

    def subscribed(self) -> None:
        self.ready += 1
        if self.ready == self.subscribers:
            self.all_ready.set()


async def subscribe(client: httpx.AsyncClient, fanout: FanOut) -> None:
    """Follow the event stream and hand every fan-out frame to ``fanout`` until cancelled."""
    params = {"follow": "true", "type": FANOUT_EVENT}
    async with client.stream("GET", "/api/v1/events", params=params) as response:
        response.raise_for_status()
        event, data = "", ""
        async for line in response.aiter_lines():
            if line.startswith("retry:"):
                # The server pinned this stream's start before sending the first frame.
                fanout.subscribed()
            elif line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line == "" and event == FANOUT_EVENT:
                fanout.arrived(json.loads(data))
                event, data = "", ""


async def measure_fanout(
    controller: BenchController, names: list[str], subscribers: int
) -> tuple[list[float], list[float]]:
    """Return the fan-out latencies from the write request and from the append, in seconds."""
    fanout = FanOut(subscribers)
    limits = httpx.Limits(max_connections=subscribers + 4, max_keepalive_connections=4)
    async with httpx.AsyncClient(
        base_url=str(controller.client.base_url),
        headers=dict(controller.client.headers),
        limits=limits,
        timeout=httpx.Timeout(30, read=None),
    ) as client:
        streams = [asyncio.create_task(subscribe(client, fanout)) for _ in range(subscribers)]
        try:
            await asyncio.wait_for(fanout.all_ready.wait(), FANOUT_TIMEOUT_SECONDS)
            for name in names:
                await write_event(client, fanout, name)
        finally:
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)

    from_write = [
        arrival - fanout.sent_at[instance]
        for instance, arrivals in fanout.received.items()
        for arrival, _ in arrivals
    ]
    from_append = [since for arrivals in fanout.received.values() for _, since in arrivals]
    return from_write, from_append


async def write_event(client: httpx.AsyncClient, fanout: FanOut, name: str) -> None:
    """Request a stop of ``name`` and wait until every subscriber has its event."""
    instance = f"default/{name}"
    complete = fanout.expect(instance)
    fanout.sent_at[instance] = time.perf_counter()
    response = await client.post(f"/api/v1/instances/{name}/stop")
    response.raise_for_status()
    await asyncio.wait_for(complete.wait(), FANOUT_TIMEOUT_SECONDS)


# Report


def report_latency(label: str, samples: list[float], extra: str = "") -> None:
    print(
        f"{label}: p50 {milliseconds(percentile(samples, 0.5))}  "
        f"p99 {milliseconds(percentile(samples, 0.99))}  "
        f"max {milliseconds(max(samples))}  (n={len(samples)}{extra})"
    )


def report_rate(label: str, count: int, seconds: float) -> None:
    print(f"{label}: {count / seconds:.0f} instances/s ({count} in {seconds:.2f} s)")


def run(args: argparse.Namespace, controller: BenchController) -> None:
    run_id = uuid.uuid4().hex[:6]
    names = [f"api-{run_id}-{index}" for index in range(args.count)]
    half = args.count // 2
    concurrent = f"{args.concurrency} clients"

    report_rate("apply, create, 1 client", half, apply_all(controller, names[:half], 1))
    seconds = apply_all(controller, names[half:], args.concurrency)
    report_rate(f"apply, create, {concurrent}", args.count - half, seconds)
    wait_reconciled(controller, args.count)
    seconds = apply_all(controller, names, args.concurrency)
    report_rate(f"apply, unchanged, {concurrent}", args.count, seconds)
    wait_reconciled(controller, args.count)

    server_before, count_before = server_list_seconds(controller)
    samples = time_list(controller, args.requests, args.count)
    server_after, count_after = server_list_seconds(controller)
    mean = statistics.mean(samples)
    report_latency(f"list of {args.count}", samples, f", mean {milliseconds(mean)}")
    server_mean = (server_after - server_before) / (count_after - count_before)
    print(f"list of {args.count}, server side until headers sent: mean {milliseconds(server_mean)}")
    p50 = percentile(samples, 0.5)
    verdict = "met" if p50 < LIST_BUDGET_SECONDS else "NOT met"
    print(f"budget list of {args.count} p50 under 50 ms: {verdict} ({milliseconds(p50)})")

    from_write, from_append = asyncio.run(
        measure_fanout(controller, names[: args.events], args.subscribers)
    )
    extra = f", {args.events} events x {args.subscribers} subscribers"
    report_latency("fan-out, from the write request", from_write, extra)
    report_latency("fan-out, from the append", from_append, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="instances (default 1000)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="concurrent apply clients (default 16)"
    )
    parser.add_argument("--requests", type=int, default=50, help="timed list requests (default 50)")
    parser.add_argument(
        "--subscribers", type=int, default=100, help="event-stream subscribers (default 100)"
    )
    parser.add_argument("--events", type=int, default=50, help="fan-out events (default 50)")
    args = parser.parse_args()
    if args.events > args.count:
        parser.error("--events must not exceed --count: each event stops a different instance")

    controller = BenchController()
    try:
        run(args, controller)
    finally:
        controller.close()


if __name__ == "__main__":
    main()
