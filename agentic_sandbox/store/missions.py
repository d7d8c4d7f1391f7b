"""The durable mission log: mission records and their output, in the store's SQLite file.

``SqliteStore`` builds one and exposes it as ``store.missions``; it shares the store's worker
thread and connection, like the event log. Only the controller's dispatcher writes to it.

Guarantees:

- Mission ids are unique: ``create`` raises AlreadyExists for an id that is taken, also when
  the earlier mission has ended.
- A record or output chunk whose write returned survives a crash (the database syncs every
  commit).
- Output is stored up to ``max_output_bytes`` per mission (default 1 MiB); bytes past the cap
  are counted in the record but dropped.
- At most ``max_missions`` ended missions are kept (default 1000). Creating a mission deletes
  the oldest ended missions past that bound, with their output. Missions that have not ended
  are never deleted.
- ``follow_output`` yields stored output as it is appended, woken by the writes themselves, and
  ends once the mission has ended and all of its stored output was yielded.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from agentic_sandbox.crds.mission import FINAL_STATES, Mission, MissionState
from agentic_sandbox.errors import AlreadyExists, NotFound, StoreUnavailable
from agentic_sandbox.store.sqlite_database import SqliteDatabase, transaction

DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
DEFAULT_MAX_MISSIONS = 1000
# Output chunks read per worker call while output is followed.
OUTPUT_BATCH = 256

_FINAL = tuple(sorted(str(state) for state in FINAL_STATES))
_FINAL_PLACEHOLDERS = ", ".join("?" for _ in _FINAL)

MISSION_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS missions (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS missions_by_session ON missions (session, number);
CREATE INDEX IF NOT EXISTS missions_by_state ON missions (state);
CREATE TABLE IF NOT EXISTS mission_output (
    mission_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (mission_id, seq)
) WITHOUT ROWID;
"""


# An alias, because ``SqliteMissionLog.list`` hides the builtin inside the class.
Missions = list[Mission]


@dataclass(frozen=True)
class OutputChunk:
    """A stored piece of a mission's output; ``seq`` counts a mission's chunks from 1."""

    seq: int
    stream: str
    data: bytes


@dataclass(frozen=True)
class StoredOutput:
    """The result of appending output: how much of it was kept under the cap."""

    stored: int
    truncated: bool


