"""Domain XML for the libvirt driver, built from a driver-neutral ``DomainSpec``.

The XML is built with ElementTree, never from string templates, so every name, path and
ownership value is escaped by the serializer. ``build_domain_xml`` is a pure function: it
checks its input and touches neither libvirt nor the file system.

The ownership facts (the labels that Docker objects carry) sit in the domain's ``<metadata>``
as one element per fact inside a single ``<sandbox:ownership>`` element in the project's
namespace; any other label becomes a ``<sandbox:label key="...">`` element there. libvirt
keeps custom metadata only in a namespaced element, at most one top-level element per
namespace. ``parse_ownership`` reads them back as the same label names, so the
garbage collector and adoption match domains exactly as they match containers.

A second element, ``<sandbox-vm:vm>`` in its own namespace, is the ``VmRecord``: the base
image and the times libvirt does not keep (created, last started, last stopped and why). It
has its own namespace so the driver can rewrite it with ``virDomainSetMetadata`` without
touching the ownership facts.
"""

from __future__ import annotations

import math
import re
import uuid as uuid_module
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from agentic_sandbox.crds.loadout import NetworkMode
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_HASH_SCHEMA,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_SPEC_HASH,
    LABEL_UID,
)

METADATA_NAMESPACE = "https://sandbox.agentic.dev/xmlns/v1"
METADATA_PREFIX = "sandbox"
OWNERSHIP_ELEMENT = "ownership"
RECORD_NAMESPACE = "https://sandbox.agentic.dev/xmlns/v1/vm"
RECORD_PREFIX = "sandbox-vm"
RECORD_ELEMENT = "vm"
# libvirt's own NAT network, which keeps guest traffic on this machine.
LIBVIRT_NETWORK = "default"

# Ownership label -> element name inside <sandbox:ownership>.
OWNERSHIP_ELEMENTS: dict[str, str] = {
    LABEL_MANAGED: "managed",
    LABEL_CONTROLLER: "controller",
    LABEL_INSTANCE: "instance",
    LABEL_UID: "uid",
    LABEL_SPEC_HASH: "spec-hash",
    LABEL_HASH_SCHEMA: "hash-schema",
}
_OWNERSHIP_LABELS = {element: label for label, element in OWNERSHIP_ELEMENTS.items()}
# Element of any other label: <sandbox:label key="NAME">VALUE</sandbox:label>.
LABEL_ELEMENT = "label"

# A runtime object name: a DNS-1123 label, or ``namespace.name`` (see controller.desired).
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DOMAIN_NAME = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})?$")
# Characters that XML 1.0 cannot carry, even escaped.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

ET.register_namespace(METADATA_PREFIX, METADATA_NAMESPACE)
ET.register_namespace(RECORD_PREFIX, RECORD_NAMESPACE)


@dataclass(frozen=True)
class VmRecord:
    """What the driver records about a domain in its metadata, because libvirt keeps no such facts.

    ``stop_reason`` is the libvirt shutoff reason of the last stop (``shutdown``,
    ``destroyed``, ``crashed``, ``failed``...) as the driver saw it, or None while running or
    before the first stop.
    """

    base_image: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def running(self) -> bool:
        """Whether the last recorded start has no recorded stop after it."""
        if self.started_at is None:
            return False
        return self.finished_at is None or self.finished_at < self.started_at


@dataclass(frozen=True)
class DomainSpec:
    """Everything ``build_domain_xml`` needs for one virtual machine.

    ``disk_path`` is the qcow2 overlay on the base image ``backing_image`` (format
    ``backing_format``); the base image itself is never attached. ``network_mode`` is ``user``
    (user-mode networking, nothing exposed on the host), ``libvirt`` (libvirt's ``default``
    network) or ``isolated`` (no interface at all). ``record`` goes into the metadata.
    """

    name: str
    vcpus: int
    memory_bytes: int
    disk_path: str
    serial_log_path: str
    ownership: dict[str, str]
    uuid: str | None = None
    seed_iso_path: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    network_mode: NetworkMode = NetworkMode.USER
    domain_type: Literal["kvm", "qemu"] = "qemu"
    backing_image: str | None = None
    backing_format: Literal["qcow2", "raw"] = "qcow2"
    record: VmRecord | None = None

    def __post_init__(self) -> None:
        _check_spec(self)


