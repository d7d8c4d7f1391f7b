"""A real virtual machine under libvirt and QEMU (TCG), driven through a real controller.

The guest is the tiny image from images/vm/build-guest.sh: a Debian cloud kernel and a busybox
initramfs that counts its boots on its disk and prints stable lines to the serial console.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from agentic_sandbox.controller.config import DEFAULT_VM_DIR
from agentic_sandbox.crds.loadout import LoadoutSpec
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_UID,
    SandboxSpec,
    VmSpec,
)
from agentic_sandbox.runtimes.libvirt import LibvirtRuntime
from agentic_sandbox.runtimes.libvirt_xml import parse_ownership
from tests.e2e.controller_process import ControllerProcess, wait_for
from tests.vm_support import LIBVIRT_URI, TINY_GUEST, remove_domains, require_tiny_guest

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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def owned_domains(controller_id: str) -> list[str]:
    """Names of the domains whose metadata names ``controller_id``."""
    connection = libvirt.open(LIBVIRT_URI)
    try:
        return sorted(
            domain.name()
            for domain in connection.listAllDomains()
            if parse_ownership(domain.XMLDesc(0)).get(LABEL_CONTROLLER) == controller_id
        )
    finally:
        connection.close()


def domain_dirs(name: str) -> list[Path]:
    return sorted(DEFAULT_VM_DIR.glob(f"{name}-*")) + sorted(DEFAULT_VM_DIR.glob(f"{name}"))


def test_vm_lifecycle_keeps_disk_until_delete(controller: ControllerProcess) -> None:
    name = f"vm-{controller.controller_id[-6:]}"
    base_image = TINY_GUEST / "disk.qcow2"
    base_digest = sha256(base_image)
    path = controller.manifests.parent / "vm.yaml"
    path.write_text(VM_MANIFEST.format(name=name))
    applied = controller.sandboxctl("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr

    wait_phase(controller, name, "Running")
    wait_serial(controller, name, READY_LINE)
    details = runtime_ref(controller, name)["details"]
    assert details["accelerator"] in ("kvm", "tcg")
    assert details["domain"] == name
    disk = Path(details["disk"])
    assert disk.exists()
    described = controller.sandboxctl("describe", "instance", name)
    assert described.returncode == 0, described.stderr
    assert "Accelerator:" in described.stdout
    assert details["serialLog"] in described.stdout
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

    deleted = controller.sandboxctl("delete", "instance", name)
    assert deleted.returncode == 0, deleted.stderr
    wait_for(lambda: controller.instance(name) is None, timeout=BOOT_SECONDS, what="deletion")
    assert name not in domain_names()
    assert not disk.exists()
    assert not disk.parent.exists()
    assert sha256(base_image) == base_digest, "the base image must never be written"
    events = {event["name"] for event in controller.events(name)}
    assert {"vm.defined", "vm.started", "vm.stopped", "vm.undefined"} <= events


def test_destroyed_vm_restarts_on_same_disk(controller: ControllerProcess) -> None:
    name = f"crash-{controller.controller_id[-6:]}"
    controller.write_manifest("vm.yaml", VM_MANIFEST.format(name=name))
    wait_phase(controller, name, "Running")
    wait_serial(controller, name, READY_LINE)
    first_id = runtime_ref(controller, name)["id"]

    # A crash seen from the controller: the domain stops without being asked to.
    subprocess.run(["virsh", "-c", LIBVIRT_URI, "destroy", name], check=True, timeout=60)

    log = wait_serial(controller, name, READY_LINE, count=2)
    assert "agentic-sandbox-guest: booted boot=2" in log, "a restart must keep the disk"
    wait_phase(controller, name, "Running")
    assert runtime_ref(controller, name)["id"] == first_id
    assert (controller.instance(name) or {})["status"]["restartCount"] >= 1


def test_kill_during_create_leaves_one_domain(controller: ControllerProcess) -> None:
    name = f"kill-{controller.controller_id[-6:]}"
    controller.write_manifest("vm.yaml", VM_MANIFEST.format(name=name))
    # Kill as soon as the driver has begun: its directory exists, the domain may not yet.
    wait_for(lambda: domain_dirs(name), timeout=BOOT_SECONDS, what=f"files of {name}")
    controller.kill()
    controller.start()

    wait_phase(controller, name, "Running")
    wait_serial(controller, name, READY_LINE)
    assert owned_domains(controller.controller_id) == [name]
    assert len(domain_dirs(name)) == 1, domain_dirs(name)

    (controller.manifests / "vm.yaml").unlink()
    wait_for(lambda: controller.instance(name) is None, timeout=BOOT_SECONDS, what="deletion")
    assert owned_domains(controller.controller_id) == []
    assert domain_dirs(name) == []


def test_collector_removes_orphan_domain(tmp_path: Path) -> None:
    require_tiny_guest()
    process = ControllerProcess(tmp_path)
    process.extra_env = {
        "DOCKER_MONITOR_ENABLED": "true",
        "DOCKER_POLL_INTERVAL_SECS": "1",
        "AGENTIC_SANDBOX_GC_STARTUP_DELAY_SECS": "1",
        "AGENTIC_SANDBOX_GC_GRACE_SECS": "1",
    }
    name = f"orphan-{process.controller_id[-6:]}"
    # A domain this controller made for an instance whose record is gone.
    created = asyncio.run(_define_orphan(name, process.controller_id))
    try:
        assert owned_domains(process.controller_id) == [name]
        process.start()
        wait_for(
            lambda: not owned_domains(process.controller_id),
            timeout=BOOT_SECONDS,
            what=f"the collector removing {name}",
        )
        assert not Path(created.details["disk"]).parent.exists()
        assert (TINY_GUEST / "disk.qcow2").exists()
    finally:
        process.cleanup()
        remove_domains(process.controller_id)


async def _define_orphan(name: str, controller_id: str) -> Any:
    loadout = ResolvedLoadout(
        name="tiny",
        chain=("tiny",),
        spec=LoadoutSpec.model_validate(
            {
                "baseImage": str(TINY_GUEST / "disk.qcow2"),
                "kernel": str(TINY_GUEST / "vmlinuz"),
                "initrd": str(TINY_GUEST / "initrd.img"),
                "cmdline": "console=ttyS0 quiet",
            }
        ),
    )
    runtime = LibvirtRuntime(uri=LIBVIRT_URI)
    try:
        return await runtime.create(
            SandboxSpec(
                name=name,
                image=str(TINY_GUEST / "disk.qcow2"),
                labels={
                    LABEL_MANAGED: "true",
                    LABEL_CONTROLLER: controller_id,
                    LABEL_INSTANCE: f"default/{name}",
                    LABEL_UID: str(uuid.uuid4()),
                },
                network="user",
                memory_bytes=256 << 20,
                runtime="libvirt",
                vm=VmSpec(base_image=str(TINY_GUEST / "disk.qcow2"), loadout=loadout),
            )
        )
    finally:
        await runtime.close()
