"""Drift-repair benchmark: out-of-band ``docker rm -f`` until the sandbox runs again.

For each trial the benchmark removes the managed container with docker-py and measures the time
until a new container for the same instance is running. In the same run it measures how long
Docker itself takes to create and start an equivalent container, the floor any repair must pay.
It prints p50 and p95 of both. Budget: repair p95 under 2 s.

    .venv/bin/python bench/drift.py --trials 20
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import docker
from common import IMAGE, BenchController
from converge import raw_host_config

POLL_SECONDS = 0.005


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def running_container(api: docker.APIClient, controller_id: str, name: str) -> str | None:
    filters = {
        "label": [
            f"agentic-sandbox.controller={controller_id}",
            f"agentic-sandbox.instance=default/{name}",
        ],
        "status": "running",
    }
    containers = api.containers(filters=filters)
    return containers[0]["Id"] if containers else None


def repair_trials(api: docker.APIClient, trials: int) -> list[float]:
    controller = BenchController(workers=16)
    name = f"drift-{uuid.uuid4().hex[:6]}"
    try:
        controller.apply(name)
        controller.wait_all_running(1)
        times = []
        for _ in range(trials):
            old = running_container(api, controller.controller_id, name)
            assert old is not None
            started = time.perf_counter()
            api.remove_container(old, force=True)
            while True:
                current = running_container(api, controller.controller_id, name)
                if current is not None and current != old:
                    break
                time.sleep(POLL_SECONDS)
            times.append(time.perf_counter() - started)
        controller.delete_all([name])
        return times
    finally:
        controller.close()


def raw_trials(api: docker.APIClient, trials: int) -> list[float]:
    times = []
    for index in range(trials):
        name = f"drift-raw-{uuid.uuid4().hex[:6]}-{index}"
        started = time.perf_counter()
        container = api.create_container(IMAGE, name=name, host_config=raw_host_config(api))
        api.start(container["Id"])
        times.append(time.perf_counter() - started)
        api.remove_container(container["Id"], force=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per side (default 20)")
    args = parser.parse_args()

    api = docker.APIClient(version="auto")
    raw = raw_trials(api, args.trials)
    repair = repair_trials(api, args.trials)
    print(
        f"trials={args.trials}  raw create+start p50 {statistics.median(raw):.3f}s "
        f"p95 {percentile(raw, 0.95):.3f}s  |  repair p50 {statistics.median(repair):.3f}s "
        f"p95 {percentile(repair, 0.95):.3f}s  |  p95 ratio "
        f"{percentile(repair, 0.95) / percentile(raw, 0.95):.2f}"
    )


if __name__ == "__main__":
    main()
