"""Tests of the domain XML builder: parse what it produces and check each element."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from agentic_sandbox.crds.loadout import NetworkMode
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_HASH_SCHEMA,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_SPEC_HASH,
    LABEL_UID,
)
from agentic_sandbox.runtimes.libvirt_xml import (
    METADATA_NAMESPACE,
    DomainSpec,
    build_domain_xml,
    parse_ownership,
    vcpus_for,
)

OWNERSHIP = {
    LABEL_MANAGED: "true",
    LABEL_CONTROLLER: "ctrl-1",
    LABEL_INSTANCE: "team-a/web",
    LABEL_UID: "6f1c2f9e-3c1b-4a53-9b43-0d6f3b1f7a10",
    LABEL_SPEC_HASH: "sha256:abc",
    LABEL_HASH_SCHEMA: "1",
}
UUID = "0b7c8d52-1a3e-4d1f-8f3c-2b9e6a1d4c55"


def make_spec(**changes: Any) -> DomainSpec:
    fields: dict[str, Any] = {
        "name": "team-a.web",
        "vcpus": 2,
        "memory_bytes": 512 * 1024 * 1024,
        "disk_path": "/var/lib/agentic-sandbox/vm/web.qcow2",
        "serial_log_path": "/var/log/agentic-sandbox/web.serial.log",
        "ownership": dict(OWNERSHIP),
        "uuid": UUID,
        "seed_iso_path": "/var/lib/agentic-sandbox/vm/web.seed.iso",
    }
    fields.update(changes)
    return DomainSpec(**fields)


def parse(spec: DomainSpec) -> ET.Element:
    return ET.fromstring(build_domain_xml(spec))


def child(parent: ET.Element, path: str) -> ET.Element:
    element = parent.find(path)
    assert element is not None, f"no element at {path!r}"
    return element


def test_domain_top_level_elements() -> None:
    domain = parse(make_spec())

    assert domain.tag == "domain"
    assert domain.get("type") == "qemu"
    assert domain.findtext("name") == "team-a.web"
    assert domain.findtext("uuid") == UUID
    assert child(domain, "memory").get("unit") == "KiB"
    assert domain.findtext("memory") == str(512 * 1024)
    assert domain.findtext("currentMemory") == str(512 * 1024)
    assert domain.findtext("vcpu") == "2"
    assert domain.find("features/acpi") is not None
    assert domain.findtext("on_poweroff") == "destroy"
    assert domain.findtext("on_reboot") == "restart"
    assert domain.findtext("on_crash") == "destroy"
    assert child(domain, "clock").get("offset") == "utc"


def test_domain_uuid_left_to_libvirt() -> None:
    domain = parse(make_spec(uuid=None))

    assert domain.find("uuid") is None


def test_domain_memory_rounds_up_to_kib() -> None:
    domain = parse(make_spec(memory_bytes=(1 << 30) + 1))

    assert domain.findtext("memory") == str((1 << 20) + 1)


def test_cpu_mode_kvm_host_model() -> None:
    cpu = parse(make_spec(domain_type="kvm")).find("cpu")

    assert cpu is not None
    assert cpu.get("mode") == "host-model"


def test_cpu_mode_tcg_maximum() -> None:
    domain = parse(make_spec(domain_type="qemu"))
    cpu = domain.find("cpu")

    assert domain.get("type") == "qemu"
    assert cpu is not None
    assert cpu.get("mode") == "maximum"


def test_os_boots_disk_without_kernel() -> None:
    os_element = parse(make_spec()).find("os")

    assert os_element is not None
    assert os_element.findtext("type") == "hvm"
    assert child(os_element, "boot").get("dev") == "hd"
    assert os_element.find("kernel") is None
    assert os_element.find("initrd") is None
    assert os_element.find("cmdline") is None


def test_os_direct_kernel_boot() -> None:
    spec = make_spec(
        kernel="/boot/vmlinuz", initrd="/boot/initrd.img", cmdline="console=ttyS0 root=/dev/vda"
    )
    os_element = parse(spec).find("os")

    assert os_element is not None
    assert os_element.findtext("kernel") == "/boot/vmlinuz"
    assert os_element.findtext("initrd") == "/boot/initrd.img"
    assert os_element.findtext("cmdline") == "console=ttyS0 root=/dev/vda"
    assert os_element.find("boot") is None


def test_os_kernel_without_initrd() -> None:
    os_element = parse(make_spec(kernel="/boot/vmlinuz")).find("os")

    assert os_element is not None
    assert os_element.findtext("kernel") == "/boot/vmlinuz"
    assert os_element.find("initrd") is None
    assert os_element.find("cmdline") is None


def test_disk_is_virtio_qcow2_overlay() -> None:
    disks = parse(make_spec()).findall("devices/disk[@device='disk']")

    assert len(disks) == 1
    disk = disks[0]
    assert disk.get("type") == "file"
    assert child(disk, "driver").get("type") == "qcow2"
    assert child(disk, "source").get("file") == make_spec().disk_path
    assert child(disk, "target").get("bus") == "virtio"
    assert child(disk, "target").get("dev") == "vda"


def test_seed_attached_as_readonly_cdrom() -> None:
    devices = parse(make_spec()).find("devices")
    assert devices is not None
    cdroms = devices.findall("disk[@device='cdrom']")

    assert len(cdroms) == 1
    cdrom = cdroms[0]
    assert child(cdrom, "source").get("file") == make_spec().seed_iso_path
    assert child(cdrom, "driver").get("type") == "raw"
    assert child(cdrom, "target").get("bus") == "scsi"
    assert cdrom.find("readonly") is not None
    assert child(devices, "controller[@type='scsi']").get("model") == "virtio-scsi"


def test_seed_absent_no_cdrom() -> None:
    devices = parse(make_spec(seed_iso_path=None)).find("devices")
    assert devices is not None

    assert devices.findall("disk[@device='cdrom']") == []
    assert devices.find("controller[@type='scsi']") is None


def test_serial_console_writes_log_file() -> None:
    devices = parse(make_spec()).find("devices")
    assert devices is not None
    serial = devices.find("serial")
    console = devices.find("console")
    log_path = make_spec().serial_log_path

    assert serial is not None
    assert serial.get("type") == "file"
    assert child(serial, "source").get("path") == log_path
    assert child(serial, "target").get("port") == "0"
    assert console is not None
    assert console.get("type") == "file"
    assert child(console, "source").get("path") == log_path
    assert child(console, "target").get("type") == "serial"


def test_network_user_mode() -> None:
    interfaces = parse(make_spec(network_mode=NetworkMode.USER)).findall("devices/interface")

    assert len(interfaces) == 1
    assert interfaces[0].get("type") == "user"
    assert child(interfaces[0], "model").get("type") == "virtio"
    assert interfaces[0].find("portForward") is None


def test_network_libvirt_default() -> None:
    interfaces = parse(make_spec(network_mode=NetworkMode.LIBVIRT)).findall("devices/interface")

    assert len(interfaces) == 1
    assert interfaces[0].get("type") == "network"
    assert child(interfaces[0], "source").get("network") == "default"


def test_network_isolated_no_interface() -> None:
    domain = parse(make_spec(network_mode=NetworkMode.ISOLATED))

    assert domain.findall("devices/interface") == []


def test_metadata_one_element_per_fact() -> None:
    metadata = parse(make_spec()).find("metadata")
    assert metadata is not None
    owners = list(metadata)

    assert len(owners) == 1
    assert owners[0].tag == f"{{{METADATA_NAMESPACE}}}ownership"
    names = sorted(child.tag.removeprefix(f"{{{METADATA_NAMESPACE}}}") for child in owners[0])
    assert names == ["controller", "hash-schema", "instance", "managed", "spec-hash", "uid"]


def test_ownership_round_trip() -> None:
    xml = build_domain_xml(make_spec())

    assert parse_ownership(xml) == OWNERSHIP


def test_ownership_escapes_markup() -> None:
    ownership = dict(OWNERSHIP, **{LABEL_SPEC_HASH: "<a>&'\""})
    xml = build_domain_xml(make_spec(ownership=ownership))

    assert parse_ownership(xml) == ownership


def test_ownership_absent_empty() -> None:
    assert parse_ownership("<domain type='kvm'><name>other</name></domain>") == {}


def test_ownership_ignores_foreign_metadata() -> None:
    xml = (
        "<domain type='kvm'><name>x</name><metadata>"
        "<other:thing xmlns:other='https://example.invalid/ns'><other:uid>1</other:uid>"
        "</other:thing></metadata></domain>"
    )

    assert parse_ownership(xml) == {}


def test_ownership_malformed_xml_raises() -> None:
    with pytest.raises(ET.ParseError):
        parse_ownership("<domain>")


@pytest.mark.parametrize(
    "name", ["Web", "web_1", "-web", "web.", "a.b.c", "web/../x", "web'x", "a" * 64, ""]
)
def test_spec_rejects_unsafe_name(name: str) -> None:
    with pytest.raises(ValueError, match="domain name"):
        make_spec(name=name)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vcpus": 0}, "vcpus"),
        ({"memory_bytes": 1024}, "memory_bytes"),
        ({"domain_type": "xen"}, "domain_type"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"initrd": "/boot/initrd.img"}, "kernel"),
        ({"cmdline": "console=ttyS0"}, "kernel"),
        ({"disk_path": "web.qcow2"}, "disk_path"),
        ({"serial_log_path": "log"}, "serial_log_path"),
        ({"ownership": {"": "x"}}, "empty label name"),
        ({"backing_format": "vmdk"}, "backing_format"),
        ({"backing_image": "base.qcow2"}, "backing_image"),
        ({"ownership": {LABEL_UID: "a\x01b"}}, "control character"),
        ({"cmdline": "a\x00b", "kernel": "/boot/vmlinuz"}, "control character"),
    ],
)
def test_spec_rejects_invalid_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(**changes)


def test_spec_is_frozen() -> None:
    spec = make_spec()

    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("cpus", "vcpus"), [(0.25, 1), (1.0, 1), (1.5, 2), (4.0, 4)])
def test_vcpus_for_rounds_up(cpus: float, vcpus: int) -> None:
    assert vcpus_for(cpus) == vcpus
