"""The composition root of ``sandboxctl serve``: the only module that wires every layer together.

It opens the store, connects the runtime, and runs the controller, the HTTP API, the
directory source and the git sources in one event loop until SIGTERM or SIGINT. Shutdown
stops the triggers first, then lets running reconciles finish (up to a deadline), then closes
the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Generator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from agentic_sandbox.agent.hub import AgentHub
from agentic_sandbox.agent.server import AgentServer, AgentServerError
from agentic_sandbox.api.app import create_app
from agentic_sandbox.api.limits import (
    KEEP_ALIVE_TIMEOUT_SECONDS,
    MAX_CONCURRENT_CONNECTIONS,
    MAX_HEADER_BYTES,
)
from agentic_sandbox.controller.config import Settings
from agentic_sandbox.controller.credentials import (
    load_or_create_controller_id,
    load_or_create_token,
    read_operator_token,
)
from agentic_sandbox.controller.desired import (
    AGENT_SOCKET_NAME,
    USER_NETWORK_HOST_ADDRESS,
    HostPolicy,
)
from agentic_sandbox.controller.gc import GcSettings
from agentic_sandbox.controller.loadouts import LoadoutCatalog
from agentic_sandbox.controller.manager import Controller
from agentic_sandbox.controller.missions import MissionDispatcher
from agentic_sandbox.errors import RuntimeUnavailable
from agentic_sandbox.runtimes.base import Runtime
from agentic_sandbox.runtimes.docker import DockerRuntime
from agentic_sandbox.runtimes.docker_bridge import bridge_gateway
from agentic_sandbox.runtimes.libvirt import LibvirtRuntime
from agentic_sandbox.runtimes.router import RuntimeRouter
from agentic_sandbox.sources.directory import DirectorySource
from agentic_sandbox.sources.git_sources import GitSources
from agentic_sandbox.store.sqlite import SqliteStore

logger = logging.getLogger("agentic_sandbox")

SHUTDOWN_DRAIN_SECONDS = 10.0
API_SHUTDOWN_SECONDS = 2
# Longest Unix socket path Linux accepts (sun_path holds 108 bytes with the final NUL).
MAX_SOCKET_PATH = 107
# Agent server listen hosts that include the IPv4 loopback address.
LOOPBACK_LISTEN_HOSTS = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::"})


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the composition root."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Request lines are access logs, not controller diagnostics.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def check_bind_address(host: str, token_file: Path | None) -> None:
    """Allow a non-loopback bind only with an operator-provided token file."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and token_file is None:
        raise SystemExit(
            f"error: --host {host} would expose the API beyond this machine; that needs a token "
            "of your own in a file given with --token-file (env AGENTIC_SANDBOX_TOKEN_FILE), "
            "or use a loopback address such as 127.0.0.1"
        )


