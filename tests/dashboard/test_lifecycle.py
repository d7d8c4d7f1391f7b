"""Creating, stopping, starting and deleting a container sandbox through the dashboard."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.support import (
    assert_not_reloaded,
    mark_page,
    phase_badge,
    row,
    screenshot,
    sign_in,
)
from tests.e2e.controller_process import ControllerProcess, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DEMO_IMAGE = "agentic/demo:dev"


def open_create_dialog(page: Any) -> Any:
    page.get_by_role("button", name="Create", exact=True).click()
    dialog = page.locator("#create-dialog")
    expect(dialog).to_be_visible()
    # The image picker is filled from the catalog once the dialog is open.
    expect(dialog.locator("#create-image option", has_text=DEMO_IMAGE)).to_have_count(1)
    return dialog


def container_ids(controller: ControllerProcess, name: str) -> list[str]:
    containers = controller.containers(**{"agentic-sandbox.instance": f"default/{name}"})
    return [container["Id"] for container in containers]


def test_sign_in_rejects_wrong_token(page: Any, controller: ControllerProcess) -> None:
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#token-error")).to_contain_text("rejected")
    expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.length") == 0
    sign_in(page, controller)
    expect(page.locator("#login")).to_be_hidden()


def test_lifecycle_through_dialog(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    (controller.mount_root / unique_name).mkdir()
    sign_in(page, controller)
    mark_page(page)

    # Create through the dialog: image picker, an env row and a bind mount row.
    dialog = open_create_dialog(page)
    dialog.get_by_label("Runtime").select_option("docker")
    dialog.locator("#create-name").fill(unique_name)
    dialog.get_by_label("Image", exact=True).select_option(DEMO_IMAGE)
    dialog.get_by_role("button", name="Add variable").click()
    dialog.get_by_label("Variable 1 name").fill("TASK")
    dialog.get_by_label("Variable 1 value").fill("refactor")
    dialog.get_by_role("button", name="Add mount").click()
    dialog.get_by_role("textbox", name="Mount 1").fill(
        f"{controller.mount_root / unique_name}:/data:ro"
    )
    dialog.get_by_role("button", name="View as YAML").click()
    expect(dialog.locator("#create-yaml")).to_contain_text("TASK: refactor")
    screenshot(page, "create-dialog")
    dialog.get_by_role("button", name="Create", exact=True).click()
    expect(dialog).to_be_hidden()

    # The row appears and turns Running from the event stream, without a reload.
    expect(phase_badge(page, unique_name)).to_have_text("Running")
    expect(row(page, unique_name).locator(".badge.runtime")).to_contain_text("CT")
    assert_not_reloaded(page)
    created = controller.instance(unique_name)
    assert created is not None
    assert created["spec"]["env"] == {"TASK": "refactor"}
    assert created["spec"]["mounts"][0]["readOnly"] is True
    listed = controller.sandboxctl("get", "instances")
    assert unique_name in listed.stdout
    assert "Running" in listed.stdout.split(unique_name, 1)[1].splitlines()[0]
    [container_id] = container_ids(controller, unique_name)

    # The detail pane shows conditions, events and the sandbox's log output.
    detail = page.locator("#detail")
    expect(detail.locator("#detail-title")).to_have_text(unique_name)
    expect(detail.locator('tr[data-condition="Ready"]')).to_contain_text("True")
    expect(detail.locator('li[data-name="container.started"]').first).to_be_visible()
    expect(detail.locator("pre.logs")).to_contain_text("TASK=refactor")
    screenshot(page, "instances")

    # Stop keeps the container.
    detail.get_by_role("button", name="Stop", exact=True).click()
    expect(phase_badge(page, unique_name)).to_have_text("Stopped")
    expect(detail.locator(".action-progress")).to_contain_text("Stop done")
    assert controller.phase(unique_name) == "Stopped"
    assert container_ids(controller, unique_name) == [container_id]
    assert controller.running_container(unique_name) is None

    # Start runs the same container again.
    detail.get_by_role("button", name="Start", exact=True).click()
    expect(phase_badge(page, unique_name)).to_have_text("Running")
    expect(detail.locator(".action-progress")).to_contain_text("Start done")
    wait_for(lambda: controller.running_container(unique_name), what="container running")
    assert container_ids(controller, unique_name) == [container_id]

    # Delete asks for the name first.
    detail.get_by_role("button", name="Delete", exact=True).click()
    confirm = page.locator("#delete-dialog")
    expect(confirm).to_be_visible()
    confirm_button = confirm.get_by_role("button", name="Delete", exact=True)
    expect(confirm_button).to_be_disabled()
    confirm.get_by_label("Type the name").fill(unique_name[:-1])
    expect(confirm_button).to_be_disabled()
    confirm.get_by_label("Type the name").fill(unique_name)
    screenshot(page, "delete-dialog")
    confirm_button.click()

    expect(row(page, unique_name)).to_have_count(0)
    wait_for(lambda: controller.instance(unique_name) is None, what="instance deleted")
    wait_for(lambda: not container_ids(controller, unique_name), what="container removed")
    assert_not_reloaded(page)


def test_force_off_keeps_container(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    sign_in(page, controller)
    dialog = open_create_dialog(page)
    dialog.locator("#create-name").fill(unique_name)
    dialog.get_by_label("Image", exact=True).select_option(DEMO_IMAGE)
    dialog.get_by_role("button", name="Create", exact=True).click()
    expect(phase_badge(page, unique_name)).to_have_text("Running")

    page.locator("#detail").get_by_role("button", name="Force off").click()

    expect(phase_badge(page, unique_name)).to_have_text("Stopped")
    assert len(container_ids(controller, unique_name)) == 1
    verbs = [e for e in controller.events(unique_name) if e["name"] == "instance.verb_requested"]
    assert verbs, "expected the stop to be recorded"
    controller.client.delete(f"/api/v1/instances/{unique_name}")


def test_validation_errors_beside_fields(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    sign_in(page, controller)
    dialog = open_create_dialog(page)
    dialog.locator("#create-name").fill("Bad_Name")
    dialog.get_by_label("Image", exact=True).select_option(DEMO_IMAGE)
    dialog.get_by_role("button", name="Add variable").click()
    dialog.get_by_label("Variable 1 name").fill("1BAD")
    dialog.get_by_label("Variable 1 value").fill("x")
    dialog.get_by_role("button", name="Add mount").click()
    dialog.get_by_role("textbox", name="Mount 1").fill("relative/path:/data")
    dialog.get_by_role("button", name="Create", exact=True).click()

    name = dialog.locator("#create-name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#create-name-error")).to_contain_text("DNS-1123")
    env_name = dialog.get_by_label("Variable 1 name")
    expect(env_name).to_have_attribute("aria-invalid", "true")
    env_error_id = env_name.get_attribute("aria-describedby").split()[-1]
    expect(dialog.locator(f"#{env_error_id}")).to_contain_text("env name '1BAD' is invalid")
    mount = dialog.get_by_role("textbox", name="Mount 1")
    mount_error_id = mount.get_attribute("aria-describedby").split()[-1]
    expect(dialog.locator(f"#{mount_error_id}")).to_contain_text("not absolute")
    expect(dialog).to_be_visible()
    screenshot(page, "validation-errors")

    # Fixing the fields clears the errors and creates the instance.
    name.fill(unique_name)
    env_name.fill("GOOD")
    dialog.get_by_role("button", name="Remove mount 1").click()
    dialog.get_by_role("button", name="Create", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(row(page, unique_name)).to_have_count(1)
    assert controller.instance("Bad_Name") is None
    controller.client.delete(f"/api/v1/instances/{unique_name}")
    wait_for(lambda: controller.instance(unique_name) is None, what="instance deleted")


def test_create_rejects_existing_name(
    page: Any, controller: ControllerProcess, unique_name: str
) -> None:
    response = controller.client.post(
        "/api/v1/instances",
        json={
            "apiVersion": "sandbox.agentic.dev/v1alpha1",
            "kind": "Instance",
            "metadata": {"name": unique_name},
            "spec": {"image": DEMO_IMAGE, "runStrategy": "Halted"},
        },
    )
    assert response.status_code == 201, response.text
    sign_in(page, controller)
    dialog = open_create_dialog(page)
    dialog.locator("#create-name").fill(unique_name)
    dialog.get_by_label("Image", exact=True).select_option(DEMO_IMAGE)
    dialog.get_by_role("button", name="Create", exact=True).click()

    expect(dialog.locator("#create-name-error")).to_contain_text("already exists")
    controller.client.delete(f"/api/v1/instances/{unique_name}")
