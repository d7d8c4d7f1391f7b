"""The embedded Store backend: one SQLite file in WAL mode.

Keeps every guarantee of ``store.base`` and adds these facts:

- Objects are rows keyed by (kind, namespace, name) holding the JSON of ``Resource.to_wire()``.
  Every write runs in one transaction that also bumps the store-wide resourceVersion counter and
  appends a row (resourceVersion, kind, ADDED/MODIFIED/DELETED, object JSON) to the change
  history. The history keeps the newest ``history_limit`` changes of all kinds together. A watch
  from a resourceVersion older than the oldest kept change minus one raises Expired.
- ``create`` ignores the server-set metadata and the status of its argument: the new object gets
  a fresh uid, ``generation=1``, the creation time and the kind's default status.
- ``update`` and ``update_status`` treat ``metadata.uid``, when set, as a precondition too, so a
  writer cannot overwrite an object that was deleted and created again under the same name.
  ``update`` cannot change uid, creationTimestamp, generation or deletionTimestamp, and cannot add
  a finalizer to an object that is being deleted.
- An update or status update that changes nothing is not written. It returns the stored object
  with its current resourceVersion and records no change, so a controller that writes the same
  status twice does not wake itself up forever.
- ``delete`` raises NotFound for a missing object. It returns None when the record is gone, or
  the stored object when finalizers keep it (deletionTimestamp set on the first delete only).
- All SQLite work runs on one worker thread (see ``sqlite_database``); sqlite3 errors surface as
  StoreUnavailable.

Open the store before use, either with ``await SqliteStore(path).open()`` or with
``async with SqliteStore(path) as store:``. The event log lives in the same file and shares the
worker thread: it is ``store.events``. So is the mission log, ``store.missions``.

NOTE: watchers are woken by writes made through this process only. Two processes writing one
file keep every guarantee except one: a watcher in one process gets the other's writes only
after its own process writes something.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncGenerator, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from agentic_sandbox.crds.meta import Resource, utcnow
from agentic_sandbox.crds.registry import resource_class, resource_from_wire
from agentic_sandbox.errors import AlreadyExists, Conflict, Expired, InvalidResource, NotFound
from agentic_sandbox.store.base import ListResult, WatchEvent, WatchEventType
from agentic_sandbox.store.events import (
    DEFAULT_MAX_EVENT_AGE,
    DEFAULT_MAX_EVENTS,
    EVENT_LOG_SCHEMA,
    SqliteEventLog,
)
from agentic_sandbox.store.missions import MISSION_LOG_SCHEMA, SqliteMissionLog
from agentic_sandbox.store.sqlite_database import SqliteDatabase, transaction

DEFAULT_HISTORY_LIMIT = 10000
# Changes read from the history per worker call while a watch catches up.
WATCH_BATCH = 500

STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    resource_version INTEGER NOT NULL,
    compacted_version INTEGER NOT NULL
);
INSERT OR IGNORE INTO store_state (id, resource_version, compacted_version) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    resource_version INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_kind ON changes (kind, resource_version);
"""

Record = dict[str, Any]

# Metadata fields only the store sets; ``update`` keeps the stored values.
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp")


