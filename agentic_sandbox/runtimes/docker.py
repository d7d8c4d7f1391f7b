"""The Docker runtime driver, on docker-py's low-level ``APIClient``.

Calls go through ``DockerConnection`` (worker pool, deadlines, client re-creation after a
dockerd restart). Every docker-py and requests exception leaves this module as a RuntimeFailure
chained with ``from``: connection failures become RuntimeUnavailable, timeouts RuntimeTimeout, a
404 the case documented on each method, and any other daemon error RuntimeAPIError with the
daemon's explanation. The driver makes no decisions and never retries: the controller requeues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shlex
from collections.abc import AsyncGenerator
from typing import Any

import docker
from docker.errors import APIError

from agentic_sandbox.errors import (
    ImageNotFound,
    InvalidRuntimeSpec,
    NameConflict,
    RuntimeFailure,
    RuntimeObjectNotFound,
    RuntimeUnavailable,
)
from agentic_sandbox.runtimes.base import (
    LABEL_INSTANCE,
    LABEL_UID,
    RuntimeEvent,
    SandboxSpec,
    SandboxState,
)
from agentic_sandbox.runtimes.docker_client import DockerConnection, api_error, daemon_message
from agentic_sandbox.runtimes.docker_convert import (
    BUILTIN_NETWORKS,
    TINI_EXEC_EXIT_CODES,
    container_labels,
    host_config_options,
    is_spec_start_failure,
    label_filters,
    missing_bind_source,
    reject_socket_mounts,
    socket_paths,
    state_from_inspect,
    state_from_summary,
    tini_exec_failure,
)
from agentic_sandbox.runtimes.docker_events import EventPump, EventStream
from agentic_sandbox.runtimes.docker_logs import LogPump, LogStream

logger = logging.getLogger(__name__)


class DockerRuntime:
    """The Runtime protocol on a Docker Engine, one container per sandbox."""

    name = "docker"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        call_timeout: float = 30.0,
        max_workers: int = 16,
        allow_socket_mounts: bool = False,
    ) -> None:
        """Configure the driver without connecting; the first call connects.

        ``base_url`` None means the DOCKER_HOST environment variable (with DOCKER_TLS_VERIFY
        and DOCKER_CERT_PATH), or the default socket when it is unset. ``call_timeout`` is the
        deadline of each call in seconds; ``max_workers`` bounds the concurrent calls.
        ``allow_socket_mounts`` lets a bind expose the Docker socket, which gives the sandbox
        root on the host; it is off unless the operator starts the controller with it.
        """
        self._allow_socket_mounts = allow_socket_mounts
        self._docker = DockerConnection(
            base_url=base_url, call_timeout=call_timeout, max_workers=max_workers
        )
        self._sockets = socket_paths(base_url)
        self._pumps: set[EventPump] = set()
        self._log_pumps: set[LogPump] = set()

    async def ping(self) -> None:
        """Raise RuntimeUnavailable unless the daemon responds."""
        try:
            healthy = await self._docker.call("ping", lambda client: client.ping())
        except APIError as exc:
            raise RuntimeUnavailable(
                f"Docker Engine at {self._docker.host} is unhealthy: {daemon_message(exc)}"
            ) from exc
        if not healthy:
            raise RuntimeUnavailable(f"Docker Engine at {self._docker.host} did not return OK")

    async def create(self, spec: SandboxSpec) -> SandboxState:
        """Create the container without starting it; adopt our own after a half-done create.

        Raises InvalidRuntimeSpec for a missing network or bind source, a bind of the Docker
        socket or a config the daemon rejects; ImageNotFound for a missing image; NameConflict
        when the name belongs to a container with another ``agentic-sandbox.uid``.
        """
        if not self._allow_socket_mounts:
            reject_socket_mounts(spec, self._sockets)
        if spec.network not in BUILTIN_NETWORKS:
            # Docker Engine 20.10 accepts a missing network at create and fails only at start.
            await self._require_network(spec)

        host_options = host_config_options(spec)

        def create_container(client: docker.APIClient) -> dict[str, Any]:
            result: dict[str, Any] = client.create_container(
                spec.image,
                name=spec.name,
                command=spec.command or None,
                environment=dict(spec.env),
                labels=container_labels(spec),
                host_config=client.create_host_config(**host_options),
                stop_timeout=spec.stop_timeout,
                detach=True,
                use_config_proxy=False,
            )
            return result

        try:
            created = await self._docker.call("create", create_container)
        except APIError as exc:
            return await self._handle_create_error(spec, exc)

        container_id = str(created["Id"])
        for warning in created.get("Warnings") or []:
            logger.warning(
                "docker create warning container_id=%s warning=%s", container_id, warning
            )
        logger.debug(
            "container created instance=%s name=%s container_id=%s",
            spec.labels.get(LABEL_INSTANCE),
            spec.name,
            container_id[:12],
        )
        state = await self.inspect(container_id)
        if state is None:
            raise RuntimeObjectNotFound(
                f"container {spec.name!r} ({container_id[:12]}) was removed right after create"
            )
        return state

    async def _require_network(self, spec: SandboxSpec) -> None:
        try:
            await self._docker.call(
                "network inspect", lambda client: client.inspect_network(spec.network)
            )
        except APIError as exc:
            if exc.status_code == 404:
                raise InvalidRuntimeSpec(
                    f"network {spec.network!r} of sandbox {spec.name!r} does not exist; create it "
                    f"with 'docker network create {spec.network}' or use bridge, none or host"
                ) from exc
            raise api_error("network inspect", exc) from exc

    async def _handle_create_error(self, spec: SandboxSpec, exc: APIError) -> SandboxState:
        explanation = daemon_message(exc)
        if exc.status_code == 409:
            return await self._adopt(spec)
        if exc.status_code == 404 and "network" in explanation and spec.network in explanation:
            raise InvalidRuntimeSpec(
                f"network {spec.network!r} of sandbox {spec.name!r} does not exist: {explanation}"
            ) from exc
        if exc.status_code == 404:
            raise ImageNotFound(
                f"image {spec.image!r} of sandbox {spec.name!r} is not on the Docker host; "
                "build it (or pull it) and the create is retried"
            ) from exc
        if exc.status_code == 400:
            missing = missing_bind_source(spec, explanation)
            if missing is not None:
                raise missing from exc
            raise InvalidRuntimeSpec(
                f"Docker rejected the spec of sandbox {spec.name!r}: {explanation}"
            ) from exc
        raise api_error("create", exc) from exc

    async def _adopt(self, spec: SandboxSpec) -> SandboxState:
        """Return the container holding ``spec.name`` when it carries our uid, else raise."""
        existing = await self.inspect(spec.name)
        if existing is None:
            raise RuntimeObjectNotFound(
                f"container name {spec.name!r} was taken, but that container is gone; retry create"
            )
        uid = spec.labels.get(LABEL_UID)
        owner = existing.labels.get(LABEL_UID)
        if uid is not None and owner == uid:
            logger.info(
                "container adopted instance=%s name=%s container_id=%s",
                spec.labels.get(LABEL_INSTANCE),
                spec.name,
                existing.id[:12],
            )
            return existing
        raise NameConflict(
            f"container name {spec.name!r} is taken by container {existing.id[:12]}, which this "
            f"controller does not own (its {LABEL_UID} label is {owner!r}, expected {uid!r}); "
            "remove or rename that container"
        )

    async def start(self, sandbox_id: str) -> None:
        """Start the container; starting a running one is fine.

        Raises RuntimeObjectNotFound for a missing container and InvalidRuntimeSpec when the OCI
        runtime cannot run the command or set up a mount. A command that does not exist is not
        such a failure, because docker-init (PID 1) starts and then exits with code 127, or 126
        for a file that is not executable. ``inspect`` then reports docker-init's reason in
        ``error``.
        """
        try:
            await self._docker.call("start", lambda client: client.start(sandbox_id))
        except APIError as exc:
            explanation = daemon_message(exc)
            if exc.status_code == 404 and "no such container" in explanation.lower():
                raise RuntimeObjectNotFound(f"container {sandbox_id} not found") from exc
            if exc.status_code == 404 or is_spec_start_failure(explanation):
                name, command = await self._describe(sandbox_id)
                raise InvalidRuntimeSpec(
                    f"container {name!r} cannot start command {command}: {explanation}"
                ) from exc
            raise api_error("start", exc) from exc

    async def _describe(self, sandbox_id: str) -> tuple[str, str]:
        """Return the container's name and command line for an error message, best effort."""
        try:
            data = await self._inspect_raw(sandbox_id)
        except RuntimeFailure:
            data = None
        if data is None:
            return sandbox_id, "(unknown)"
        argv = [str(data.get("Path", ""))] + [str(arg) for arg in data.get("Args") or []]
        return str(data.get("Name", sandbox_id)).lstrip("/"), shlex.join(argv)

    async def stop(self, sandbox_id: str, timeout: int) -> None:  # noqa: ASYNC109 (protocol)
        """Stop gracefully, killing after ``timeout`` seconds. A stopped or missing one is fine."""
        try:
            await self._docker.call(
                "stop",
                lambda client: client.stop(sandbox_id, timeout=timeout),
                extra_timeout=timeout,
            )
        except APIError as exc:
            if exc.status_code == 404:
                return
            raise api_error("stop", exc) from exc

    async def remove(self, sandbox_id: str) -> None:
        """Remove forcibly, with its anonymous volumes. A missing container is fine."""
        try:
            await self._docker.call(
                "remove", lambda client: client.remove_container(sandbox_id, force=True, v=True)
            )
        except APIError as exc:
            if exc.status_code == 404:
                return
            if exc.status_code == 409 and "already in progress" in daemon_message(exc):
                return
            raise api_error("remove", exc) from exc
        logger.debug("container removed container_id=%s", sandbox_id[:12])

    async def _inspect_raw(self, sandbox_id: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = await self._docker.call(
                "inspect", lambda client: client.inspect_container(sandbox_id)
            )
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise api_error("inspect", exc) from exc
        return data

    async def inspect(self, sandbox_id: str) -> SandboxState | None:
        """Return the container's state by id or name, or None when there is none."""
        data = await self._inspect_raw(sandbox_id)
        if data is None:
            return None
        state = state_from_inspect(data)
        if state.exit_code in TINI_EXEC_EXIT_CODES and not state.error:
            reason = await self._exec_failure(state.id)
            if reason is not None:
                state = dataclasses.replace(state, error=reason)
        return state

    async def _exec_failure(self, sandbox_id: str) -> str | None:
        """Read docker-init's reason from the log tail of a container that exited 126 or 127."""
        try:
            output = await self._docker.call(
                "logs", lambda client: client.logs(sandbox_id, stdout=True, stderr=True, tail=5)
            )
        except APIError:
            return None  # a log driver that cannot be read back leaves the reason unknown
        return tini_exec_failure(output.decode("utf-8", errors="replace"))

    async def list_owned(
        self, labels: dict[str, str], *, detailed: bool = True
    ) -> list[SandboxState]:
        """List every container, running or not, whose labels include all of ``labels``.

        Detailed, it costs one list call plus one inspect per match, run concurrently on the
        pool, because the list data lacks exit codes, start and finish times and the OOM flag,
        which the reconciler needs. Filtered by an instance uid, a list matches one container,
        or two while a recreate is under way. ``detailed=False`` is the list call alone, for
        callers such as the garbage collector that scan every container.
        """
        filters = {"label": label_filters(labels)}
        try:
            summaries = await self._docker.call(
                "list", lambda client: client.containers(all=True, filters=filters)
            )
        except APIError as exc:
            raise api_error("list", exc) from exc
        if not detailed:
            return [state_from_summary(summary) for summary in summaries]
        states = await asyncio.gather(*(self.inspect(str(s["Id"])) for s in summaries))
        # A container removed between the list and its inspect is simply gone.
        return [state for state in states if state is not None]

    async def image_present(self, refs: list[str]) -> dict[str, bool]:
        """Return, for each reference, whether the image exists locally, from one list call.

        References are compared after normalization, so ``busybox``,
        ``busybox:latest`` and ``docker.io/library/busybox:latest`` name the same image.
        """
        try:
            images = await self._docker.call("image list", lambda client: client.images())
        except APIError as exc:
            raise api_error("image list", exc) from exc
        local: set[str] = set()
        for image in images:
            for reference in (image.get("RepoTags") or []) + (image.get("RepoDigests") or []):
                local.add(normalize_image_reference(str(reference)))
        return {ref: normalize_image_reference(ref) in local for ref in refs}

    async def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        """Stream the container's stdout and stderr; the first chunk is ``b""`` once it is open.

        Raises RuntimeObjectNotFound for a missing container and RuntimeUnavailable when the
        stream cannot open or breaks. Closing or cancelling the iterator ends its thread.
        NOTE: containers with a TTY stream one byte per chunk (docker-py reads them raw);
        this driver never creates them with a TTY.
        """

        def open_stream() -> LogStream:
            try:
                stream: LogStream = self._docker.run_sync(
                    "logs",
                    lambda client: client.logs(
                        sandbox_id,
                        stdout=True,
                        stderr=True,
                        stream=True,
                        follow=follow,
                        tail="all" if tail is None else tail,
                    ),
                )
            except APIError as exc:
                if exc.status_code == 404:
                    raise RuntimeObjectNotFound(f"container {sandbox_id} not found") from exc
                raise api_error("logs", exc) from exc
            return stream

        if self._docker.closed:
            raise RuntimeUnavailable("the Docker runtime is closed")
        pump = LogPump(open_stream, loop=asyncio.get_running_loop())
        self._log_pumps.add(pump)
        pump.start()
        try:
            while (chunk := await pump.get()) is not None:
                yield chunk
        finally:
            self._log_pumps.discard(pump)
            pump.stop()
            if not await pump.wait_stopped(grace_seconds=self._docker.call_timeout):
                logger.warning("docker log thread did not stop container_id=%s", sandbox_id[:12])

    async def events(self, labels: dict[str, str]) -> AsyncGenerator[RuntimeEvent, None]:
        """Stream container events whose labels include all of ``labels``.

        Raises RuntimeUnavailable when the stream cannot open, breaks or ends; the caller
        reconnects with backoff and relists. Closing or cancelling the iterator ends its thread.
        """
        filters = {"type": ["container"], "label": label_filters(labels)}

        def open_stream() -> EventStream:
            try:
                return self._docker.run_sync(
                    "events", lambda client: client.events(filters=filters, decode=True)
                )
            except APIError as exc:
                raise api_error("events", exc) from exc

        if self._docker.closed:
            raise RuntimeUnavailable("the Docker runtime is closed")
        pump = EventPump(open_stream, loop=asyncio.get_running_loop())
        self._pumps.add(pump)
        pump.start()
        try:
            while True:
                yield await pump.get()
        finally:
            self._pumps.discard(pump)
            pump.stop()
            if not await pump.wait_stopped(grace_seconds=self._docker.call_timeout):
                logger.warning("docker event thread did not stop host=%s", self._docker.host)

    async def close(self) -> None:
        """End event streams (their iterators raise RuntimeUnavailable) and release the client."""
        for pump in list(self._pumps):
            pump.abort(RuntimeUnavailable("the Docker runtime is closed"))
        for log_pump in list(self._log_pumps):
            log_pump.abort(RuntimeUnavailable("the Docker runtime is closed"))
        self._docker.close()


# Prefixes that Docker Hub references may carry and that the daemon leaves out of RepoTags.
_DOCKER_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/")


def normalize_image_reference(reference: str) -> str:
    """Write an image reference in the form the daemon lists in RepoTags and RepoDigests.

    Docker Hub prefixes are dropped, and ``:latest`` is added when there is neither a tag nor a
    digest.
    """
    name, at, digest = reference.partition("@")
    for prefix in _DOCKER_HUB_PREFIXES:
        if name.startswith(prefix):
            name = name.removeprefix(prefix)
            break
    name = name.removeprefix("library/")
    if at:
        # The daemon lists digests as NAME@DIGEST, without the tag.
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name = name[: len(name) - len(last)] + last.split(":", 1)[0]
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name
