"""A real ``sandboxctl serve`` process for end-to-end tests, and waiting helpers.

Each process gets its own state directory, manifests directory, loopback port and controller id,
so tests running side by side never see each other's containers. ``cleanup`` removes only the
containers that carry this process's controller id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
import httpx

T = TypeVar("T")

START_TIMEOUT_SECONDS = 60.0
# Generous bounds for waiting in tests; they are deadlines against hangs, not performance checks.
WAIT_SECONDS = 60.0


def wait_for(
    condition: Callable[[], T | None], *, timeout: float = WAIT_SECONDS, what: str = "condition"
) -> T:
    """Poll ``condition`` every 50 ms until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value {last!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControllerProcess:
    def __init__(self, root: Path, *, mount_root: Path | None = None) -> None:
        self.state_dir = root / "state"
        self.manifests = root / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.mount_root = mount_root or root / "mounts"
        self.mount_root.mkdir(parents=True, exist_ok=True)
        self.controller_id = f"test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.grpc_port = free_port()
        self.log_path = root / "controller.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.docker = docker.APIClient(version="auto", timeout=60)
        self._client: httpx.Client | None = None
        # Extra command-line arguments and environment variables of ``sandboxctl serve``.
        self.extra_args: list[str] = []
        self.extra_env: dict[str, str] = {}

    # Process control.

    def start(self) -> None:
        sandboxctl = Path(sys.executable).parent / "sandboxctl"
        command = [
            str(sandboxctl),
            "serve",
            "--state-dir",
            str(self.state_dir),
            "--manifests",
            str(self.manifests),
            "--port",
            str(self.port),
            "--controller-id",
            self.controller_id,
            "--allowed-mount-root",
            str(self.mount_root),
            "--log-level",
            "debug",
            *self.extra_args,
        ]
        env = {
            **os.environ,
            "DOCKER_MONITOR_ENABLED": "false",
            # Each controller gets its own agent port, so controllers side by side never collide.
            "AGENTIC_SANDBOX_GRPC_PORT": str(self.grpc_port),
            **self.extra_env,
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process keeps it open
        self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        log.close()
        wait_for(self._healthy, timeout=START_TIMEOUT_SECONDS, what="controller /healthz")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"controller exited early:\n{self.log_path.read_text()[-4000:]}")
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def kill(self) -> None:
        """End the controller with SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
        self._reset_client()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None
        self._reset_client()

    def cleanup(self) -> None:
        self.stop()
        for container in self.containers():
            self.docker.remove_container(container["Id"], force=True)
        self.docker.close()

    # Clients.

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            token = (self.state_dir / "api-token").read_text().strip()
            self._client = httpx.Client(
                base_url=f"http://127.0.0.1:{self.port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        return self._client

    def _reset_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def sandboxctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        sandboxctl = Path(sys.executable).parent / "sandboxctl"
        env = {
            **os.environ,
            "SANDBOXCTL_SERVER": f"http://127.0.0.1:{self.port}",
            "AGENTIC_SANDBOX_STATE_DIR": str(self.state_dir),
        }
        return subprocess.run(
            [str(sandboxctl), *args], env=env, capture_output=True, text=True, timeout=60
        )

    # Observations.

    def instance(self, name: str) -> dict[str, Any] | None:
        response = self.client.get(f"/api/v1/instances/{name}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def phase(self, name: str) -> str | None:
        instance = self.instance(name)
        return None if instance is None else instance.get("status", {}).get("phase")

    def events(self, instance: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": "1000"}
        if instance is not None:
            params["instance"] = instance
        response = self.client.get("/api/v1/events", params=params)
        response.raise_for_status()
        body = response.json()
        return list(body["items"] if isinstance(body, dict) else body)

    def containers(self, **labels: str) -> list[dict[str, Any]]:
        filters = [f"agentic-sandbox.controller={self.controller_id}"]
        filters += [f"{key}={value}" for key, value in labels.items()]
        return list(self.docker.containers(all=True, filters={"label": filters}))

    def running_container(self, name: str) -> dict[str, Any] | None:
        for container in self.containers(**{"agentic-sandbox.instance": f"default/{name}"}):
            if container["State"] == "running":
                return container
        return None

    def wait_running(self, name: str) -> dict[str, Any]:
        wait_for(lambda: self.phase(name) == "Running", what=f"instance {name} Running")
        return wait_for(lambda: self.running_container(name), what=f"container of {name}")

    def write_manifest(self, filename: str, text: str) -> Path:
        """Write a manifest atomically, as an editor's save would, so no half file is seen."""
        path = self.manifests / filename
        temporary = path.with_name(f".{filename}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
        return path


def instance_yaml(name: str, *, env: dict[str, str] | None = None, labels: str = "") -> str:
    lines = [
        "apiVersion: sandbox.agentic.dev/v1alpha1",
        "kind: Instance",
        "metadata:",
        f"  name: {name}",
    ]
    if labels:
        lines += ["  labels:", f"    {labels}"]
    lines += ["spec:", "  image: agentic/demo:dev"]
    if env:
        lines.append("  env:")
        lines += [f"    {key}: {value}" for key, value in env.items()]
    return "\n".join(lines) + "\n"
