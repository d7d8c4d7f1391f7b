"""GitOps benchmark: a repository of N instance manifests followed by a GitSource.

Measures, against a real ``sandboxctl serve`` and Docker Engine:

- converge: from creating the GitSource to all N instances Running;
- edit: from pushing a commit that changes the env of E manifests (a recreate) and calling the
  sync webhook, to those E instances Running with their new spec hash;
- prune: from pushing a commit that empties the path (with ``allowEmpty``) and the webhook, to
  no instance left.

And, in this process against its own SQLite store (no Docker), the steady-state cost of a sync
that finds no change: fetch, parse check, N unchanged applies and the status comparison, as
wall time and CPU time per sync.

Usage:

    .venv/bin/python bench/gitops.py --count 200 --edit 10
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import BenchController

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentic_sandbox.crds.gitsource import GitSource  # noqa: E402
from agentic_sandbox.crds.validation import validate_resource  # noqa: E402
from agentic_sandbox.sources.git_sync import GitSync  # noqa: E402
from agentic_sandbox.store.sqlite import SqliteStore  # noqa: E402
from tests.sources.git_support import Repository, gitsource_doc  # noqa: E402

IMAGE = "agentic/base:dev"
POLL_SECONDS = 0.05


def instance_yaml(name: str, mode: str) -> str:
    # The base image has no long-running default command, so each sandbox sleeps.
    return (
        "apiVersion: sandbox.agentic.dev/v1alpha1\nkind: Instance\n"
        f"metadata:\n  name: {name}\nspec:\n  image: {IMAGE}\n"
        "  command: [sleep, '86400']\n"
        f"  env:\n    MODE: {mode!r}\n"
    )


def fill(repo: Repository, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    names = [f"gitops-{run}-{index:03d}" for index in range(count)]
    for name in names:
        repo.write(f"fleet/{name}.yaml", instance_yaml(name, "one"))
    repo.commit(f"{count} instances")
    return names


def instances(controller: BenchController) -> dict[str, dict[str, str]]:
    items = controller.client.get("/api/v1/instances").json()["items"]
    return {
        item["metadata"]["name"]: {
            "phase": item.get("status", {}).get("phase", ""),
            "hash": item.get("status", {}).get("specHash", ""),
        }
        for item in items
    }


def wait(condition, *, limit: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if condition():
            return time.perf_counter() - started
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"{what} did not happen within {limit:.0f} s")


def run_controller(repo: Repository, names: list[str], edit: int) -> dict[str, float]:
    controller = BenchController()
    figures: dict[str, float] = {}
    try:
        doc = gitsource_doc("bench", repo.url, path="fleet", interval="1h")
        started = time.perf_counter()
        controller.client.post("/api/v1/gitsources", json=doc).raise_for_status()
        wait(
            lambda: (
                sum(i["phase"] == "Running" for i in instances(controller).values()) == len(names)
            ),
            limit=900,
            what="convergence",
        )
        figures["converge"] = time.perf_counter() - started

        before = instances(controller)
        edited = names[:edit]
        for name in edited:
            repo.write(f"fleet/{name}.yaml", instance_yaml(name, "two"))
        repo.commit(f"edit {edit}")
        started = time.perf_counter()
        controller.client.post("/api/v1/gitsources/bench/sync").raise_for_status()

        def recreated() -> bool:
            now = instances(controller)
            return all(
                now[name]["phase"] == "Running" and now[name]["hash"] != before[name]["hash"]
                for name in edited
            )

        wait(recreated, limit=600, what="recreation of the edited instances")
        figures["edit"] = time.perf_counter() - started

        doc["spec"]["allowEmpty"] = True  # type: ignore[index]
        controller.client.put("/api/v1/gitsources/bench", json=doc).raise_for_status()
        repo.remove("fleet")
        repo.write("README", "empty\n")
        repo.commit("empty the path")
        started = time.perf_counter()
        controller.client.post("/api/v1/gitsources/bench/sync").raise_for_status()
        wait(lambda: not instances(controller), limit=900, what="prune of every instance")
        figures["prune"] = time.perf_counter() - started
    finally:
        controller.close()
    return figures


async def steady_state(repo: Repository, rounds: int) -> tuple[float, float]:
    """Return the wall and CPU seconds of one no-change sync, averaged over ``rounds``."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-gitops-"))
    try:
        async with SqliteStore(workdir / "store.db") as store:
            source = validate_resource(gitsource_doc("bench", repo.url, path="fleet"))
            stored = await store.create(source)
            assert isinstance(stored, GitSource)
            sync = GitSync(workdir / "cache", store=store, event_log=store.events, timeout=60)
            await sync.sync(stored)  # the first sync creates every object
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(rounds):
                await sync.sync(stored)
            return (
                (time.perf_counter() - wall) / rounds,
                (time.process_time() - cpu) / rounds,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="instance manifests (200)")
    parser.add_argument("--edit", type=int, default=10, help="manifests one commit edits (10)")
    parser.add_argument("--rounds", type=int, default=20, help="no-change syncs timed (20)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-gitops-repo-"))
    try:
        repo = Repository(root)
        names = fill(repo, args.count)
        wall, cpu = asyncio.run(steady_state(repo, args.rounds))
        print(
            f"no-change sync of {args.count} manifests: {wall * 1000:.1f} ms wall, "
            f"{cpu * 1000:.1f} ms CPU (mean of {args.rounds})"
        )
        figures = run_controller(repo, names, args.edit)
        print(f"converge {args.count} from the GitSource's creation: {figures['converge']:.1f} s")
        edited = f"edit {args.edit} (push + webhook) to recreated and Running"
        print(f"{edited}: {figures['edit']:.2f} s")
        print(f"prune {args.count} (empty path with allowEmpty): {figures['prune']:.1f} s")
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    main()