class SqliteStore:
    """Store backend on one SQLite file; ``store.events`` is the event log in the same file."""

    def __init__(
        self,
        path: str | Path,
        *,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_age: timedelta = DEFAULT_MAX_EVENT_AGE,
    ) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit is {history_limit}; set at least 1")
        self._db = SqliteDatabase(path)
        self._history_limit = history_limit
        self._changed = self._db.broadcast()
        self.events = SqliteEventLog(self._db, max_events=max_events, max_age=max_event_age)
        self.missions = SqliteMissionLog(self._db)

    @property
    def path(self) -> Path:
        return self._db.path

    async def open(self) -> Self:
        """Open (creating when missing) the database file; returns the store itself."""
        await self._db.open(STORE_SCHEMA + EVENT_LOG_SCHEMA + MISSION_LOG_SCHEMA)
        await self.events.prune()
        return self

    def end_follows(self) -> None:
        """End every watch and event subscription now; other calls keep working."""
        self._db.end_follows()

    async def close(self) -> None:
        """End every watch and subscription, then close the database after pending calls."""
        await self._db.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # Reads

    async def current_resource_version(self) -> int:
        return await self._db.run(_current_version)

    async def get(self, kind: str, namespace: str, name: str) -> Resource:
        return await self._db.run(partial(_get, kind, namespace, name))

    async def list(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> ListResult:
        """List objects of ``kind`` whose labels include all of ``labels``, sorted by key.

        ``resource_version`` of the result is the store's current one: watching from it misses
        no change made after the listing.
        """
        return await self._db.run(partial(_list, kind, namespace, labels or {}))

    async def list_json(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        phase: str | None = None,
    ) -> tuple[Sequence[str], int]:
        """List the stored JSON text of matching objects; see ``Store.list_json``."""
        return await self._db.run(partial(_list_json, kind, namespace, labels or {}, phase))

    # Writes

    async def create(self, obj: Resource) -> Resource:
        record = _new_record(obj)
        return await self._db.run(partial(self._insert, record), notify=self._changed)

    async def update(self, obj: Resource) -> Resource:
        request = obj.to_wire()
        return await self._db.run(partial(self._update, request), notify=self._changed)

    async def update_status(self, obj: Resource) -> Resource:
        request = obj.to_wire()
        return await self._db.run(partial(self._update_status, request), notify=self._changed)

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Resource | None:
        """Delete an object, or mark it for deletion while finalizers remain.

        Returns None when the record is gone, else the object carrying its deletionTimestamp.
        """
        remove = partial(self._delete, kind, namespace, name, resource_version)
        return await self._db.run(remove, notify=self._changed)

    # Watch

    def watch(self, kind: str, since: int) -> AsyncGenerator[WatchEvent, None]:
        """Yield every change of ``kind`` after resourceVersion ``since``, then wait for more.

        The iteration ends when the store is closed. Raises Expired when the history after
        ``since`` was compacted away; list again and watch from the list's resourceVersion.
        """
        if since < 0:
            raise ValueError(f"watch resourceVersion is {since}; it must not be negative")
        return self._db.follow(
            self._changed,
            partial(_changes_after, kind),
            after=since,
            position=lambda event: event.resource_version,
            batch_size=WATCH_BATCH,
        )

    # Worker-thread side. Each method runs on the database thread in one transaction.

    def _insert(self, record: Record, connection: sqlite3.Connection) -> Resource:
        kind, namespace, name = _key(record)
        with transaction(connection):
            if _select(connection, kind, namespace, name) is not None:
                raise AlreadyExists(f"{kind} {namespace}/{name} already exists")
            data = self._write(connection, record, WatchEventType.ADDED)
            connection.execute(
                "INSERT INTO objects (kind, namespace, name, data) VALUES (?, ?, ?, ?)",
                (kind, namespace, name, data),
            )
        return resource_from_wire(record)

    def _update(self, request: Record, connection: sqlite3.Connection) -> Resource:
        kind, namespace, name = _key(request)
        with transaction(connection):
            stored = _load(connection, kind, namespace, name)
            _check_preconditions(stored, request)
            record = _merge_update(stored, request)
            if record == stored:
                return resource_from_wire(stored)

            metadata = record["metadata"]
            if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
                self._write(connection, record, WatchEventType.DELETED)
                _delete_row(connection, kind, namespace, name)
            else:
                self._replace(connection, record)
        return resource_from_wire(record)

    def _update_status(self, request: Record, connection: sqlite3.Connection) -> Resource:
        kind, namespace, name = _key(request)
        with transaction(connection):
            stored = _load(connection, kind, namespace, name)
            _check_preconditions(stored, request)
            record = dict(stored)
            record["status"] = request.get("status")
            record = _validated(record)
            if record == stored:
                return resource_from_wire(stored)
            self._replace(connection, record)
        return resource_from_wire(record)

    def _delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        resource_version: str | None,
        connection: sqlite3.Connection,
    ) -> Resource | None:
        with transaction(connection):
            stored = _load(connection, kind, namespace, name)
            _check_preconditions(stored, {"metadata": {"resourceVersion": resource_version}})
            metadata = stored["metadata"]
            if not metadata.get("finalizers"):
                self._write(connection, stored, WatchEventType.DELETED)
                _delete_row(connection, kind, namespace, name)
                return None
            if metadata.get("deletionTimestamp"):
                return resource_from_wire(stored)

            record = {**stored, "metadata": {**metadata, "deletionTimestamp": utcnow()}}
            record = _validated(record)
            self._replace(connection, record)
        return resource_from_wire(record)

    def _replace(self, connection: sqlite3.Connection, record: Record) -> None:
        kind, namespace, name = _key(record)
        data = self._write(connection, record, WatchEventType.MODIFIED)
        connection.execute(
            "UPDATE objects SET data = ? WHERE kind = ? AND namespace = ? AND name = ?",
            (data, kind, namespace, name),
        )

    def _write(self, connection: sqlite3.Connection, record: Record, change: WatchEventType) -> str:
        """Stamp ``record`` with the next resourceVersion and append it to the history.

        Returns the record's JSON. Compacts the history to the newest ``history_limit`` rows.
        """
        (version,) = connection.execute(
            "UPDATE store_state SET resource_version = resource_version + 1 "
            "RETURNING resource_version"
        ).fetchone()
        record["metadata"] = {**record["metadata"], "resourceVersion": str(version)}
        data = json.dumps(record, separators=(",", ":"), sort_keys=True)
        connection.execute(
            "INSERT INTO changes (resource_version, kind, type, data) VALUES (?, ?, ?, ?)",
            (version, record["kind"], change.value, data),
        )

        horizon = version - self._history_limit
        if horizon > 0:
            connection.execute("DELETE FROM changes WHERE resource_version <= ?", (horizon,))
            connection.execute(
                "UPDATE store_state SET compacted_version = ? WHERE compacted_version < ?",
                (horizon, horizon),
            )
        return data


