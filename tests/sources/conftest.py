"""Fixtures for the source tests: a real SQLite store, a manifest directory, a recorder of
store changes, and a running directory source."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentic_sandbox.sources.directory import DirectorySource
from agentic_sandbox.store.sqlite import SqliteStore
from tests.sources.support import DEADLINE, Probe, StartSource


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "state" / "store.db") as opened:
        yield opened


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    return directory


@pytest.fixture
async def probe(store: SqliteStore) -> AsyncIterator[Probe]:
    recorder = Probe(store)
    since = await store.current_resource_version()
    task = asyncio.create_task(recorder.record(since))
    yield recorder
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def start_source(store: SqliteStore, root: Path) -> AsyncIterator[StartSource]:
    """Start ``DirectorySource.run`` in the background and wait until it watches ``root``."""
    tasks: list[asyncio.Task[None]] = []

    async def start(directory: Path = root, **options: object) -> DirectorySource:
        source = DirectorySource(directory, store=store, event_log=store.events, **options)  # type: ignore[arg-type]
        task = asyncio.create_task(source.run())
        tasks.append(task)
        waiting = asyncio.create_task(source.watching.wait())
        done, _ = await asyncio.wait(
            {task, waiting}, timeout=DEADLINE, return_when="FIRST_COMPLETED"
        )
        if task in done:
            task.result()
        assert waiting in done, "the directory source did not start watching"
        return source

    yield start
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
