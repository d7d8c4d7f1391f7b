"""A real virtual machine under libvirt and QEMU (TCG), driven through a real controller.

The guest is the tiny image from images/vm/build-guest.sh: a Debian cloud kernel and a busybox
initramfs that counts its boots on its disk and prints stable lines to the serial console.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.controller_process import ControllerProcess, wait_for
from tests.vm_support import remove_domains, require_tiny_guest

pytestmark = pytest.mark.libvirt

# TCG boots the tiny guest in a few seconds; the bound covers a loaded machine.
BOOT_SECONDS = 180.0
READY_LINE = "agentic-sandbox-guest: ready"

VM_MANIFEST = """\
apiVersion: sandbox.agentic.dev/v1alpha1
kind: Instance
metadata:
  name: {name}
spec:
  runtime: libvirt
  loadout: tiny
  terminationGracePeriodSeconds: 60
"""


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    require_tiny_guest()
    process = ControllerProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()
        remove_domains(process.controller_id)


def runtime_ref(controller: ControllerProcess, name: str) -> dict[str, Any]:
    instance = controller.instance(name) or {}
    return dict(instance.get("status", {}).get("runtimeRef") or {})


def serial_text(controller: ControllerProcess, name: str) -> str:
    path = runtime_ref(controller, name).get("details", {}).get("serialLog")
    if not path or not Path(path).exists():
        return ""
    return Path(path).read_text(errors="replace")


def wait_phase(controller: ControllerProcess, name: str, phase: str) -> None:
    wait_for(lambda: controller.phase(name) == phase, timeout=BOOT_SECONDS, what=f"{name} {phase}")


def wait_serial(controller: ControllerProcess, name: str, text: str, count: int = 1) -> str:
    return wait_for(
        lambda: (log := serial_text(controller, name)).count(text) >= count and log,
        timeout=BOOT_SECONDS,
        what=f"{count} x {text!r} in the serial log of {name}",
    )


def domain_names() -> list[str]:
    result = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def test_vm_lifecycle_keeps_disk_until_delete(controller: ControllerProcess) -> None:
    name = f"vm-{controller.controller_id[-6:]}"
    controller.write_manifest("vm.yaml", VM_MANIFEST.format(name=name))

    wait_phase(controller, name, "Running")
    wait_serial(controller, name, READY_LINE)
    details = runtime_ref(controller, name)["details"]
    assert details["accelerator"] in ("kvm", "tcg")
    assert details["domain"] == name
    disk = Path(details["disk"])
    assert disk.exists()
    described = controller.sandboxctl("describe", "instance", name)
    assert described.returncode == 0, described.stderr
    assert "Accelerator:" in described.stdout and details["serialLog"] in described.stdout
    assert "agentic-sandbox-guest: booted boot=1" in serial_text(controller, name)

    stopped = controller.sandboxctl("stop", name)
    assert stopped.returncode == 0, stopped.stderr
    wait_phase(controller, name, "Stopped")
    assert disk.exists(), "stop must keep the overlay"
    assert name in domain_names(), "stop must keep the domain defined"

    started = controller.sandboxctl("start", name)
    assert started.returncode == 0, started.stderr
    wait_phase(controller, name, "Running")
    log = wait_serial(controller, name, READY_LINE, count=2)
    assert "agentic-sandbox-guest: booted boot=2" in log, "the disk did not keep the boot count"

    (controller.manifests / "vm.yaml").unlink()
    wait_for(lambda: controller.instance(name) is None, timeout=BOOT_SECONDS, what="deletion")
    assert name not in domain_names()
    assert not disk.exists() and not disk.parent.exists()
    events = {event["name"] for event in controller.events(name)}
    assert {"vm.defined", "vm.started", "vm.stopped", "vm.undefined"} <= events