def _new_record(obj: Resource) -> Record:
    """Build the wire record of a new object: server fields set, status reset to the default."""
    try:
        resource_class(obj.kind)
    except ValueError as error:
        raise InvalidResource(str(error)) from error
    record = obj.to_wire()
    record.pop("status", None)
    metadata = {k: v for k, v in record["metadata"].items() if k not in SERVER_FIELDS}
    metadata.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=utcnow())
    record["metadata"] = metadata
    # A round trip through the kind's model fills in the default status.
    return _validated(record)


def _merge_update(stored: Record, request: Record) -> Record:
    """Apply an update request to the stored record: metadata and spec, never status."""
    stored_meta = stored["metadata"]
    request_meta = request["metadata"]
    finalizers = list(request_meta.get("finalizers", []))
    added = [f for f in finalizers if f not in stored_meta.get("finalizers", [])]
    if stored_meta.get("deletionTimestamp") and added:
        kind, namespace, name = _key(stored)
        raise InvalidResource(
            f"{kind} {namespace}/{name} is being deleted; finalizers {added} cannot be added"
        )

    metadata = {
        **stored_meta,
        "labels": request_meta.get("labels", {}),
        "annotations": request_meta.get("annotations", {}),
        "finalizers": finalizers,
    }
    record = _validated({**stored, "metadata": metadata, "spec": request.get("spec")})
    # Compared after validation, so that only a change of the normalized spec counts.
    if record.get("spec") != stored.get("spec"):
        record["metadata"]["generation"] = int(stored_meta.get("generation", 1)) + 1
    return record


def _check_preconditions(stored: Record, request: Record) -> None:
    kind, namespace, name = _key(stored)
    stored_meta = stored["metadata"]
    request_meta = request["metadata"]
    requested_version = request_meta.get("resourceVersion")
    if requested_version is not None and requested_version != stored_meta["resourceVersion"]:
        raise Conflict(
            f"{kind} {namespace}/{name} was modified: the request has resourceVersion "
            f"{requested_version} but the stored object has {stored_meta['resourceVersion']}; "
            "read it again and retry"
        )
    requested_uid = request_meta.get("uid")
    if requested_uid is not None and requested_uid != stored_meta["uid"]:
        raise Conflict(
            f"{kind} {namespace}/{name} was deleted and created again: the request has uid "
            f"{requested_uid} but the stored object has {stored_meta['uid']}"
        )


