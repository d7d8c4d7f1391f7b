"""Fixtures for CLI tests: a real uvicorn server on 127.0.0.1 and a way to run sandboxctl.

The server runs in its own thread and event loop over a real SqliteStore in the test's state
directory. The listening socket is bound before the thread starts, so a client can connect at
once: the kernel queues the connection until uvicorn accepts it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from agentic_sandbox.api.app import create_app
from agentic_sandbox.cli.main import run_cli
from agentic_sandbox.controller.credentials import load_or_create_token
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.runtime_support import CONTROLLER_ID, ObservedRuntime
from tests.cli.support import Result, Sandboxctl

T = TypeVar("T")

# Seconds to wait for the server thread to open the store, and to stop.
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0


class ApiServer:
    """A running API server; ``call`` runs a coroutine on its loop, for seeding the store."""

    def __init__(self, state_dir: Path, *, runtime: ObservedRuntime | None = None) -> None:
        self.state_dir = state_dir
        # Used on the server's loop only, so tests reach it through ``call``.
        self.runtime = runtime
        self.token = load_or_create_token(state_dir / "api-token")
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.store: SqliteStore | None = None
        self._server: uvicorn.Server | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            raise RuntimeError(f"API server did not start within {STARTUP_TIMEOUT} seconds")
        if self._failure is not None:
            raise RuntimeError("API server failed to start") from self._failure

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(SHUTDOWN_TIMEOUT)
        self._socket.close()
        assert not self._thread.is_alive(), "API server thread did not stop"

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=STARTUP_TIMEOUT)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the test thread by start()
            self._failure = error
            self._ready.set()

    async def _serve(self) -> None:
        async with SqliteStore(self.state_dir / "state.db") as store:
            app = create_app(
                store=store,
                event_log=store.events,
                token=self.token,
                runtime=self.runtime,
                controller_id=CONTROLLER_ID,
            )
            config = uvicorn.Config(app, log_level="warning", lifespan="off")
            self._server = uvicorn.Server(config)
            self.store = store
            self.loop = asyncio.get_running_loop()
            self._ready.set()
            await self._server.serve(sockets=[self._socket])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    running = ApiServer(tmp_path / "state")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client_env(server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> ApiServer:
    """Point sandboxctl at ``server`` through the environment, with the token from its file."""
    monkeypatch.setenv("SANDBOXCTL_SERVER", server.url)
    monkeypatch.setenv("AGENTIC_SANDBOX_STATE_DIR", str(server.state_dir))
    monkeypatch.delenv("SANDBOXCTL_TOKEN", raising=False)
    return server


@pytest.fixture
def sandboxctl(capsys: pytest.CaptureFixture[str]) -> Sandboxctl:
    """Run sandboxctl in this process and return its exit code and output."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = run_cli(list(argv))
        captured = capsys.readouterr()
        return Result(code=code, out=captured.out, err=captured.err)

    return run


@pytest.fixture
def runtime_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    """A server whose API has an ObservedRuntime, with sandboxctl pointed at it."""
    running = ApiServer(tmp_path / "state", runtime=ObservedRuntime())
    running.start()
    monkeypatch.setenv("SANDBOXCTL_SERVER", running.url)
    monkeypatch.setenv("AGENTIC_SANDBOX_STATE_DIR", str(running.state_dir))
    monkeypatch.delenv("SANDBOXCTL_TOKEN", raising=False)
    try:
        yield running
    finally:
        running.stop()
