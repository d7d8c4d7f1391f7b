"""Helpers for the source tests: manifest builders, and waits for effects in the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from agentic_sandbox.crds.meta import API_VERSION, SOURCE_ANNOTATION, Resource
from agentic_sandbox.errors import NotFound
from agentic_sandbox.sources.directory import DirectorySource
from agentic_sandbox.store.base import WatchEvent, WatchEventType
from agentic_sandbox.store.sqlite import SqliteStore

# Deadline for anything a test waits for; never reached when the source works.
DEADLINE = 10.0


def instance_doc(name: str, *, mode: str = "one", namespace: str = "default") -> str:
    """Return one Instance document; ``mode`` becomes the env value MODE."""
    return (
        f"apiVersion: {API_VERSION}\n"
        "kind: Instance\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  namespace: {namespace}\n"
        "spec:\n"
        "  image: busybox:1.36\n"
        "  env:\n"
        f"    MODE: {mode!r}\n"
    )


def manifest(*docs: str) -> str:
    return "---\n".join(docs)


async def eventually(check: Callable[[], Awaitable[bool]], *, what: str) -> None:
    """Poll ``check`` until it returns True; fail with ``what`` after DEADLINE seconds."""
    try:
        async with asyncio.timeout(DEADLINE):
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out after {DEADLINE} s waiting for {what}")


async def get_or_none(store: SqliteStore, name: str, namespace: str = "default") -> Resource | None:
    try:
        return await store.get("Instance", namespace, name)
    except NotFound:
        return None


def env_of(obj: Resource | None) -> str | None:
    if obj is None:
        return None
    return str(obj.spec.env.get("MODE"))


def source_of(obj: Resource | None) -> str | None:
    if obj is None:
        return None
    return obj.metadata.annotations.get(SOURCE_ANNOTATION)


class Probe:
    """Waits for instances through the store, and records every change the store reports."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.changes: list[WatchEvent] = []

    async def mode(
        self, name: str, mode: str | None, namespace: str = "default"
    ) -> Resource | None:
        """Wait until instance ``name`` has env MODE ``mode``, or is gone when ``mode`` is None."""
        found: list[Resource | None] = [None]

        async def check() -> bool:
            found[0] = await get_or_none(self.store, name, namespace)
            return env_of(found[0]) == mode

        await eventually(check, what=f"instance {namespace}/{name} with MODE {mode}")
        return found[0]

    def deletions(self, name: str) -> list[WatchEvent]:
        return [
            change
            for change in self.changes
            if change.type is WatchEventType.DELETED and change.object.metadata.name == name
        ]

    async def record(self, since: int) -> None:
        async for change in self.store.watch("Instance", since):
            self.changes.append(change)


# The ``start_source`` fixture: starts a DirectorySource and returns it once it watches.
StartSource = Callable[..., Awaitable[DirectorySource]]
