"""Fixtures for the store tests: a fresh SQLite store per test and Instance builders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.store.sqlite import SqliteStore

# Deadline for anything a test waits for; never reached when the store works.
DEADLINE = 5.0


def make_instance(name: str = "web", namespace: str = "default", **metadata: Any) -> Instance:
    """Build an Instance with a small docker spec; keyword arguments go into metadata."""
    return Instance.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": {"image": "busybox:1.36", "env": {"MODE": "test"}},
        }
    )


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` until it holds, failing after DEADLINE seconds.

    Only for internal states that no event announces, such as a watcher being subscribed.
    """
    async with asyncio.timeout(DEADLINE):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "store.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(db_path) as opened:
        yield opened
