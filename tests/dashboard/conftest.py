"""Fixtures of the browser tests: a live ``sandboxctl serve`` and Debian's headless Chromium.

The browser is Debian's ``chromium`` package at ``/usr/bin/chromium``, driven by Playwright; no
browser is downloaded. Without it (or without the Playwright package) a test fails in CI and
skips elsewhere. Screenshots go to ``tests/dashboard/artifacts/``, which git ignores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_component, require_docker
from tests.e2e.controller_process import ControllerProcess

CHROMIUM = Path("/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 800}
# Deadline for the page to show a state, in milliseconds; a bound against hangs, not a
# performance check.
UI_TIMEOUT_MS = 60_000


def require_chromium() -> None:
    if not CHROMIUM.exists():
        missing_component(
            f"Chromium is missing at {CHROMIUM}; install it with apt-get install chromium"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_component("the playwright package is missing; install the test extras")


@pytest.fixture(scope="module")
def controller(
    demo_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    require_docker()
    process = ControllerProcess(tmp_path_factory.mktemp("dashboard"))
    # The browser tests use containers only.
    process.extra_args = ["--libvirt-uri", "none"]
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module; module scope keeps Playwright's event loop out of
    the asyncio tests of other modules."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, controller: ControllerProcess) -> Iterator[Any]:
    """A fresh browser context at 1280x800 with the dashboard open and no token entered.

    Script errors on the page fail the test.
    """
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(UI_TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(f"http://127.0.0.1:{controller.port}/")
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"


@pytest.fixture
def unique_name() -> str:
    return f"dash-{uuid.uuid4().hex[:8]}"
