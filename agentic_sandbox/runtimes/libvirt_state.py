"""Folding a libvirt domain (its XML, state and state reason) into a driver-neutral SandboxState.

libvirt reports a state and a reason, such as shut off because it was destroyed. The mapping
follows what Docker reports for a container, so the controller treats both alike:

- running, blocked, or shutting down: RUNNING; paused or suspended to memory: PAUSED;
- shut off and never started: CREATED;
- shut off by a guest shutdown: EXITED with exit code 0;
- shut off by a destroy (a forced stop): EXITED with exit code 137, as Docker reports a kill;
- shut off because the guest crashed: EXITED with exit code 1 and an error text;
- shut off because the domain failed to start, or crashed and kept (state crashed): DEAD with
  exit code 1 and an error text.

libvirt drops the reason when libvirtd restarts (a shut-off domain then has reason unknown)
and keeps no start or stop times, so the driver records them in the domain's metadata
(``VmRecord``) and falls back to that record here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import libvirt

from agentic_sandbox.runtimes.base import SandboxState, SandboxStatus
from agentic_sandbox.runtimes.libvirt_xml import VmRecord, parse_ownership, parse_record

# Exit code Docker reports for a container stopped by SIGKILL.
KILLED_EXIT_CODE = 137

# libvirt shutoff reason -> the name recorded in VmRecord.stop_reason.
SHUTOFF_REASONS: dict[int, str] = {
    libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN: "unknown",
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_SHUTOFF_SAVED: "saved",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "failed",
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: "from-snapshot",
    libvirt.VIR_DOMAIN_SHUTOFF_DAEMON: "daemon",
}

# STOPPED event detail -> the same names, for the times recorded from events.
STOPPED_DETAILS: dict[int, str] = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: "saved",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "failed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: "from-snapshot",
}

# Stop reason -> (status, exit code, error text).
_EXITS: dict[str, tuple[SandboxStatus, int | None, str]] = {
    "shutdown": (SandboxStatus.EXITED, 0, ""),
    "destroyed": (SandboxStatus.EXITED, KILLED_EXIT_CODE, ""),
    "saved": (SandboxStatus.EXITED, 0, ""),
    "migrated": (SandboxStatus.EXITED, 0, ""),
    "from-snapshot": (SandboxStatus.EXITED, 0, ""),
    "crashed": (SandboxStatus.EXITED, 1, "the guest crashed"),
    "failed": (
        SandboxStatus.DEAD,
        1,
        "the domain failed to start; the reason is in libvirt's QEMU log of the domain",
    ),
    "daemon": (SandboxStatus.EXITED, 1, "libvirtd stopped the domain while reconnecting to it"),
}

_RUNNING_STATES = frozenset(
    {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_SHUTDOWN}
)
_PAUSED_STATES = frozenset({libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED})


@dataclass(frozen=True)
class DomainFacts:
    """Facts the driver reads from a domain's XML."""

    uuid: str
    name: str
    labels: dict[str, str]
    record: VmRecord | None
    domain_type: str
    disk_path: str | None
    serial_log_path: str | None
    # What the guest really gets, which may differ from the Instance's own defaults.
    vcpus: str = ""
    memory_mib: str = ""

    @property
    def accelerator(self) -> str:
        """``kvm`` for a KVM domain, ``tcg`` for QEMU's own emulation."""
        return "kvm" if self.domain_type == "kvm" else "tcg"


def parse_domain(xml: str) -> DomainFacts:
    """Read the facts of a domain XML. Raises ``ET.ParseError`` for malformed XML."""
    domain = ET.fromstring(xml)
    disk_path = None
    for disk in domain.iterfind("devices/disk"):
        if disk.get("device", "disk") == "disk":
            source = disk.find("source")
            disk_path = source.get("file") if source is not None else None
            break
    serial = domain.find("devices/serial/source")
    return DomainFacts(
        uuid=domain.findtext("uuid") or "",
        name=domain.findtext("name") or "",
        labels=parse_ownership(xml),
        record=parse_record(xml),
        domain_type=domain.get("type", ""),
        disk_path=disk_path,
        serial_log_path=serial.get("path") if serial is not None else None,
        vcpus=(domain.findtext("vcpu") or "").strip(),
        memory_mib=_memory_mib(domain.find("memory")),
    )


def _memory_mib(element: ET.Element | None) -> str:
    """Return a domain's ``<memory>`` in MiB, or "" when it is missing or unreadable."""
    if element is None or not (element.text or "").strip().isdigit():
        return ""
    units = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20}
    factor = units.get(element.get("unit", "KiB").lower())
    if factor is None:
        return ""
    return str(int(element.text or "0") * factor >> 20)


def sandbox_state(facts: DomainFacts, state: int, reason: int) -> SandboxState:
    """Fold a domain's facts and its libvirt state and reason into a SandboxState."""
    record = facts.record
    status, exit_code, error = _status(state, reason, record)
    started_at = finished_at = None
    if record is not None and record.started_at is not None:
        if status in (SandboxStatus.RUNNING, SandboxStatus.PAUSED):
            # A start that happened while no driver was watching is not in the record.
            started_at = record.started_at if record.running else None
        elif status != SandboxStatus.CREATED:
            started_at = record.started_at
            finished_at = None if record.running else record.finished_at

    details = {"domain": facts.name, "accelerator": facts.accelerator}
    if facts.serial_log_path:
        details["serialLog"] = facts.serial_log_path
    if facts.disk_path:
        details["disk"] = facts.disk_path
    if facts.vcpus:
        details["vcpus"] = facts.vcpus
    if facts.memory_mib:
        details["memoryMiB"] = facts.memory_mib
    return SandboxState(
        id=facts.uuid,
        name=facts.name,
        labels=dict(facts.labels),
        status=status,
        created_at=record.created_at if record else None,
        started_at=started_at,
        finished_at=finished_at,
        exit_code=exit_code,
        error=error,
        image=record.base_image if record else "",
        details=details,
    )


def _status(
    state: int, reason: int, record: VmRecord | None
) -> tuple[SandboxStatus, int | None, str]:
    if state in _RUNNING_STATES:
        return SandboxStatus.RUNNING, None, ""
    if state in _PAUSED_STATES:
        return SandboxStatus.PAUSED, None, ""
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return SandboxStatus.DEAD, 1, "the guest crashed and libvirt kept the domain crashed"

    stop_reason = (
        SHUTOFF_REASONS.get(reason, "unknown") if state == libvirt.VIR_DOMAIN_SHUTOFF else "unknown"
    )
    if stop_reason == "unknown" and record is not None and record.stop_reason is not None:
        # libvirtd restarted since the stop, and only the record still has the reason.
        stop_reason = record.stop_reason
    if stop_reason in _EXITS:
        return _EXITS[stop_reason]
    if record is None or record.started_at is None:
        return SandboxStatus.CREATED, None, ""
    return (
        SandboxStatus.EXITED,
        None,
        "the domain stopped while no driver was watching, and libvirt does not know why",
    )
