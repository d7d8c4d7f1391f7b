"""One SQLite connection owned by one worker thread, shared by the store and the event log.

Every call runs on a single dedicated thread, so the asyncio event loop does not block on disk
I/O. Calls run one at a time in submission order, so a function passed to ``run`` observes the
effects of every call submitted before it and none of the ones after.

Writers notify waiters through a ``Broadcast`` after their transaction has committed, from the
worker thread, so a waiter is woken even when the coroutine that submitted the write was
cancelled meanwhile.

The database runs in WAL mode with ``synchronous=FULL``. SQLite then syncs the WAL file at
every commit (SQLite documentation, PRAGMA synchronous), so a transaction whose COMMIT returned
survives a crash of the process and, on storage that honors fsync, a power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from agentic_sandbox.errors import StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000


class Broadcast:
    """Wakes every subscribed waiter; each waiter owns an ``asyncio.Event`` it clears itself."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            yield waiter
        finally:
            self._waiters.discard(waiter)

    def fire(self) -> None:
        for waiter in self._waiters:
            waiter.set()


class SqliteDatabase:
    """The SQLite file, its connection and the worker thread that owns that connection."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._follows_ended = False
        self._broadcasts: list[Broadcast] = []

    @property
    def closed(self) -> bool:
        return self._closed

    def broadcast(self) -> Broadcast:
        """Create a broadcast that ``close`` fires, so its waiters see the shutdown."""
        broadcast = Broadcast()
        self._broadcasts.append(broadcast)
        return broadcast

    async def open(self, schema: str) -> None:
        """Open the file on the worker thread, set the pragmas and run the ``schema`` script."""
        if self._executor is not None:
            raise RuntimeError(f"database {self.path} is already open")
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await self._submit(self._connect, schema)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        logger.info("store opened", extra={"path": str(self.path)})

    def _connect(self, schema: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None turns off implicit transactions, because writers use BEGIN IMMEDIATE.
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL is required")
            connection.execute("PRAGMA synchronous = FULL")
            connection.executescript(schema)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    async def run(
        self,
        function: Callable[[sqlite3.Connection], T],
        *,
        notify: Broadcast | None = None,
    ) -> T:
        """Run ``function(connection)`` on the worker thread and return its result.

        ``notify`` is fired after ``function`` returns, so writers must commit inside it.
        sqlite3 errors become StoreUnavailable; the project's own errors pass through.
        """
        if self._closed or self._executor is None:
            raise StoreUnavailable(f"store {self.path} is closed")
        return await self._submit(self._call, function, notify)

    def _call(self, function: Callable[[sqlite3.Connection], T], notify: Broadcast | None) -> T:
        assert self._connection is not None
        result = function(self._connection)
        if notify is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(notify.fire)
        return result

    async def _submit(self, function: Callable[..., T], *args: object) -> T:
        assert self._loop is not None and self._executor is not None
        try:
            return await self._loop.run_in_executor(self._executor, partial(function, *args))
        except sqlite3.Error as error:
            raise StoreUnavailable(f"SQLite call on store {self.path} failed: {error}") from error

    async def follow(
        self,
        broadcast: Broadcast,
        fetch: Callable[[int, sqlite3.Connection], Sequence[T]],
        *,
        after: int,
        position: Callable[[T], int],
        batch_size: int,
    ) -> AsyncGenerator[T, None]:
        """Yield rows that ``fetch(after, connection)`` returns, then wait for ``broadcast``.

        ``fetch`` returns at most ``batch_size`` rows past position ``after``, in order;
        ``position`` gives a row's position. The iteration ends when the database is closed.
        """
        # Subscribe before the first read, and clear before every read: a write that commits
        # after a read fires the broadcast again, so the wait below cannot miss it.
        with broadcast.subscribe() as wakeup:
            while not self._closed and not self._follows_ended:
                wakeup.clear()
                try:
                    rows = await self.run(partial(fetch, after))
                except StoreUnavailable:
                    if self._closed:
                        return
                    raise
                for row in rows:
                    after = position(row)
                    yield row
                if len(rows) < batch_size:
                    await wakeup.wait()

    def end_follows(self) -> None:
        """End every ``follow`` iteration now, while calls still work (for a shutdown that
        lets its clients finish before the database closes)."""
        self._follows_ended = True
        for broadcast in self._broadcasts:
            broadcast.fire()

    async def close(self) -> None:
        """Wake every waiter, then close the connection after the calls already submitted."""
        if self._closed:
            return
        self._closed = True
        for broadcast in self._broadcasts:
            broadcast.fire()
        if self._executor is None:
            return
        try:
            await self._submit(self._disconnect)
        finally:
            self._executor.shutdown(wait=False)
            logger.info("store closed", extra={"path": str(self.path)})

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@contextlib.contextmanager
def transaction(
    connection: sqlite3.Connection, mode: str = "IMMEDIATE"
) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction: committed when it ends, rolled back when it raises.

    ``IMMEDIATE`` takes the write lock up front; ``DEFERRED`` gives a read snapshot.
    """
    connection.execute(f"BEGIN {mode}")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself after some errors (disk full, I/O error).
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
