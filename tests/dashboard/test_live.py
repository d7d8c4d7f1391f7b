"""The instance list follows the event stream: changes made elsewhere, filters, reconnects."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.support import assert_not_reloaded, mark_page, phase_badge, row, sign_in
from tests.e2e.controller_process import ControllerProcess, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def create_instance(controller: ControllerProcess, name: str, **spec: Any) -> None:
    body = {
        "apiVersion": "sandbox.agentic.dev/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name, "labels": {"suite": "dashboard", "role": name}},
        "spec": {"image": "agentic/demo:dev", **spec},
    }
    response = controller.client.post("/api/v1/instances", json=body)
    assert response.status_code == 201, response.text


def delete_instance(controller: ControllerProcess, name: str) -> None:
    controller.client.delete(f"/api/v1/instances/{name}")
    wait_for(lambda: controller.instance(name) is None, what=f"{name} deleted")


def test_list_follows_api_changes(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    sign_in(page, controller)
    mark_page(page)

    create_instance(controller, unique_name)
    expect(phase_badge(page, unique_name)).to_have_text("Running")
    expect(row(page, unique_name).locator(".col-image")).to_have_text("agentic/demo:dev")
    expect(row(page, unique_name).locator(".ready")).to_have_text("Yes")

    controller.client.post(f"/api/v1/instances/{unique_name}/stop")
    expect(phase_badge(page, unique_name)).to_have_text("Stopped")

    delete_instance(controller, unique_name)
    expect(row(page, unique_name)).to_have_count(0)
    assert_not_reloaded(page)


def test_filters_by_runtime_phase_and_label(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    halted = f"{unique_name}-h"
    create_instance(controller, unique_name)
    create_instance(controller, halted, runStrategy="Halted")
    sign_in(page, controller)
    expect(phase_badge(page, unique_name)).to_have_text("Running")

    page.get_by_label("Labels").fill(f"role={halted}")
    expect(row(page, halted)).to_have_count(1)
    expect(row(page, unique_name)).to_have_count(0)

    page.get_by_label("Labels").fill("suite=dashboard")
    page.get_by_label("Phase").select_option("Running")
    expect(row(page, unique_name)).to_have_count(1)
    expect(row(page, halted)).to_have_count(0)

    page.get_by_label("Phase").select_option("")
    page.get_by_label("Runtime").select_option("libvirt")
    expect(page.locator("#instances-body tr")).to_have_count(0)
    expect(page.locator("#instances-empty")).to_be_visible()

    page.get_by_label("Runtime").select_option("docker")
    page.get_by_label("Labels").fill("=broken")
    expect(page.locator("#filter-labels-error")).to_contain_text("invalid")

    delete_instance(controller, unique_name)
    delete_instance(controller, halted)


def test_stream_resumes_after_server_restart(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    sign_in(page, controller)
    mark_page(page)

    controller.stop()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    controller.start()
    expect(page.locator("#connection")).to_have_text("Live")

    create_instance(controller, unique_name)
    expect(phase_badge(page, unique_name)).to_have_text("Running")
    assert_not_reloaded(page)
    delete_instance(controller, unique_name)
