"""The Docker driver's connection: one shared docker-py client, a worker pool and deadlines.

docker-py is synchronous, so every call runs on a bounded thread pool and is awaited with a
deadline (``call_timeout``). The client's socket timeout is the same, so a stuck call also ends
its thread. The client is created lazily, with the API version negotiated, and discarded after a
connection failure, so the driver recovers by itself when dockerd restarts.

Every requests and docker-py exception except ``APIError`` leaves here as a RuntimeFailure
chained with ``from``: connection failures become RuntimeUnavailable and timeouts RuntimeTimeout.
``APIError`` passes through, because what a status code means depends on the operation; the
caller maps it, falling back to ``api_error``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import requests
from docker.errors import APIError, DockerException
from docker.utils import kwargs_from_env

from agentic_sandbox.errors import RuntimeAPIError, RuntimeTimeout, RuntimeUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_HOST = "unix:///var/run/docker.sock"


def daemon_message(exc: APIError) -> str:
    """Return the daemon's own message for a failed call."""
    return exc.explanation or str(exc)


def api_error(operation: str, exc: APIError) -> RuntimeAPIError:
    return RuntimeAPIError(
        f"Docker {operation} failed with HTTP {exc.status_code}: {daemon_message(exc)}"
    )


class DockerConnection:
    """A lazily created docker-py APIClient shared by a bounded pool of worker threads."""

    def __init__(self, *, base_url: str | None, call_timeout: float, max_workers: int) -> None:
        self.base_url = base_url
        self.host = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        self.call_timeout = call_timeout
        self._max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="docker-call")
        self._lock = threading.Lock()
        self._client: docker.APIClient | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(
        self,
        operation: str,
        call: Callable[[docker.APIClient], T],
        *,
        extra_timeout: float = 0.0,
    ) -> T:
        """Run ``call`` on the worker pool with a deadline of ``call_timeout + extra_timeout``.

        The deadline includes the wait for a free worker. A call that misses its deadline keeps
        running on its thread until the socket timeout ends it, so its effect (a container
        created, say) may still happen. Callers re-observe.
        """
        if self._closed:
            raise RuntimeUnavailable("the Docker runtime is closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self.run_sync, operation, call)
        deadline = self.call_timeout + extra_timeout
        try:
            return await asyncio.wait_for(future, deadline)
        except TimeoutError as exc:
            raise RuntimeTimeout(
                f"Docker {operation} timed out after {deadline:g} s at {self.host}"
            ) from exc

    def run_sync(self, operation: str, call: Callable[[docker.APIClient], T]) -> T:
        """Run ``call`` on the current thread with the shared client. Blocks."""
        client = self._get_client()
        try:
            return call(client)
        except APIError:
            raise
        except (requests.exceptions.Timeout, TimeoutError) as exc:
            raise RuntimeTimeout(
                f"Docker {operation} timed out after {self.call_timeout:g} s at {self.host}"
            ) from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            self._discard_client(client)
            raise RuntimeUnavailable(
                f"Docker Engine at {self.host} is unavailable: {operation} failed: {exc}"
            ) from exc
        except DockerException as exc:
            raise RuntimeAPIError(f"Docker {operation} failed: {exc}") from exc

    def close(self) -> None:
        """Reject new calls and release the client. Calls already running finish on their own."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _get_client(self) -> docker.APIClient:
        # The lock guards only the check and the swap, never the connect, because the connect
        # can block for the socket timeout and close() takes the lock on the event loop. Two
        # threads may connect at once after an outage, and the later one closes its spare.
        with self._lock:
            if self._closed:
                raise RuntimeUnavailable("the Docker runtime is closed")
            if self._client is not None:
                return self._client
        try:
            client = self._connect()
        except OSError as exc:
            raise RuntimeUnavailable(f"Docker Engine at {self.host} is unavailable: {exc}") from exc
        except DockerException as exc:
            # Version negotiation wraps the connection error in a DockerException.
            raise RuntimeUnavailable(f"Docker Engine at {self.host} is unavailable: {exc}") from exc

        with self._lock:
            if not self._closed and self._client is None:
                self._client = client
                logger.debug("docker client connected host=%s", self.host)
                return client
            current = None if self._closed else self._client
        client.close()
        if current is None:
            raise RuntimeUnavailable("the Docker runtime is closed")
        return current

    def _connect(self) -> docker.APIClient:
        socket_path = _unix_socket_path(self.host)
        if socket_path is not None:
            _probe_unix_socket(socket_path, self.call_timeout)
        if self.base_url is None:
            options: dict[str, Any] = dict(kwargs_from_env())
        else:
            options = {"base_url": self.base_url}
        return docker.APIClient(
            version="auto",
            timeout=max(1, math.ceil(self.call_timeout)),
            max_pool_size=self._max_workers,
            **options,
        )

    def _discard_client(self, client: docker.APIClient) -> None:
        # Other threads may still use this client. Their calls fail and are retried later,
        # which is what a connection failure means for them anyway.
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()
        logger.debug("docker client discarded host=%s", self.host)


def _unix_socket_path(host: str) -> str | None:
    for prefix in ("unix://", "http+unix://"):
        if host.startswith(prefix):
            return host.removeprefix(prefix)
    return None


def _probe_unix_socket(path: str, timeout: float) -> None:
    """Connect to the daemon's socket once and close it. Raise OSError when no daemon listens.

    docker-py 7.2 leaves its socket open when a unix connect fails, so while the daemon is
    down every attempt would leak a socket until garbage collection. This probe fails first.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        probe.connect(path)
