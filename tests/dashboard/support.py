"""Steps the browser tests share: signing in, finding rows, screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.controller_process import ControllerProcess

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def api_token(controller: ControllerProcess) -> str:
    return (controller.state_dir / "api-token").read_text().strip()


def sign_in(page: Any, controller: ControllerProcess) -> None:
    """Enter the token and wait until the event stream is live."""
    page.get_by_label("API token").fill(api_token(controller))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection")).to_have_text("Live")


def row(page: Any, name: str) -> Any:
    return page.locator(f'#instances-body tr[data-key="default/{name}"]')


def phase_badge(page: Any, name: str) -> Any:
    return row(page, name).locator(".badge.phase")


def mark_page(page: Any) -> None:
    """Set a marker that a reload would lose, for ``assert_not_reloaded``."""
    page.evaluate("window.__dashboardTestMarker = true")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__dashboardTestMarker === true"), "the page was reloaded"


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
