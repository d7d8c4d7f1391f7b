"""A libvirtd outage, simulated with a socket proxy, against a real VM and a real container.

The controller reaches libvirtd through a unix-socket proxy that the test stops and starts, so
the shared libvirtd keeps running for everything else. While libvirt is out of reach, the VM
reports Unknown and the container is not disturbed; once it is back, the controller reconnects
and reacts to libvirt's events again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.controller_process import ControllerProcess, instance_yaml, wait_for
from tests.e2e.test_outage import ThreadedProxy
from tests.e2e.test_vm import (
    BOOT_SECONDS,
    READY_LINE,
    VM_MANIFEST,
    runtime_ref,
    wait_phase,
    wait_serial,
)
from tests.vm_support import LIBVIRT_URI, remove_domains, require_tiny_guest

pytestmark = [pytest.mark.libvirt, pytest.mark.docker]

LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ThreadedProxy]:
    threaded = ThreadedProxy(tmp_path / "libvirt.sock", upstream=LIBVIRT_SOCKET)
    threaded.start()
    try:
        yield threaded
    finally:
        threaded.close()


@pytest.fixture
def controller(
    demo_image: str, tmp_path: Path, proxy: ThreadedProxy
) -> Iterator[ControllerProcess]:
    require_tiny_guest()
    process = ControllerProcess(tmp_path)
    process.extra_args = ["--libvirt-uri", f"qemu:///system?socket={proxy.proxy.path}"]
    process.start()
    try:
        yield process
    finally:
        process.cleanup()
        remove_domains(process.controller_id)


def runtime_ready(controller: ControllerProcess, name: str) -> str | None:
    conditions: list[dict[str, Any]] = (
        (controller.instance(name) or {}).get("status", {}).get("conditions", [])
    )
    found = next((c for c in conditions if c["type"] == "RuntimeReady"), None)
    return None if found is None else str(found["status"])


def test_libvirt_outage_spares_containers_and_recovers(
    controller: ControllerProcess, proxy: ThreadedProxy
) -> None:
    vm = f"out-{controller.controller_id[-6:]}"
    controller.write_manifest("vm.yaml", VM_MANIFEST.format(name=vm))
    controller.write_manifest("web.yaml", instance_yaml("web"))
    wait_phase(controller, vm, "Running")
    wait_serial(controller, vm, READY_LINE)
    web = controller.wait_running("web")["Id"]

    proxy.stop()
    wait_for(
        lambda: runtime_ready(controller, vm) == "Unknown",
        timeout=BOOT_SECONDS,
        what="the VM's RuntimeReady Unknown during the outage",
    )
    assert runtime_ready(controller, "web") == "True"
    assert controller.phase("web") == "Running"

    proxy.start()
    wait_phase(controller, vm, "Running")
    assert runtime_ready(controller, vm) == "True"

    # Events flow again: a domain destroyed behind the controller's back is started again.
    domain_id = runtime_ref(controller, vm)["id"]
    subprocess.run(["virsh", "-c", LIBVIRT_URI, "destroy", vm], check=True, timeout=60)
    wait_serial(controller, vm, READY_LINE, count=2)
    assert runtime_ref(controller, vm)["id"] == domain_id
    assert controller.running_container("web")["Id"] == web  # type: ignore[index]