def api_token(settings: Settings) -> str:
    if settings.token_file is None:
        return load_or_create_token(settings.token_path)
    try:
        return read_operator_token(settings.token_file)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def check_paths(settings: Settings) -> None:
    """Reject unusable directories before anything starts, naming the option and the fix."""
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.state_dir, 0o700)
    except OSError as error:
        raise SystemExit(
            f"error: --state-dir {settings.state_dir} cannot be used: {error.strerror or error}; "
            "choose a writable directory"
        ) from None
    manifests = settings.manifests_dir
    if manifests is not None and not manifests.is_dir():
        raise SystemExit(
            f"error: --manifests {manifests} is not a directory; create it or fix the path"
        )
    for root in settings.allowed_mount_roots:
        if not root.is_absolute():
            raise SystemExit(
                f"error: --allowed-mount-root {root} is not an absolute path; write it from '/'"
            )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the API's listening socket now, so a port in use is a clear error at start-up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and accepted sockets
    # take their proto from this one. With proto 0, Nagle's algorithm delays each response body
    # until the client's delayed ACK of the headers, about 40 ms per request on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise SystemExit(
            f"error: cannot listen on {host}:{port}: {error.strerror or error}; stop what uses "
            "the port or choose another with --port"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def server_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    """Configure uvicorn with the connection and header limits of ``api/limits.py``.

    ``http="h11"`` is fixed because the header size limit is an h11 setting: with httptools
    installed, uvicorn's default ``auto`` would pick httptools and ignore it.
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        lifespan="off",
        http="h11",
        limit_concurrency=MAX_CONCURRENT_CONNECTIONS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_SECONDS,
        # Followed streams (events, logs, exec) never end by themselves; at shutdown they get
        # this long before uvicorn cancels them.
        timeout_graceful_shutdown=API_SHUTDOWN_SECONDS,
    )


def serve(settings: Settings) -> int:
    """Run the controller until a signal arrives; return the process exit code."""
    configure_logging(settings.log_level)
    check_bind_address(settings.host, settings.token_file)
    check_paths(settings)
    api_token(settings)  # fail before anything starts when the token file is unusable
    listener = bind_socket(settings.host, settings.port)
    try:
        asyncio.run(_serve(settings, listener))
    except KeyboardInterrupt:
        pass
    return 0


async def _open_runtimes(settings: Settings) -> RuntimeRouter:
    """Create the Docker driver and, unless turned off, the libvirt driver behind one router.

    A daemon that does not respond yet is only logged: its instances report Unknown until it
    does, and the other runtime's instances are not held up.
    """
    drivers: dict[str, Runtime] = {
        "docker": DockerRuntime(
            base_url=settings.docker_host,
            call_timeout=settings.runtime_call_timeout,
            allow_socket_mounts=settings.allow_docker_socket,
        )
    }
    if settings.libvirt_uri is not None:
        drivers["libvirt"] = LibvirtRuntime(
            uri=settings.libvirt_uri,
            vm_dir=settings.vm_dir,
            call_timeout=settings.runtime_call_timeout,
        )
    for name, driver in drivers.items():
        try:
            await driver.ping()
        except RuntimeUnavailable as error:
            logger.warning(
                "runtime is not reachable yet; will keep retrying runtime=%s error=%s", name, error
            )
    return RuntimeRouter(drivers)


async def _serve(settings: Settings, listener: socket.socket) -> None:
    token = api_token(settings)
    controller_id = settings.controller_id or load_or_create_controller_id(settings.state_dir)

    store = await SqliteStore(settings.database_path).open()
    runtime = await _open_runtimes(settings)

    policy = HostPolicy(
        controller_id=controller_id,
        mount_roots=settings.mount_roots,
        workspace_root=settings.workspace_root,
        management_server=settings.agent_server_address,
        allow_docker_socket=settings.allow_docker_socket,
        agent_socket_dir=_agent_socket_dir(settings),
        vm_management_server=vm_agent_address(settings),
    )
    catalog = LoadoutCatalog(store, settings.loadout_dir)
    controller = Controller(
        store=store,
        runtime=runtime,
        events=store.events,
        policy=policy,
        node=settings.node_name,
        workers=settings.workers,
        resync_interval=settings.resync_interval,
        gc=GcSettings(
            enabled=settings.docker_monitor_enabled,
            interval=settings.docker_poll_interval,
            creation_grace=settings.gc_creation_grace,
            orphaned_age=settings.docker_orphaned_age,
            name_prefix=settings.docker_orphan_name_prefix,
            startup_delay=settings.gc_startup_delay,
        ),
        loadouts=lambda name, namespace: catalog.resolve(name, namespace=namespace),
        agent_heartbeat_interval=settings.agent_heartbeat_interval,
    )
    agent_hub = AgentHub(is_stale=controller.agents.is_stale)
    agent_server = AgentServer(
        tracker=controller.agents,
        hub=agent_hub,
        recorder=controller.recorder,
        addresses=await agent_addresses(settings),
        unix_socket=(
            policy.agent_socket_dir / AGENT_SOCKET_NAME if policy.agent_socket_dir else None
        ),
    )
    missions = MissionDispatcher(
        store=store,
        missions=store.missions,
        commands=agent_hub,
        agents=controller.agents,
        recorder=controller.recorder,
    )
    # Missions an earlier process left running get their final state before the API serves.
    await missions.recover()
    # Each GitSource's repository cache lives under the state directory.
    git_sources = GitSources(
        store=store, event_log=store.events, cache_root=settings.state_dir / "git"
    )
    api = create_app(
        store=store,
        event_log=store.events,
        git_sync=git_sources,
        token=token,
        gc=controller.gc,
        runtime=runtime,
        controller_metrics=controller.metrics,
        queue=controller.queue,
        controller_id=controller_id,
        loadouts=catalog,
        commands=agent_hub,
        missions=missions,
    )
    server = _EmbeddedServer(server_config(api, settings))
    source = None
    if settings.manifests_dir is not None:
        source = DirectorySource(settings.manifests_dir, store=store, event_log=store.events)

    try:
        await agent_server.start()
    except AgentServerError as error:
        await runtime.close()
        await store.close()
        raise SystemExit(f"error: {error}") from None
    try:
        await _run_until_signal(
            controller,
            server,
            source,
            listener,
            git_sources=git_sources,
            end_follows=store.end_follows,
        )
    finally:
        await missions.stop()
        await agent_server.stop(SHUTDOWN_DRAIN_SECONDS)
        await runtime.close()
        await store.close()
        logger.info("controller stopped")


def _agent_socket_dir(settings: Settings) -> Path | None:
    """Return the agent socket's directory, or None when its path is too long for a socket."""
    directory = settings.agent_socket_dir
    if len(str(directory / AGENT_SOCKET_NAME)) > MAX_SOCKET_PATH:
        logger.warning(
            "agent socket path too long; sandboxes with network none cannot reach the agent "
            "server path=%s",
            directory / AGENT_SOCKET_NAME,
        )
        return None
    return directory