def _check_spec(spec: DomainSpec) -> None:
    if not DOMAIN_NAME.match(spec.name):
        raise ValueError(f"domain name {spec.name!r} is not a DNS-1123 label or 'namespace.name'")
    if spec.vcpus < 1:
        raise ValueError(f"vcpus is {spec.vcpus}; expected at least 1")
    if spec.memory_bytes < 1 << 20:
        raise ValueError(f"memory_bytes is {spec.memory_bytes}; expected at least 1 MiB")
    if spec.domain_type not in ("kvm", "qemu"):
        raise ValueError(f"domain_type is {spec.domain_type!r}; expected 'kvm' or 'qemu'")
    if spec.backing_format not in ("qcow2", "raw"):
        raise ValueError(f"backing_format is {spec.backing_format!r}; expected 'qcow2' or 'raw'")
    if spec.uuid is not None:
        try:
            uuid_module.UUID(spec.uuid)
        except ValueError:
            raise ValueError(f"uuid {spec.uuid!r} is not a UUID") from None
    if spec.kernel is None and (spec.initrd is not None or spec.cmdline is not None):
        raise ValueError("initrd and cmdline need a kernel for direct kernel boot; set kernel")

    paths = {
        "disk_path": spec.disk_path,
        "serial_log_path": spec.serial_log_path,
        "seed_iso_path": spec.seed_iso_path,
        "kernel": spec.kernel,
        "initrd": spec.initrd,
        "backing_image": spec.backing_image,
    }
    for name, path in paths.items():
        if path is not None and not path.startswith("/"):
            raise ValueError(f"{name} {path!r} is not an absolute path")

    if any(not label for label in spec.ownership):
        raise ValueError("ownership has an empty label name")
    texts = [
        *spec.ownership,
        *spec.ownership.values(),
        spec.cmdline or "",
        *(p or "" for p in paths.values()),
    ]
    if any(_XML_FORBIDDEN.search(text) for text in texts):
        raise ValueError("a path, cmdline or ownership label contains a control character")


def vcpus_for(cpus: float) -> int:
    """Return the whole number of virtual CPUs for a fractional CPU request, at least 1."""
    return max(1, math.ceil(cpus))


def build_domain_xml(spec: DomainSpec) -> str:
    """Build the domain XML that ``virConnect.defineXML`` takes, as a unicode string."""
    domain = ET.Element("domain", type=spec.domain_type)
    ET.SubElement(domain, "name").text = spec.name
    if spec.uuid is not None:
        ET.SubElement(domain, "uuid").text = str(uuid_module.UUID(spec.uuid))
    _add_metadata(domain, spec.ownership, spec.record)

    memory_kib = str(math.ceil(spec.memory_bytes / 1024))
    ET.SubElement(domain, "memory", unit="KiB").text = memory_kib
    ET.SubElement(domain, "currentMemory", unit="KiB").text = memory_kib
    ET.SubElement(domain, "vcpu", placement="static").text = str(spec.vcpus)

    _add_os(domain, spec)
    features = ET.SubElement(domain, "features")
    # Without ACPI the guest ignores the power button, so a graceful shutdown never happens.
    ET.SubElement(features, "acpi")
    _add_cpu(domain, spec.domain_type)
    ET.SubElement(domain, "clock", offset="utc")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    # The controller owns restarts, so a crashed guest stays down until the next reconcile.
    ET.SubElement(domain, "on_crash").text = "destroy"

    devices = ET.SubElement(domain, "devices")
    _add_disks(devices, spec)
    _add_interface(devices, spec.network_mode)
    _add_serial(devices, spec.serial_log_path)
    rng = ET.SubElement(devices, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"

    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def _add_metadata(domain: ET.Element, ownership: dict[str, str], record: VmRecord | None) -> None:
    metadata = ET.SubElement(domain, "metadata")
    owner = ET.SubElement(metadata, f"{{{METADATA_NAMESPACE}}}{OWNERSHIP_ELEMENT}")
    for label in sorted(ownership):
        element = OWNERSHIP_ELEMENTS.get(label)
        if element is None:
            # Any other label, such as one a test adds to find its own domains.
            other = ET.SubElement(owner, f"{{{METADATA_NAMESPACE}}}{LABEL_ELEMENT}", key=label)
            other.text = ownership[label]
        else:
            ET.SubElement(owner, f"{{{METADATA_NAMESPACE}}}{element}").text = ownership[label]
    if record is not None:
        metadata.append(_record_element(record, f"{{{RECORD_NAMESPACE}}}"))


def _add_os(domain: ET.Element, spec: DomainSpec) -> None:
    os_element = ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type").text = "hvm"
    if spec.kernel is None:
        ET.SubElement(os_element, "boot", dev="hd")
        return
    ET.SubElement(os_element, "kernel").text = spec.kernel
    if spec.initrd is not None:
        ET.SubElement(os_element, "initrd").text = spec.initrd
    if spec.cmdline is not None:
        ET.SubElement(os_element, "cmdline").text = spec.cmdline


def _add_cpu(domain: ET.Element, domain_type: str) -> None:
    if domain_type == "kvm":
        ET.SubElement(domain, "cpu", mode="host-model")
        return
    # host-model needs KVM. Under TCG, "maximum" (QEMU's "-cpu max") emulates every CPU
    # feature QEMU can, so guests built for x86-64-v2 or later still boot. libvirt accepts
    # mode "maximum" from version 7.1; checked with libvirt 9.0 and QEMU 7.2.
    ET.SubElement(domain, "cpu", mode="maximum", check="none")


def _add_disks(devices: ET.Element, spec: DomainSpec) -> None:
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    ET.SubElement(disk, "source", file=spec.disk_path)
    if spec.backing_image is not None:
        _add_backing_store(disk, spec.backing_image, spec.backing_format)
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    if spec.seed_iso_path is None:
        return

    # A SCSI CD-ROM on virtio-scsi works on both the pc and q35 machine types, but IDE
    # works only on pc.
    ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", file=spec.seed_iso_path)
    ET.SubElement(cdrom, "target", dev="sda", bus="scsi")
    ET.SubElement(cdrom, "readonly")


def _add_backing_store(disk: ET.Element, path: str, image_format: str) -> None:
    # With dynamic_ownership (libvirt's default), libvirt chowns every image of the chain to
    # the QEMU user and, for a read-only backing image, never restores the owner. A base image
    # shared by many domains must stay as its owner made it, so relabelling is turned off for
    # it, and QEMU reads it through its permission bits. The empty <backingStore/> ends the
    # chain: the base image has no backing file of its own.
    backing = ET.SubElement(disk, "backingStore", type="file")
    ET.SubElement(backing, "format", type=image_format)
    source = ET.SubElement(backing, "source", file=path)
    ET.SubElement(source, "seclabel", model="dac", relabel="no")
    ET.SubElement(backing, "backingStore")


def _add_interface(devices: ET.Element, mode: NetworkMode) -> None:
    if mode == NetworkMode.ISOLATED:
        return
    if mode == NetworkMode.USER:
        # User-mode networking: no host-side device, no forwarded ports.
        interface = ET.SubElement(devices, "interface", type="user")
    else:
        interface = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(interface, "source", network=LIBVIRT_NETWORK)
    ET.SubElement(interface, "model", type="virtio")


def _add_serial(devices: ET.Element, log_path: str) -> None:
    # append="on" keeps the log of earlier boots when the domain starts again.
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=log_path, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=log_path, append="on")
    ET.SubElement(console, "target", type="serial", port="0")


