"""Durability: SIGKILL of a writing process loses no acknowledged write.

A subprocess writes without end and prints each write that returned. The test kills it with
SIGKILL after a random number of acknowledgements (the next write is then in flight), reopens
the same file and checks every acknowledged write, the database integrity and that writing
goes on. Several rounds run against one file, so recovery from a previous kill is tested too.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.errors import NotFound
from agentic_sandbox.store.sqlite import SqliteStore
from tests.store.conftest import make_instance

WRITER = Path(__file__).with_name("durability_writer.py")
ROUNDS = 5
# Deadline for replaying the history of one round; never reached when the store works.
DEADLINE = 10.0
KIND = Instance.KIND


@dataclass
class Acknowledged:
    """The writes one writer process reported before it was killed."""

    versions: list[int] = field(default_factory=list)
    last_op: dict[str, tuple[str, int]] = field(default_factory=dict)
    last_name: str | None = None
    event_ids: list[int] = field(default_factory=list)

    def add(self, line: str) -> None:
        fields = line.split()
        if fields[0] == "event":
            self.event_ids.append(int(fields[1]))
            return
        op, name, version = fields[0], fields[1], int(fields[2])
        self.versions.append(version)
        self.last_op[name] = (op, version)
        self.last_name = name


def run_writer_until_killed(path: Path, prefix: str, kill_after: int) -> Acknowledged:
    """Start the writer, SIGKILL it after ``kill_after`` acknowledgements, return them all."""
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged = Acknowledged()
    assert process.stdout is not None and process.stderr is not None
    try:
        for line in process.stdout:
            acknowledged.add(line)
            if len(acknowledged.versions) + len(acknowledged.event_ids) >= kill_after:
                break
    finally:
        os.kill(process.pid, signal.SIGKILL)
        # Lines the writer printed before the kill are acknowledged writes too.
        for line in process.stdout.read().splitlines():
            acknowledged.add(line)
        process.wait()
        stderr = process.stderr.read()
    assert process.returncode == -signal.SIGKILL, f"writer failed before the kill:\n{stderr}"
    return acknowledged


async def check_acknowledged(path: Path, acknowledged: Acknowledged, context: str) -> int:
    """Reopen the store and check every acknowledged write; returns the current version."""
    async with SqliteStore(path) as store:
        current = await store.current_resource_version()
        history = set()
        if current > min(acknowledged.versions) - 1:
            async with asyncio.timeout(DEADLINE):
                async for event in store.watch(KIND, min(acknowledged.versions) - 1):
                    history.add(event.resource_version)
                    if event.resource_version >= current:
                        break
        missing = sorted(set(acknowledged.versions) - history)
        assert missing == [], f"{context}: acknowledged versions missing from history"

        for name, (op, version) in acknowledged.last_op.items():
            await check_final_state(store, name, op, version, acknowledged.last_name, context)

        for event_id in acknowledged.event_ids:
            events = await store.events.list(since_id=event_id - 1, limit=1)
            assert [event.id for event in events] == [event_id], f"{context}: event lost"
        return current


async def check_final_state(
    store: SqliteStore, name: str, op: str, version: int, last_name: str | None, context: str
) -> None:
    try:
        stored = await store.get(KIND, "default", name)
    except NotFound:
        # The write in flight at the kill may have deleted the last object; nothing else may.
        assert op == "del" or name == last_name, f"{context}: {name} lost"
        return
    assert op == "put", f"{context}: {name} was deleted but is back"
    assert int(stored.metadata.resource_version or 0) >= version, f"{context}: {name} is stale"


def integrity(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        (result,) = connection.execute("PRAGMA integrity_check").fetchone()
    finally:
        connection.close()
    return str(result)


async def write_after_recovery(path: Path, name: str) -> int:
    async with SqliteStore(path) as store:
        created = await store.create(make_instance(name))
        return int(created.metadata.resource_version or 0)


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)

    for round_number in range(ROUNDS):
        kill_after = rng.randint(1, 150)
        context = f"seed {seed}, round {round_number}, kill after {kill_after}"
        acknowledged = run_writer_until_killed(path, f"r{round_number}", kill_after)
        assert acknowledged.versions, f"{context}: the writer acknowledged nothing"

        current = asyncio.run(check_acknowledged(path, acknowledged, context))
        assert integrity(path) == "ok", context
        written = asyncio.run(write_after_recovery(path, f"after-{round_number}"))

        assert current >= max(acknowledged.versions), context
        assert written == current + 1, context