def vm_agent_address(settings: Settings) -> str | None:
    """Return the agent server address for VMs on QEMU's user-mode network, or None.

    QEMU maps the guest's USER_NETWORK_HOST_ADDRESS to the host's loopback, so the address
    works only when the agent server listens on loopback or on every address.
    """
    hosts = settings.agent_hosts or ["127.0.0.1"]
    if not LOOPBACK_LISTEN_HOSTS.intersection(hosts):
        logger.warning(
            "agent server does not listen on loopback; virtual machines cannot reach it hosts=%s",
            ",".join(hosts),
        )
        return None
    return f"{USER_NETWORK_HOST_ADDRESS}:{settings.grpc_port}"


async def agent_addresses(settings: Settings) -> list[str]:
    """Return the ``host:port`` listeners of the agent server.

    By default: loopback, and the Docker bridge gateway that containers reach as
    host.docker.internal. Never the wildcard address unless the operator lists it.
    """
    hosts = list(settings.agent_hosts)
    if not hosts:
        hosts = ["127.0.0.1"]
        gateway = await bridge_gateway(settings.docker_host)
        if gateway is None:
            logger.warning(
                "agent server listens on loopback only; containers cannot reach it until "
                "the Docker bridge exists and the controller restarts"
            )
        else:
            hosts.append(gateway)
    return [
        f"[{host}]:{settings.grpc_port}" if ":" in host else f"{host}:{settings.grpc_port}"
        for host in hosts
    ]


async def _run_until_signal(
    controller: Controller,
    server: uvicorn.Server,
    source: DirectorySource | None,
    listener: socket.socket,
    *,
    git_sources: GitSources | None = None,
    end_follows: Callable[[], None] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    tasks = [
        asyncio.create_task(controller.run(), name="controller"),
        asyncio.create_task(server.serve(sockets=[listener]), name="api"),
    ]
    if git_sources is not None:
        tasks.append(asyncio.create_task(git_sources.run(), name="git-sources"))
    if source is not None:
        tasks.append(asyncio.create_task(source.run(), name="directory-source"))
    stopper = asyncio.create_task(stop.wait(), name="signal")

    # Run until a signal arrives or any part ends (a crashed part stops the whole process).
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    failed = [
        task
        for task in done
        if task is not stopper and not task.cancelled() and task.exception() is not None
    ]
    for task in failed:
        logger.error("component failed component=%s", task.get_name(), exc_info=task.exception())
    logger.info("shutting down")

    if source is not None:
        tasks[-1].cancel()
    if git_sources is not None:
        # Syncs that are running finish (or are cancelled at the deadline) before the
        # controller drains, so their writes are reconciled or left for the next start.
        await git_sources.stop(SHUTDOWN_DRAIN_SECONDS)
    server.should_exit = True
    await controller.stop(SHUTDOWN_DRAIN_SECONDS)
    # The API ends its connections before the store they read is closed: followed event
    # streams end now, and other requests finish.
    if end_follows is not None:
        end_follows()
    api = tasks[1]
    await asyncio.wait({api}, timeout=API_SHUTDOWN_SECONDS + SHUTDOWN_DRAIN_SECONDS)
    for task in tasks:
        task.cancel()
    stopper.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    if failed:
        raise SystemExit(1)
