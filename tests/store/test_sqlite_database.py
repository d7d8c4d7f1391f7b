"""SqliteDatabase: the worker thread, transactions, error translation and follow."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from agentic_sandbox.errors import NotFound, StoreUnavailable
from agentic_sandbox.store.sqlite_database import SqliteDatabase, transaction
from tests.store.conftest import DEADLINE, wait_until

SCHEMA = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, value TEXT NOT NULL);"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    opened = SqliteDatabase(tmp_path / "nested" / "test.db")
    await opened.open(SCHEMA)
    yield opened
    await opened.close()


def insert(value: str, connection: sqlite3.Connection) -> int:
    with transaction(connection):
        cursor = connection.execute("INSERT INTO items (value) VALUES (?)", (value,))
    return int(cursor.lastrowid or 0)


def values(connection: sqlite3.Connection) -> list[str]:
    return [value for (value,) in connection.execute("SELECT value FROM items ORDER BY id")]


async def test_run_uses_one_worker_thread(database: SqliteDatabase) -> None:
    def thread_id(connection: sqlite3.Connection) -> int:
        return threading.get_ident()

    ids = await asyncio.gather(*(database.run(thread_id) for _ in range(20)))

    assert len(set(ids)) == 1
    assert ids[0] != threading.get_ident()


async def test_run_keeps_submission_order(database: SqliteDatabase) -> None:
    await asyncio.gather(*(database.run(partial(insert, str(i))) for i in range(50)))

    assert await database.run(values) == [str(i) for i in range(50)]


async def test_transaction_rolls_back_on_error(database: SqliteDatabase) -> None:
    def insert_then_fail(connection: sqlite3.Connection) -> None:
        with transaction(connection):
            connection.execute("INSERT INTO items (value) VALUES ('lost')")
            raise NotFound("items/missing not found")

    with pytest.raises(NotFound):
        await database.run(insert_then_fail)

    assert await database.run(values) == []
    assert not await database.run(lambda connection: connection.in_transaction)


async def test_sqlite_error_becomes_unavailable(database: SqliteDatabase) -> None:
    def bad_query(connection: sqlite3.Connection) -> None:
        connection.execute("SELECT * FROM missing_table")

    with pytest.raises(StoreUnavailable, match="no such table") as caught:
        await database.run(bad_query)

    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


async def test_open_twice_raises(database: SqliteDatabase) -> None:
    with pytest.raises(RuntimeError, match="already open"):
        await database.open(SCHEMA)


async def test_run_after_close_raises(database: SqliteDatabase) -> None:
    await database.close()

    with pytest.raises(StoreUnavailable, match="closed"):
        await database.run(values)


async def test_close_waits_for_submitted_calls(database: SqliteDatabase) -> None:
    pending = asyncio.create_task(database.run(partial(insert, "last")))
    await asyncio.sleep(0)  # one step: the task submits its call to the worker

    await database.close()

    assert await pending == 1


async def test_follow_sees_write_committed_after_read(database: SqliteDatabase) -> None:
    """A write that commits after a read but before the wait must wake the follower."""
    broadcast = database.broadcast()
    loop = asyncio.get_running_loop()
    writes_left = [1]

    def fetch(after: int, connection: sqlite3.Connection) -> list[int]:
        rows = [
            row_id
            for (row_id,) in connection.execute("SELECT id FROM items WHERE id > ?", (after,))
        ]
        if writes_left.pop() if writes_left else 0:
            # Another writer commits right after this read and fires the broadcast, before
            # the follower has resumed from the read.
            insert("late", connection)
            loop.call_soon_threadsafe(broadcast.fire)
        return rows

    follow = database.follow(broadcast, fetch, after=0, position=lambda row: row, batch_size=10)

    row = await asyncio.wait_for(anext(follow), DEADLINE)

    assert row == 1
    await follow.aclose()


async def test_follow_ends_on_close(database: SqliteDatabase) -> None:
    broadcast = database.broadcast()

    def fetch(after: int, connection: sqlite3.Connection) -> list[int]:
        return []

    follow = database.follow(broadcast, fetch, after=0, position=lambda row: row, batch_size=10)
    waiting = asyncio.ensure_future(anext(follow))
    await wait_until(lambda: len(broadcast._waiters) > 0)

    await database.close()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, DEADLINE)