class SqliteMissionLog:
    def __init__(
        self,
        database: SqliteDatabase,
        *,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        max_missions: int = DEFAULT_MAX_MISSIONS,
    ) -> None:
        if max_output_bytes < 0:
            raise ValueError(f"max_output_bytes is {max_output_bytes}; set 0 or more")
        if max_missions < 1:
            raise ValueError(f"max_missions is {max_missions}; set at least 1")
        self._db = database
        self._changed = database.broadcast()
        self.max_output_bytes = max_output_bytes
        self.max_missions = max_missions

    # Records.

    async def create(self, mission: Mission) -> Mission:
        """Store a new mission; raises AlreadyExists when its id is taken."""
        return await self._db.run(partial(self._insert, mission), notify=self._changed)

    async def update(self, mission: Mission) -> Mission:
        """Replace the stored record of ``mission.id``; raises NotFound when it is gone."""
        return await self._db.run(partial(_replace, mission), notify=self._changed)

    async def get(self, mission_id: str) -> Mission:
        """Return the record of ``mission_id``; raises NotFound."""
        mission = await self._db.run(partial(_get, mission_id))
        if mission is None:
            raise NotFound(
                f"mission {mission_id!r} not found; list missions with GET /api/v1/missions"
            )
        return mission

    async def list(
        self,
        *,
        session_id: str | None = None,
        states: Iterable[MissionState] = (),
        limit: int = 100,
    ) -> Missions:
        """List the newest ``limit`` missions, oldest first, of one session or of all."""
        if limit < 1:
            raise ValueError(f"limit is {limit}; set at least 1")
        return await self._db.run(partial(_select, session_id, tuple(states), limit))

    async def end_unfinished(
        self, *, state: MissionState, reason: str, message: str, finished_at: datetime
    ) -> Missions:
        """Give every mission that has not ended the final ``state``; return them as updated."""
        if state not in FINAL_STATES:
            raise ValueError(f"state {state} is not a final state")
        end = partial(_end_unfinished, state, reason, message, finished_at)
        return await self._db.run(end, notify=self._changed)

    # Output.

    async def append_output(self, mission_id: str, stream: str, data: bytes) -> StoredOutput:
        """Store ``data`` as the mission's next output chunk, cut at the per-mission cap."""
        append = partial(self._append, mission_id, stream, data)
        return await self._db.run(append, notify=self._changed)

    async def read_output(self, mission_id: str, *, after: int = 0) -> Sequence[OutputChunk]:
        """Return up to OUTPUT_BATCH stored chunks with ``seq`` greater than ``after``."""
        chunks, _ = await self._db.run(partial(_read_after, mission_id, after))
        return chunks

    async def follow_output(self, mission_id: str) -> AsyncGenerator[OutputChunk, None]:
        """Yield the mission's stored output, then new output, until the mission has ended.

        Raises NotFound when the mission does not exist. The iteration also ends when the
        store is closed.
        """
        await self.get(mission_id)
        after = 0
        with self._changed.subscribe() as wakeup:
            while not self._db.closed:
                wakeup.clear()
                try:
                    chunks, state = await self._db.run(partial(_read_after, mission_id, after))
                except StoreUnavailable:
                    if self._db.closed:
                        return
                    raise
                for chunk in chunks:
                    after = chunk.seq
                    yield chunk
                if len(chunks) == OUTPUT_BATCH:
                    continue
                # The chunks and the state come from one snapshot, so an ended mission has
                # no output left to read.
                if state is None or state in FINAL_STATES:
                    return
                await wakeup.wait()

    # Worker-thread functions.

    def _insert(self, mission: Mission, connection: sqlite3.Connection) -> Mission:
        with transaction(connection):
            try:
                connection.execute(
                    "INSERT INTO missions (id, session, state, data) VALUES (?, ?, ?, ?)",
                    (mission.id, mission.session_id, str(mission.state), _record(mission)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"mission {mission.id!r} already exists; choose another mission_id"
                ) from None
            self._prune(connection)
        return mission

    def _prune(self, connection: sqlite3.Connection) -> None:
        """Delete the oldest ended missions past ``max_missions``, with their output."""
        rows = connection.execute(
            f"SELECT id FROM missions WHERE state IN ({_FINAL_PLACEHOLDERS}) "
            "ORDER BY number DESC LIMIT -1 OFFSET ?",
            (*_FINAL, self.max_missions),
        ).fetchall()
        for (mission_id,) in rows:
            connection.execute("DELETE FROM mission_output WHERE mission_id = ?", (mission_id,))
            connection.execute("DELETE FROM missions WHERE id = ?", (mission_id,))

    def _append(
        self, mission_id: str, stream: str, data: bytes, connection: sqlite3.Connection
    ) -> StoredOutput:
        with transaction(connection):
            stored, last_seq = connection.execute(
                "SELECT COALESCE(SUM(length(data)), 0), COALESCE(MAX(seq), 0) "
                "FROM mission_output WHERE mission_id = ?",
                (mission_id,),
            ).fetchone()
            room = max(0, self.max_output_bytes - int(stored))
            kept = data[:room]
            if kept:
                connection.execute(
                    "INSERT INTO mission_output (mission_id, seq, stream, data) "
                    "VALUES (?, ?, ?, ?)",
                    (mission_id, int(last_seq) + 1, stream, kept),
                )
        return StoredOutput(stored=len(kept), truncated=len(kept) < len(data))


def _record(mission: Mission) -> str:
    return json.dumps(mission.to_wire(), separators=(",", ":"), sort_keys=True)


def _mission(data: str) -> Mission:
    return Mission.model_validate_json(data)


def _get(mission_id: str, connection: sqlite3.Connection) -> Mission | None:
    row = connection.execute("SELECT data FROM missions WHERE id = ?", (mission_id,)).fetchone()
    return None if row is None else _mission(row[0])


def _replace(mission: Mission, connection: sqlite3.Connection) -> Mission:
    with transaction(connection):
        cursor = connection.execute(
            "UPDATE missions SET state = ?, data = ? WHERE id = ?",
            (str(mission.state), _record(mission), mission.id),
        )
    if cursor.rowcount == 0:
        raise NotFound(f"mission {mission.id!r} not found; it was pruned or never stored")
    return mission


def _select(
    session_id: str | None,
    states: tuple[MissionState, ...],
    limit: int,
    connection: sqlite3.Connection,
) -> list[Mission]:
    conditions: list[str] = []
    parameters: list[object] = []
    if session_id is not None:
        conditions.append("session = ?")
        parameters.append(session_id)
    if states:
        conditions.append(f"state IN ({', '.join('?' for _ in states)})")
        parameters.extend(str(state) for state in states)
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    rows = connection.execute(
        f"SELECT data FROM missions{where} ORDER BY number DESC LIMIT ?", (*parameters, limit)
    ).fetchall()
    return [_mission(data) for (data,) in reversed(rows)]


def _end_unfinished(
    state: MissionState,
    reason: str,
    message: str,
    finished_at: datetime,
    connection: sqlite3.Connection,
) -> list[Mission]:
    ended: list[Mission] = []
    with transaction(connection):
        rows = connection.execute(
            f"SELECT data FROM missions WHERE state NOT IN ({_FINAL_PLACEHOLDERS}) ORDER BY number",
            _FINAL,
        ).fetchall()
        for (data,) in rows:
            mission = _mission(data).model_copy(
                update={
                    "state": state,
                    "reason": reason,
                    "message": message,
                    "finished_at": finished_at,
                }
            )
            connection.execute(
                "UPDATE missions SET state = ?, data = ? WHERE id = ?",
                (str(state), _record(mission), mission.id),
            )
            ended.append(mission)
    return ended


def _read_after(
    mission_id: str, after: int, connection: sqlite3.Connection
) -> tuple[list[OutputChunk], MissionState | None]:
    with transaction(connection, "DEFERRED"):
        rows = connection.execute(
            "SELECT seq, stream, data FROM mission_output WHERE mission_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (mission_id, after, OUTPUT_BATCH),
        ).fetchall()
        state_row = connection.execute(
            "SELECT state FROM missions WHERE id = ?", (mission_id,)
        ).fetchone()
    chunks = [OutputChunk(seq=seq, stream=stream, data=bytes(data)) for seq, stream, data in rows]
    return chunks, None if state_row is None else MissionState(state_row[0])
