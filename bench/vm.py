"""VM boot benchmark: apply a libvirt Instance until its guest has booted, against raw libvirt.

Each trial applies an Instance with the ``tiny`` loadout through the API of a real controller and
measures the time until the guest prints its ready line on the serial console. In the same run,
each trial also boots the same domain with libvirt-python directly: ``qemu-img create`` of an
overlay, ``defineXML`` of the XML the controller generated (renamed, with its own disk and log),
``create``, and the same wait for the ready line. It prints both medians and their ratio.

    .venv/bin/python bench/vm.py --trials 3

Needs a running libvirtd and the tiny guest (scripts/setup builds it). Guests run under TCG
here, so most of either figure is the emulated boot itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
from common import BenchController

URI = "qemu:///system"
READY_LINE = b"agentic-sandbox-guest: ready"
POLL_SECONDS = 0.01
BOOT_LIMIT_SECONDS = 300.0


def wait_for_line(path: Path, started: float) -> float:
    """Return the seconds from ``started`` until ``path`` contains the ready line."""
    deadline = started + BOOT_LIMIT_SECONDS
    while time.monotonic() < deadline:
        if path.exists() and READY_LINE in path.read_bytes():
            return time.monotonic() - started
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"the guest did not print its ready line in {path} within the limit")


def instance_body(name: str) -> dict[str, object]:
    return {
        "apiVersion": "sandbox.agentic.dev/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {"runtime": "libvirt", "loadout": "tiny"},
    }


def serial_log_of(controller: BenchController, name: str) -> Path | None:
    response = controller.client.get(f"/api/v1/instances/{name}")
    if response.status_code != 200:
        return None
    ref = response.json().get("status", {}).get("runtimeRef") or {}
    path = (ref.get("details") or {}).get("serialLog")
    return Path(path) if path else None


def ours(controller: BenchController, name: str) -> tuple[float, str]:
    """Boot one Instance through the controller; return the seconds and the domain XML."""
    started = time.monotonic()
    response = controller.client.put(f"/api/v1/instances/{name}", json=instance_body(name))
    response.raise_for_status()
    log = None
    while log is None:
        if time.monotonic() - started > BOOT_LIMIT_SECONDS:
            raise SystemExit(f"instance {name} reported no serial log within the limit")
        log = serial_log_of(controller, name)
        if log is None:
            time.sleep(POLL_SECONDS)
    seconds = wait_for_line(log, started)
    connection = libvirt.open(URI)
    try:
        xml = connection.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        connection.close()
    return seconds, xml


def keep_boot_files(xml: str, directory: Path) -> str:
    """Copy the domain's kernel and initrd into ``directory``; return the XML pointing there.

    The controller keeps them in the domain's own directory, which goes with the instance.
    """
    root = ET.fromstring(xml)
    os_element = root.find("os")
    assert os_element is not None
    for tag in ("kernel", "initrd"):
        element = os_element.find(tag)
        if element is not None and element.text:
            copy = directory / Path(element.text).name
            shutil.copyfile(element.text, copy)
            copy.chmod(0o644)
            element.text = str(copy)
    return ET.tostring(root, encoding="unicode")


def raw_domain_xml(xml: str, name: str, disk: Path, log: Path) -> str:
    """Rename the controller's domain XML and point it at a fresh overlay and log."""
    root = ET.fromstring(xml)
    root.find("name").text = name  # type: ignore[union-attr]
    for element in ("uuid", "metadata"):
        found = root.find(element)
        if found is not None:
            root.remove(found)
    devices = root.find("devices")
    assert devices is not None
    for disk_element in devices.findall("disk"):
        source = disk_element.find("source")
        if disk_element.get("device") == "disk" and source is not None:
            source.set("file", str(disk))
            # The new overlay records its own backing file.
            for backing in disk_element.findall("backingStore"):
                disk_element.remove(backing)
    for tag in ("serial", "console"):
        for element in devices.findall(tag):
            source = element.find("source")
            if source is not None and source.get("path"):
                source.set("path", str(log))
    # The cloud-init seed belongs to the controller's domain; the raw boot goes without it.
    for cdrom in [d for d in devices.findall("disk") if d.get("device") == "cdrom"]:
        devices.remove(cdrom)
    return ET.tostring(root, encoding="unicode")


def raw(xml: str, base_image: str, work: Path) -> float:
    """Boot the same domain with libvirt directly; return the seconds until ready."""
    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    directory = work / name
    directory.mkdir(mode=0o755)
    disk, log = directory / "disk.qcow2", directory / "serial.log"
    connection = libvirt.open(URI)
    started = time.monotonic()
    try:
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base_image, str(disk)],
            check=True,
        )
        domain = connection.defineXML(raw_domain_xml(xml, name, disk, log))
        try:
            domain.create()
            return wait_for_line(log, started)
        finally:
            if domain.isActive():
                domain.destroy()
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    finally:
        connection.close()
        shutil.rmtree(directory, ignore_errors=True)


def delete(controller: BenchController, name: str) -> None:
    controller.client.delete(f"/api/v1/instances/{name}")
    deadline = time.monotonic() + BOOT_LIMIT_SECONDS
    while controller.client.get(f"/api/v1/instances/{name}").status_code != 404:
        if time.monotonic() > deadline:
            raise SystemExit(f"instance {name} was not deleted within the limit")
        time.sleep(0.05)


def base_image_of(xml: str) -> str:
    result = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", _disk_of(xml)],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(result.stdout)["full-backing-filename"])


def _disk_of(xml: str) -> str:
    for source in ET.fromstring(xml).iter("source"):
        if source.get("file", "").endswith(".qcow2"):
            return str(source.get("file"))
    raise SystemExit("the controller's domain has no qcow2 disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="boots of each kind (default 3)")
    args = parser.parse_args()

    controller = BenchController(workers=4)
    work = Path(tempfile.mkdtemp(prefix="bench-vm-", dir="/var/lib/agentic-sandbox"))
    work.chmod(0o755)
    ours_seconds: list[float] = []
    raw_seconds: list[float] = []
    try:
        for trial in range(args.trials):
            name = f"bench-vm-{uuid.uuid4().hex[:6]}"
            try:
                seconds, xml = ours(controller, name)
                base_image = base_image_of(xml)
                boot_files = work / f"boot-{trial}"
                boot_files.mkdir(mode=0o755)
                xml = keep_boot_files(xml, boot_files)
            finally:
                # The controller removes its domain, so nothing outlives a failed trial.
                delete(controller, name)
            ours_seconds.append(seconds)
            raw_seconds.append(raw(xml, base_image, work))
            print(
                f"trial {trial + 1}: controller {ours_seconds[-1]:.2f} s, "
                f"raw libvirt {raw_seconds[-1]:.2f} s",
                flush=True,
            )
    finally:
        controller.close()
        shutil.rmtree(work, ignore_errors=True)
    ours_median = statistics.median(ours_seconds)
    raw_median = statistics.median(raw_seconds)
    print(f"apply to guest ready, median of {args.trials}: {ours_median:.2f} s")
    print(f"raw libvirt define+create to guest ready, median: {raw_median:.2f} s")
    print(f"ratio (controller / raw): {ours_median / raw_median:.2f}")


if __name__ == "__main__":
    main()