def parse_ownership(xml: str) -> dict[str, str]:
    """Read the ownership facts of a domain XML back as ownership labels.

    Returns an empty dict when the domain has no ownership metadata. Raises
    ``xml.etree.ElementTree.ParseError`` when ``xml`` is not well-formed.
    """
    domain = ET.fromstring(xml)
    owner = domain.find(f"metadata/{{{METADATA_NAMESPACE}}}{OWNERSHIP_ELEMENT}")
    if owner is None:
        return {}
    labels: dict[str, str] = {}
    prefix = f"{{{METADATA_NAMESPACE}}}"
    for child in owner:
        if not child.tag.startswith(prefix):
            continue
        element = child.tag.removeprefix(prefix)
        if element == LABEL_ELEMENT and child.get("key"):
            labels[str(child.get("key"))] = child.text or ""
            continue
        label = _OWNERSHIP_LABELS.get(element)
        if label is not None:
            labels[label] = child.text or ""
    return labels


def _record_element(record: VmRecord, prefix: str) -> ET.Element:
    element = ET.Element(f"{prefix}{RECORD_ELEMENT}")
    ET.SubElement(element, f"{prefix}base-image").text = record.base_image
    times = {
        "created-at": record.created_at,
        "started-at": record.started_at,
        "finished-at": record.finished_at,
    }
    for name, value in times.items():
        if value is not None:
            ET.SubElement(element, f"{prefix}{name}").text = value.isoformat()
    if record.stop_reason is not None:
        ET.SubElement(element, f"{prefix}stop-reason").text = record.stop_reason
    return element


def record_metadata_xml(record: VmRecord) -> str:
    """Render ``record`` for ``virDomainSetMetadata`` with RECORD_NAMESPACE and RECORD_PREFIX.

    libvirt takes the element without a namespace and puts it in the namespace it is given.
    """
    return ET.tostring(_record_element(record, ""), encoding="unicode")


def parse_record(xml: str) -> VmRecord | None:
    """Read the VmRecord of a domain XML, or None when it has none or it is unreadable."""
    domain = ET.fromstring(xml)
    prefix = f"{{{RECORD_NAMESPACE}}}"
    element = domain.find(f"metadata/{prefix}{RECORD_ELEMENT}")
    if element is None:
        return None
    base_image = element.findtext(f"{prefix}base-image")
    created_at = _parse_time(element.findtext(f"{prefix}created-at"))
    if base_image is None or created_at is None:
        return None
    return VmRecord(
        base_image=base_image,
        created_at=created_at,
        started_at=_parse_time(element.findtext(f"{prefix}started-at")),
        finished_at=_parse_time(element.findtext(f"{prefix}finished-at")),
        stop_reason=element.findtext(f"{prefix}stop-reason"),
    )


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Times are written in UTC; one without an offset was not written by this module.
    return value if value.tzinfo is not None else None


def build_probe_xml(name: str, domain_type: Literal["kvm", "qemu"]) -> str:
    """Build a domain with no devices and the CPU of ``domain_type``, to test that it starts."""
    domain = ET.Element("domain", type=domain_type)
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = "16"
    ET.SubElement(domain, "vcpu").text = "1"
    os_element = ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type").text = "hvm"
    _add_cpu(domain, domain_type)
    devices = ET.SubElement(domain, "devices")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")
