"""Fixtures for API tests: the app over a real SqliteStore, reached through ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from agentic_sandbox.api.app import create_app
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.runtime_support import runtime, runtime_app, runtime_client  # noqa: F401
from tests.api.support import BASE_URL, TOKEN


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def app(store: SqliteStore) -> Starlette:
    return create_app(store=store, event_log=store.events, token=TOKEN)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends the right bearer token."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as http:
        yield http


@pytest.fixture
async def anonymous(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no Authorization header."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http
