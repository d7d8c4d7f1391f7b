"""Shared pieces of the benchmarks: a controller process on loopback and API helpers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

IMAGE = "agentic/demo:dev"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manifest(name: str, image: str = IMAGE) -> dict[str, Any]:
    return {
        "apiVersion": "sandbox.agentic.dev/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {"image": image},
    }


class BenchController:
    """A ``sandboxctl serve`` process with its own state directory, port and controller id."""

    def __init__(self, *, workers: int = 16) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.port = free_port()
        self.controller_id = f"bench-{uuid.uuid4().hex[:8]}"
        sandboxctl = Path(sys.executable).parent / "sandboxctl"
        env = {
            **os.environ,
            "AGENTIC_SANDBOX_LOG_LEVEL": "warning",
            "AGENTIC_SANDBOX_GRPC_PORT": str(free_port()),
        }
        with open(self.state_dir / "controller.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(sandboxctl),
                    "serve",
                    "--state-dir",
                    str(self.state_dir),
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                    "--controller-id",
                    self.controller_id,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._wait_healthy()
        token = (self.state_dir / "api-token").read_text().strip()
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.process.terminate()
        raise SystemExit(f"controller did not start; see {self.state_dir / 'controller.log'}")

    def apply(self, name: str, image: str = IMAGE) -> None:
        self.client.put(f"/api/v1/instances/{name}", json=manifest(name, image)).raise_for_status()

    def phases(self) -> dict[str, str]:
        items = self.client.get("/api/v1/instances").json()["items"]
        return {item["metadata"]["name"]: item.get("status", {}).get("phase", "") for item in items}

    def wait_all_running(self, count: int, *, poll: float = 0.02, limit: float = 600) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            phases = self.phases()
            if len(phases) == count and all(p == "Running" for p in phases.values()):
                return
            time.sleep(poll)
        raise SystemExit(f"instances did not all reach Running within {limit:.0f} s")

    def delete_all(self, names: list[str]) -> None:
        for name in names:
            self.client.delete(f"/api/v1/instances/{name}")
        deadline = time.monotonic() + 300
        while self.client.get("/api/v1/instances").json()["items"]:
            if time.monotonic() > deadline:
                raise SystemExit("instances were not deleted within 300 s")
            time.sleep(0.1)

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=60)
        shutil.rmtree(self.state_dir, ignore_errors=True)