def _key(record: Record) -> tuple[str, str, str]:
    metadata = record["metadata"]
    return str(record["kind"]), str(metadata.get("namespace", "default")), str(metadata["name"])


def _validated(record: Record) -> Record:
    """Check ``record`` against its kind's model and return its normalized wire form."""
    try:
        return resource_from_wire(record).to_wire()
    except ValidationError as error:
        kind, namespace, name = _key(record)
        raise InvalidResource(f"{kind} {namespace}/{name} is invalid: {error}") from error


def _select(connection: sqlite3.Connection, kind: str, namespace: str, name: str) -> Record | None:
    row = connection.execute(
        "SELECT data FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
        (kind, namespace, name),
    ).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def _load(connection: sqlite3.Connection, kind: str, namespace: str, name: str) -> Record:
    record = _select(connection, kind, namespace, name)
    if record is None:
        raise NotFound(f"{kind} {namespace}/{name} not found")
    return record


def _delete_row(connection: sqlite3.Connection, kind: str, namespace: str, name: str) -> None:
    connection.execute(
        "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
        (kind, namespace, name),
    )


def _current_version(connection: sqlite3.Connection) -> int:
    (version,) = connection.execute("SELECT resource_version FROM store_state").fetchone()
    return int(version)


def _get(kind: str, namespace: str, name: str, connection: sqlite3.Connection) -> Resource:
    return resource_from_wire(_load(connection, kind, namespace, name))


def _list(
    kind: str, namespace: str | None, labels: dict[str, str], connection: sqlite3.Connection
) -> ListResult:
    query = "SELECT data FROM objects WHERE kind = ?"
    parameters: tuple[str, ...] = (kind,)
    if namespace is not None:
        query += " AND namespace = ?"
        parameters += (namespace,)
    query += " ORDER BY namespace, name"

    with transaction(connection, "DEFERRED"):
        version = _current_version(connection)
        rows = connection.execute(query, parameters).fetchall()
    items = []
    for (data,) in rows:
        record = json.loads(data)
        stored_labels = record["metadata"].get("labels", {})
        if all(stored_labels.get(key) == value for key, value in labels.items()):
            items.append(resource_from_wire(record))
    return ListResult(items=items, resource_version=version)


def _list_json(
    kind: str,
    namespace: str | None,
    labels: dict[str, str],
    phase: str | None,
    connection: sqlite3.Connection,
) -> tuple[Sequence[str], int]:
    query = "SELECT data FROM objects WHERE kind = ?"
    parameters: list[str] = [kind]
    if namespace is not None:
        query += " AND namespace = ?"
        parameters.append(namespace)
    # Label keys are validated (no quotes), so quoting them makes a safe JSON path.
    for key, value in labels.items():
        query += " AND json_extract(data, ?) = ?"
        parameters += [f'$.metadata.labels."{key}"', value]
    if phase is not None:
        query += " AND json_extract(data, '$.status.phase') = ?"
        parameters.append(phase)
    query += " ORDER BY namespace, name"

    with transaction(connection, "DEFERRED"):
        version = _current_version(connection)
        rows = connection.execute(query, parameters).fetchall()
    return [str(data) for (data,) in rows], version


def _changes_after(kind: str, after: int, connection: sqlite3.Connection) -> list[WatchEvent]:
    with transaction(connection, "DEFERRED"):
        (compacted,) = connection.execute("SELECT compacted_version FROM store_state").fetchone()
        if after < compacted:
            raise Expired(
                f"watch of {kind} from resourceVersion {after} is too old: changes up to "
                f"{compacted} were compacted; list again and watch from the list's "
                "resourceVersion"
            )
        rows = connection.execute(
            "SELECT resource_version, type, data FROM changes "
            "WHERE kind = ? AND resource_version > ? ORDER BY resource_version LIMIT ?",
            (kind, after, WATCH_BATCH),
        ).fetchall()
    return [
        WatchEvent(
            type=WatchEventType(change),
            object=resource_from_wire(json.loads(data)),
            resource_version=int(version),
        )
        for version, change, data in rows
    ]
