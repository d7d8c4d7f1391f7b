"""Docker outages and controller restarts, against the real Docker Engine.

The controller talks to Docker through a unix-socket proxy that the test can stop and start, so
an outage of the daemon is simulated without stopping the daemon other tests share.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.controller_process import ControllerProcess, instance_yaml, wait_for
from tests.runtimes.support import SocketProxy

pytestmark = pytest.mark.docker


class ThreadedProxy:
    """Runs a SocketProxy on its own event loop thread, for synchronous tests."""

    def __init__(self, path: Path, upstream: str | None = None) -> None:
        self.proxy = SocketProxy(path) if upstream is None else SocketProxy(path, upstream)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _call(self, coroutine: Any) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        future.result(timeout=30)

    def start(self) -> None:
        self._call(self.proxy.start())

    def stop(self) -> None:
        self._call(self.proxy.stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ThreadedProxy]:
    threaded = ThreadedProxy(tmp_path / "docker.sock")
    threaded.start()
    try:
        yield threaded
    finally:
        threaded.close()


@pytest.fixture
def controller(
    demo_image: str, tmp_path: Path, proxy: ThreadedProxy
) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.extra_args = ["--docker-host", proxy.proxy.url]
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


def condition(instance: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    conditions = (instance or {}).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), None)


def test_restart_adopts_running_containers(controller: ControllerProcess) -> None:
    names = ["alpha", "beta", "gamma"]
    for name in names:
        controller.write_manifest(f"{name}.yaml", instance_yaml(name))
    before = {name: controller.wait_running(name)["Id"] for name in names}

    controller.stop()
    controller.start()

    for name in names:
        wait_for(lambda n=name: controller.phase(n) == "Running", what=f"{name} Running")
    after = {name: controller.running_container(name)["Id"] for name in names}  # type: ignore[index]
    assert after == before
    created = [e for e in controller.events() if e["name"] == "container.created"]
    assert len(created) == len(names)


def test_outage_reports_unknown_and_recovers(
    controller: ControllerProcess, proxy: ThreadedProxy
) -> None:
    controller.write_manifest("web.yaml", instance_yaml("web"))
    controller.write_manifest("victim.yaml", instance_yaml("victim"))
    web = controller.wait_running("web")["Id"]
    victim = controller.wait_running("victim")["Id"]

    proxy.stop()
    wait_for(
        lambda: (
            (condition(controller.instance("web"), "RuntimeReady") or {}).get("status") == "Unknown"
        ),
        what="RuntimeReady Unknown during the outage",
    )
    # A change behind the controller's back while it cannot see Docker.
    controller.docker.remove_container(victim, force=True)
    proxy.start()

    def repaired() -> bool:
        container = controller.running_container("victim")
        return container is not None and container["Id"] != victim

    wait_for(repaired, what="victim repaired after the outage")
    wait_for(lambda: controller.phase("web") == "Running", what="web Running again")
    assert controller.running_container("web")["Id"] == web  # type: ignore[index]
    removed = [e for e in controller.events() if e["name"] == "container.removed"]
    assert removed == []
