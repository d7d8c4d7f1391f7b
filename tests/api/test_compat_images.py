"""``GET /api/v1/container-images``: the catalog file, with image presence from the runtime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agentic_sandbox.api.app import create_app
from agentic_sandbox.api.images import DEFAULT_CATALOG_PATH, parse_catalog
from agentic_sandbox.runtimes.base import Runtime
from agentic_sandbox.runtimes.fake import FakeRuntime
from agentic_sandbox.store.sqlite import SqliteStore
from tests.api.support import BASE_URL, TOKEN

IMAGES = "/api/v1/container-images"
CATALOG = """\
images:
  - name: demo
    image: agentic/demo:dev
    description: >-
      A demo
      sandbox.
    default: true
  - name: base
    image: agentic/base:dev
    description: The base.
    runtime: docker
  - name: ubuntu
    image: ubuntu-24.04.qcow2
    description: A VM disk.
    runtime: libvirt
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG)
    return path


async def get_images(
    store: SqliteStore, *, catalog: Path, runtime: Runtime | None
) -> list[dict[str, object]]:
    app = create_app(
        store=store, event_log=store.events, token=TOKEN, runtime=runtime, image_catalog=catalog
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as http:
        response = await http.get(IMAGES)
    assert response.status_code == 200, response.text
    return list(response.json()["images"])


@pytest.fixture
async def fake() -> AsyncIterator[FakeRuntime]:
    runtime = FakeRuntime(images=["agentic/demo:dev"])
    yield runtime
    await runtime.close()


async def test_images_report_presence(store: SqliteStore, catalog: Path, fake: FakeRuntime) -> None:
    images = await get_images(store, catalog=catalog, runtime=fake)

    assert images == [
        {
            "ref": "agentic/demo:dev",
            "label": "demo",
            "description": "A demo sandbox.",
            "default": True,
            "runtime": "docker",
            "present": True,
        },
        {
            "ref": "agentic/base:dev",
            "label": "base",
            "description": "The base.",
            "default": False,
            "runtime": "docker",
            "present": False,
        },
    ]


async def test_images_one_runtime_call(
    store: SqliteStore, catalog: Path, fake: FakeRuntime
) -> None:
    await get_images(store, catalog=catalog, runtime=fake)

    assert fake.methods_called() == ["image_present"]


async def test_images_without_runtime(store: SqliteStore, catalog: Path) -> None:
    images = await get_images(store, catalog=catalog, runtime=None)

    assert [image["present"] for image in images] == [None, None]


async def test_images_runtime_down(store: SqliteStore, catalog: Path, fake: FakeRuntime) -> None:
    fake.set_available(False)

    images = await get_images(store, catalog=catalog, runtime=fake)

    assert [image["present"] for image in images] == [None, None]


async def test_missing_catalog_is_empty(
    store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentic_sandbox.api.images"):
        images = await get_images(store, catalog=tmp_path / "absent.yaml", runtime=None)

    assert images == []
    assert "image catalog not readable" in caplog.text


@pytest.mark.parametrize(
    "text",
    ["images: [", "images: {}\n", "images:\n  - name: x\n", "other: 1\n"],
)
async def test_invalid_catalog_is_empty(
    store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)

    with caplog.at_level(logging.ERROR, logger="agentic_sandbox.api.images"):
        images = await get_images(store, catalog=path, runtime=None)

    assert images == []
    assert "image catalog invalid" in caplog.text


REPOSITORY_REFS = [
    "agentic/base:dev",
    "agentic/demo:dev",
    "agentic/agent:dev",
    "agentic/claude:dev",
    "agentic/codex:dev",
    "agentic/opencode:dev",
    "agentic/automation-control:dev",
]


def test_repository_catalog_parses() -> None:
    images = parse_catalog(DEFAULT_CATALOG_PATH.read_text(), source=str(DEFAULT_CATALOG_PATH))

    assert [image.image for image in images] == REPOSITORY_REFS
    for image in images:
        assert image.runtime == "docker", image.name
        assert image.description, image.name
        assert image.image == f"agentic/{image.name}:dev"


async def test_repository_catalog_reports_provider_presence(store: SqliteStore) -> None:
    runtime = FakeRuntime(images=["agentic/agent:dev", "agentic/claude:dev"])
    try:
        images = await get_images(store, catalog=DEFAULT_CATALOG_PATH, runtime=runtime)
    finally:
        await runtime.close()

    present = {image["ref"]: image["present"] for image in images}
    assert list(present) == REPOSITORY_REFS
    assert present["agentic/agent:dev"] is True
    assert present["agentic/claude:dev"] is True
    assert present["agentic/codex:dev"] is False
    assert present["agentic/opencode:dev"] is False
    assert present["agentic/automation-control:dev"] is False
