"""Idle-cost benchmark: controller CPU with many converged instances and nothing changing.

Applies N instances (default 200), waits until all are Running, lets the controller settle, then
reads the controller process's CPU time from /proc over a window (default 60 s) and prints it as
a percentage of one core. Budget: under 2 %.

    .venv/bin/python bench/idle.py --count 200 --window 60
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from common import BenchController

SETTLE_SECONDS = 5.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` and its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="instances (default 200)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured (default 60)")
    args = parser.parse_args()

    controller = BenchController(workers=16)
    names = [f"idle-{uuid.uuid4().hex[:6]}-{index}" for index in range(args.count)]
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(controller.apply, names))
        controller.wait_all_running(args.count, poll=0.5)
        time.sleep(SETTLE_SECONDS)

        pid = controller.process.pid
        before = cpu_seconds(pid)
        time.sleep(args.window)
        used = cpu_seconds(pid) - before
        print(
            f"instances={args.count} window={args.window:.0f}s controller CPU {used:.2f}s "
            f"= {100 * used / args.window:.2f}% of one core"
        )
        controller.delete_all(names)
    finally:
        controller.close()


if __name__ == "__main__":
    main()
