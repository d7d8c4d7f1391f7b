"""Convergence benchmark: N instances applied through the controller versus raw docker-py.

Both sides create and start the same N containers from the same image with the same host
configuration (limits, dropped capabilities, init, labels), at the same concurrency, in one run:

- raw: a thread pool of C threads calls docker-py create+start directly;
- controller: a ``sandboxctl serve`` process with C workers; the clock starts before the first
  instance is PUT to the API and stops when the API reports every instance Running.

The controller's start-up time is not counted. Usage:

    .venv/bin/python bench/converge.py --count 50 --concurrency 16
"""

from __future__ import annotations

import argparse
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
from common import IMAGE, BenchController


def raw_host_config(client: docker.APIClient) -> Any:
    return client.create_host_config(
        nano_cpus=1_000_000_000,
        mem_limit=1 << 30,
        memswap_limit=1 << 30,
        pids_limit=512,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        init=True,
        restart_policy={"Name": "no"},
        extra_hosts={"host.docker.internal": "host-gateway"},
        network_mode="bridge",
    )


def run_raw(count: int, concurrency: int, image: str) -> float:
    """Create and start ``count`` containers with docker-py; return the seconds it took."""
    client = docker.APIClient(version="auto")
    run_id = uuid.uuid4().hex[:8]
    label = {"agentic-sandbox-bench": run_id}
    names = [f"bench-raw-{run_id}-{index}" for index in range(count)]

    def create_and_start(name: str) -> None:
        container = client.create_container(
            image,
            name=name,
            labels=label,
            environment={"AGENT_ID": name},
            host_config=raw_host_config(client),
        )
        client.start(container["Id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(create_and_start, names))
    elapsed = time.perf_counter() - started

    for container in client.containers(
        all=True, filters={"label": f"agentic-sandbox-bench={run_id}"}
    ):
        client.remove_container(container["Id"], force=True)
    return elapsed


def run_controller(count: int, concurrency: int, image: str) -> float:
    """Apply ``count`` instances through the API; return the seconds until all are Running."""
    controller = BenchController(workers=concurrency)
    run_id = uuid.uuid4().hex[:6]
    names = [f"bench-{run_id}-{index}" for index in range(count)]
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda name: controller.apply(name, image), names))
        controller.wait_all_running(count)
        elapsed = time.perf_counter() - started
        controller.delete_all(names)
        return elapsed
    finally:
        controller.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="containers per side (default 50)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="threads and controller workers (default 16)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    parser.add_argument("--image", default=IMAGE, help=f"image to run (default {IMAGE})")
    args = parser.parse_args()

    for round_number in range(1, args.rounds + 1):
        raw = run_raw(args.count, args.concurrency, args.image)
        ours = run_controller(args.count, args.concurrency, args.image)
        print(
            f"round {round_number}: N={args.count} concurrency={args.concurrency} "
            f"raw docker-py {raw:.2f}s  controller {ours:.2f}s  ratio {ours / raw:.2f}"
        )


if __name__ == "__main__":
    main()
