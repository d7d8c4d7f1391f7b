"""Fixtures for tests that need a runtime: the app with a FakeRuntime, and fake sandboxes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from agentic_sandbox.api.app import create_app
from agentic_sandbox.controller.desired import desired_hashes
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.spechash import HASH_SCHEMA_VERSION
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_HASH_SCHEMA,
    LABEL_INSTANCE,
    LABEL_SPEC_HASH,
    LABEL_UID,
    SandboxSpec,
    SandboxState,
)
from agentic_sandbox.runtimes.fake import FakeRuntime
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, TOKEN

CONTROLLER_ID = "ctl-test"


class ObservedRuntime(FakeRuntime):
    """A FakeRuntime that sets ``log_streaming`` once a log response has started streaming."""

    def __init__(self) -> None:
        super().__init__()
        self.log_streaming = asyncio.Event()

    async def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        opened = False
        async for chunk in super().logs(sandbox_id, tail=tail, follow=follow):
            yield chunk
            if not opened:
                # The route has taken the opening chunk and waits for output, so it is streaming.
                opened = True
                self.log_streaming.set()


@pytest.fixture
def runtime() -> ObservedRuntime:
    return ObservedRuntime()


@pytest.fixture
def runtime_app(store: SqliteStore, runtime: ObservedRuntime) -> Starlette:
    return create_app(
        store=store,
        event_log=store.events,
        token=TOKEN,
        runtime=runtime,
        controller_id=CONTROLLER_ID,
    )


@pytest.fixture
async def runtime_client(runtime_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=runtime_app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as http:
        yield http


async def add_sandbox(
    runtime: FakeRuntime, instance: Instance, *, spec_hash: str | None = None, running: bool = True
) -> SandboxState:
    """Create (and start) a fake sandbox labelled as the controller labels one for ``instance``."""
    hashes = desired_hashes(instance)
    labels = {
        LABEL_UID: str(instance.metadata.uid),
        LABEL_CONTROLLER: CONTROLLER_ID,
        LABEL_INSTANCE: instance.key,
        LABEL_SPEC_HASH: spec_hash or hashes[str(HASH_SCHEMA_VERSION)],
        LABEL_HASH_SCHEMA: str(HASH_SCHEMA_VERSION),
    }
    spec = SandboxSpec(name=instance.metadata.name, image=str(instance.spec.image), labels=labels)
    created = await runtime.create(spec)
    if running:
        await runtime.start(created.id)
    return created
