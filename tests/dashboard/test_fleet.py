"""The fleet overview, the narrow layout and keyboard use of the dashboard."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.support import phase_badge, screenshot, sign_in
from tests.e2e.controller_process import ControllerProcess, instance_yaml, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NARROW = {"width": 420, "height": 800}


def test_fleet_overview_shows_counts_gc_and_sources(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    manifest = controller.write_manifest(f"{unique_name}.yaml", instance_yaml(unique_name))
    sign_in(page, controller)
    expect(phase_badge(page, unique_name)).to_have_text("Running")

    page.get_by_role("button", name="Fleet").click()

    fleet = page.locator("#view-fleet")
    expect(fleet.locator('tr[data-phase="Running"] td').first).not_to_have_text("0")
    expect(fleet.locator('tr[data-phase="total"]')).to_be_visible()
    expect(fleet.get_by_text("A pass now would remove")).to_be_visible()
    expect(fleet.get_by_text("Passes succeeded")).to_be_visible()
    source_row = fleet.locator("tr", has_text=str(manifest))
    expect(source_row).to_contain_text("source.applied")
    expect(fleet.get_by_text("No GitSource resources.")).to_be_visible()
    screenshot(page, "fleet", full_page=True)

    manifest.unlink()
    wait_for(lambda: controller.instance(unique_name) is None, what="file instance pruned")


def test_narrow_window_has_no_page_overflow(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    controller.write_manifest(f"{unique_name}.yaml", instance_yaml(unique_name))
    page.set_viewport_size(NARROW)
    sign_in(page, controller)
    expect(phase_badge(page, unique_name)).to_have_text("Running")
    page.locator(f'button.row-select[data-key="default/{unique_name}"]').click()
    expect(page.locator("#detail-title")).to_have_text(unique_name)

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the window"
    screenshot(page, "narrow", full_page=True)

    (controller.manifests / f"{unique_name}.yaml").unlink()
    wait_for(lambda: controller.instance(unique_name) is None, what="file instance pruned")


def test_keyboard_opens_and_closes_create(page: Any, controller: ControllerProcess) -> None:
    sign_in(page, controller)
    page.locator("#create-open").focus()
    page.keyboard.press("Enter")

    dialog = page.locator("#create-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#create-name")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_row_opens_detail_from_keyboard(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    controller.write_manifest(f"{unique_name}.yaml", instance_yaml(unique_name))
    sign_in(page, controller)
    expect(phase_badge(page, unique_name)).to_have_text("Running")

    page.locator(f'button.row-select[data-key="default/{unique_name}"]').focus()
    page.keyboard.press("Enter")

    expect(page.locator("#detail-title")).to_have_text(unique_name)
    # Times show relative, with the absolute time (which names the year) on hover.
    created = page.locator("#detail time").first
    expect(created).to_have_text(re.compile(r"ago|now"))
    expect(created).to_have_attribute("title", re.compile(r"\d{4}"))
    (controller.manifests / f"{unique_name}.yaml").unlink()
    wait_for(lambda: controller.instance(unique_name) is None, what="file instance pruned")
