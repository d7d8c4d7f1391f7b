"""The durable event log: a table in the store's SQLite file.

``SqliteStore`` builds one and exposes it as ``store.events``. It shares the store's worker
thread and connection, so an append does not block the event loop, and an event whose
``append`` returned survives a crash.

Guarantees:

- ``append`` assigns ids that only grow, also across restarts and after pruning
  (the table uses AUTOINCREMENT, so an id is never reused).
- Retention keeps at most ``max_events`` events no older than ``max_age``. Pruning runs when
  the log opens, then every ``prune_interval`` appends or once a minute, whichever comes
  first, so between two prunes the log may hold up to ``prune_interval`` events past its
  bound.
- ``subscribe`` yields events as they are appended, woken by the append itself, not by polling.
  A subscriber that falls behind pruning skips the pruned events; events are a record for
  people, not a consistency mechanism (the store's watch is that).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncGenerator
from datetime import timedelta
from functools import partial

from agentic_sandbox.crds.event import Event
from agentic_sandbox.store.sqlite_database import SqliteDatabase, transaction

DEFAULT_MAX_EVENTS = 100_000
DEFAULT_MAX_EVENT_AGE = timedelta(days=7)
# Appends between two count-based prunes, at most; smaller logs prune more often.
PRUNE_INTERVAL = 1000
# Seconds between two prunes at least once appends arrive, so old events age out.
PRUNE_PERIOD = 60.0
SUBSCRIBE_BATCH = 500

EVENT_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    name TEXT NOT NULL,
    instance TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE INDEX IF NOT EXISTS events_by_instance ON events (instance, id);
"""


class SqliteEventLog:
    """Event log on a ``SqliteDatabase``; ``time`` is stored as Unix seconds for retention."""

    def __init__(
        self,
        database: SqliteDatabase,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_age: timedelta = DEFAULT_MAX_EVENT_AGE,
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events is {max_events}; set at least 1")
        if max_age <= timedelta(0):
            raise ValueError(f"max_age is {max_age}; set a positive duration")
        self._db = database
        self._appended = database.broadcast()
        self.max_events = max_events
        self.max_age = max_age
        self.prune_interval = max(1, min(PRUNE_INTERVAL, max_events // 10))
        self._appends_since_prune = 0
        self._last_prune = time.monotonic()

    async def append(self, event: Event) -> Event:
        """Store ``event`` and return it with its assigned id; ``event.id`` is ignored."""
        self._appends_since_prune += 1
        prune = (
            self._appends_since_prune >= self.prune_interval
            or time.monotonic() - self._last_prune >= PRUNE_PERIOD
        )
        if prune:
            self._appends_since_prune = 0
            self._last_prune = time.monotonic()
        insert = partial(self._insert, event, prune)
        return await self._db.run(insert, notify=self._appended)

    async def list(
        self,
        *,
        since_id: int | None = None,
        instance: str | None = None,
        name_prefix: str | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """List events in ascending id order.

        With ``since_id``, returns the oldest ``limit`` events after it, to page forward or
        tail. Without it, returns the newest ``limit`` events. ``instance`` is a
        ``namespace/name`` key, and ``name_prefix`` selects names such as ``container.``.
        """
        if limit < 1:
            raise ValueError(f"limit is {limit}; set at least 1")
        query = _Query()
        if since_id is not None:
            query.add("id > ?", since_id)
        if instance is not None:
            query.add("instance = ?", instance)
        if name_prefix:
            query.add("substr(name, 1, ?) = ?", len(name_prefix), name_prefix)
        newest_first = since_id is None
        return await self._db.run(partial(_select, query, newest_first, limit))

    async def subscribe(self, since_id: int | None = None) -> AsyncGenerator[Event, None]:
        """Yield events appended after ``since_id``, then wait for more.

        Without ``since_id`` the iteration starts after the newest event at its first step. To
        show history then follow without a gap, ``list`` first and pass the last id seen. The
        iteration ends when the store is closed.
        """
        if since_id is None:
            if self._db.closed:
                return
            since_id = await self._db.run(_newest_id)
        follow = self._db.follow(
            self._appended,
            _select_after,
            after=since_id,
            position=lambda event: event.id or 0,
            batch_size=SUBSCRIBE_BATCH,
        )
        async with contextlib.aclosing(follow) as events:
            async for event in events:
                yield event

    async def prune(self) -> int:
        """Delete events past the count and age bounds now; returns how many were deleted."""
        return await self._db.run(self._prune)

    def _insert(self, event: Event, prune: bool, connection: sqlite3.Connection) -> Event:
        with transaction(connection):
            cursor = connection.execute(
                "INSERT INTO events (time, name, instance, data) VALUES (?, ?, ?, ?)",
                (event.time.timestamp(), event.name, event.instance, _record(event)),
            )
        if prune:
            self._prune(connection)
        return event.model_copy(update={"id": cursor.lastrowid})

    def _prune(self, connection: sqlite3.Connection) -> int:
        cutoff = time.time() - self.max_age.total_seconds()
        with transaction(connection):
            by_age = connection.execute("DELETE FROM events WHERE time < ?", (cutoff,))
            # The subquery finds the newest event past the count bound; it and all older go.
            by_count = connection.execute(
                "DELETE FROM events WHERE id <= "
                "(SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.max_events,),
            )
        return int(by_age.rowcount) + int(by_count.rowcount)


class _Query:
    """A WHERE clause built from optional conditions, with its parameters."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.parameters: list[object] = []

    def add(self, condition: str, *parameters: object) -> None:
        self.conditions.append(condition)
        self.parameters.extend(parameters)

    @property
    def where(self) -> str:
        return " WHERE " + " AND ".join(self.conditions) if self.conditions else ""


def _record(event: Event) -> str:
    data = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("id", None)
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _event(event_id: int, data: str) -> Event:
    event = Event.model_validate_json(data)
    return event.model_copy(update={"id": event_id})


def _select(
    query: _Query, newest_first: bool, limit: int, connection: sqlite3.Connection
) -> list[Event]:
    order = "DESC" if newest_first else "ASC"
    rows = connection.execute(
        f"SELECT id, data FROM events{query.where} ORDER BY id {order} LIMIT ?",
        (*query.parameters, limit),
    ).fetchall()
    if newest_first:
        rows.reverse()
    return [_event(event_id, data) for event_id, data in rows]


def _select_after(after: int, connection: sqlite3.Connection) -> list[Event]:
    query = _Query()
    query.add("id > ?", after)
    return _select(query, False, SUBSCRIBE_BATCH, connection)


def _newest_id(connection: sqlite3.Connection) -> int:
    (newest,) = connection.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
    return int(newest)
