"""Blocking libvirt operations of the driver, each run whole on one worker thread.

Every function takes the shared ``virConnect`` and returns plain values (``Observation``,
``DomainFacts``, strings), never a ``virDomain`` that could be used later from another thread.
A domain that disappears half-way reads as absent (None), because the caller treats absent
and vanished alike.
"""

from __future__ import annotations

import dataclasses
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import libvirt

from agentic_sandbox.runtimes.libvirt_disk import QemuUser
from agentic_sandbox.runtimes.libvirt_events import LifecycleEvent
from agentic_sandbox.runtimes.libvirt_state import (
    SHUTOFF_REASONS,
    STOPPED_DETAILS,
    DomainFacts,
    parse_domain,
)
from agentic_sandbox.runtimes.libvirt_xml import (
    RECORD_NAMESPACE,
    RECORD_PREFIX,
    VmRecord,
    record_metadata_xml,
)

# undefine also removes what libvirt keeps beside the definition: NVRAM, managed save image,
# snapshot and checkpoint metadata. Without these flags undefine fails when any of them exist.
UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
)


@dataclass(frozen=True)
class Observation:
    """A domain's facts with its state and state reason, read together."""

    facts: DomainFacts
    state: int
    reason: int

    @property
    def active(self) -> bool:
        return self.state not in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_NOSTATE)


def is_missing(exc: libvirt.libvirtError) -> bool:
    return bool(exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN)


def is_not_running(exc: libvirt.libvirtError) -> bool:
    """Whether an operation failed only because the domain is already shut off."""
    return bool(exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID)


def lookup(conn: libvirt.virConnect, sandbox_id: str) -> libvirt.virDomain | None:
    """Find a domain by UUID, or by name when ``sandbox_id`` is not a UUID."""
    try:
        uuid_module.UUID(sandbox_id)
    except ValueError:
        finder: Callable[[str], libvirt.virDomain] = conn.lookupByName
    else:
        finder = conn.lookupByUUIDString
    try:
        return finder(sandbox_id)
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return None
        raise


def observe_domain(domain: libvirt.virDomain) -> Observation | None:
    try:
        xml = domain.XMLDesc(0)
        state, reason = domain.state()
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return None
        raise
    return Observation(facts=parse_domain(xml), state=state, reason=reason)


def observe(conn: libvirt.virConnect, sandbox_id: str) -> Observation | None:
    domain = lookup(conn, sandbox_id)
    return None if domain is None else observe_domain(domain)


def observe_name(conn: libvirt.virConnect, name: str) -> Observation | None:
    """Observe the domain named ``name``, which may itself look like a UUID."""
    try:
        domain = conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return None
        raise
    return observe_domain(domain)


def domain_uuids(conn: libvirt.virConnect) -> set[str]:
    return {domain.UUIDString() for domain in conn.listAllDomains(0)}


def observe_all(conn: libvirt.virConnect) -> list[Observation]:
    observations = []
    for domain in conn.listAllDomains(0):
        observation = observe_domain(domain)
        if observation is not None:
            observations.append(observation)
    return observations


def start(conn: libvirt.virConnect, sandbox_id: str, now: datetime) -> bool:
    """Start the domain unless it runs; record the start. False when the domain is absent."""
    domain = lookup(conn, sandbox_id)
    if domain is None:
        return False
    try:
        if not domain.isActive():
            domain.create()
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return False
        # "domain is already running" when another start won the race.
        if not (is_not_running(exc) and domain.isActive()):
            raise
    update_record(domain, lambda record: mark_started(record, now))
    return True


def request_shutdown(conn: libvirt.virConnect, sandbox_id: str) -> Observation | None:
    """Press the domain's ACPI power button when it runs; return what was observed first.

    A paused guest cannot handle the button, so it is left for the caller to destroy.
    """
    domain = lookup(conn, sandbox_id)
    observation = None if domain is None else observe_domain(domain)
    if domain is None or observation is None or not observation.active:
        return observation
    if observation.state == libvirt.VIR_DOMAIN_PAUSED:
        return observation
    try:
        domain.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_INVALID_ARG:
            # Drivers without the flag (the test driver) shut down their one way.
            domain.shutdown()
        elif not (is_missing(exc) or is_not_running(exc)):
            raise
    return observation


def destroy(conn: libvirt.virConnect, sandbox_id: str, now: datetime) -> Observation | None:
    """Destroy the domain if it still runs, record the stop, and return what is left."""
    domain = lookup(conn, sandbox_id)
    if domain is None:
        return None
    try:
        if domain.isActive():
            domain.destroy()
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return None
        if not is_not_running(exc):
            raise
    observation = observe_domain(domain)
    if observation is not None and not observation.active:
        reason = SHUTOFF_REASONS.get(observation.reason, "unknown")
        update_record(domain, lambda record: mark_stopped(record, now, reason))
        observation = observe_domain(domain)
    return observation


def remove(conn: libvirt.virConnect, sandbox_id: str) -> DomainFacts | None:
    """Destroy and undefine the domain; return its facts, or None when it was absent."""
    domain = lookup(conn, sandbox_id)
    observation = None if domain is None else observe_domain(domain)
    if domain is None or observation is None:
        return None
    try:
        if domain.isActive():
            domain.destroy()
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return observation.facts
        if not is_not_running(exc):
            raise
    try:
        domain.undefineFlags(UNDEFINE_FLAGS)
    except libvirt.libvirtError as exc:
        if not is_missing(exc):
            raise
    return observation.facts


def mark_started(record: VmRecord, now: datetime) -> VmRecord:
    if record.running:
        return record
    return dataclasses.replace(record, started_at=now, finished_at=None, stop_reason=None)


def mark_stopped(record: VmRecord, now: datetime, reason: str) -> VmRecord:
    if not record.running:
        return record
    return dataclasses.replace(record, finished_at=now, stop_reason=reason)


def update_record(domain: libvirt.virDomain, change: Callable[[VmRecord], VmRecord]) -> None:
    """Rewrite the domain's VmRecord with ``change``; a domain without one is left alone.

    Written to the persistent definition, and also to the live one while the domain runs, so
    it survives both a stop and a libvirtd restart.
    """
    try:
        observation = observe_domain(domain)
        if observation is None or observation.facts.record is None:
            return
        record = observation.facts.record
        changed = change(record)
        if changed == record:
            return
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if observation.active:
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        metadata = record_metadata_xml(changed)
        kind = libvirt.VIR_DOMAIN_METADATA_ELEMENT
        try:
            domain.setMetadata(kind, metadata, RECORD_PREFIX, RECORD_NAMESPACE, flags)
        except libvirt.libvirtError as exc:
            if not (is_not_running(exc) and flags & libvirt.VIR_DOMAIN_AFFECT_LIVE):
                raise
            # The domain stopped since it was observed, so only its definition is left.
            config = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            domain.setMetadata(kind, metadata, RECORD_PREFIX, RECORD_NAMESPACE, config)
    except libvirt.libvirtError as exc:
        if not is_missing(exc):
            raise


def record_change(event: LifecycleEvent) -> Callable[[libvirt.virConnect], None] | None:
    """Return the call that records a STARTED or STOPPED event in the domain's VmRecord."""
    if event.event == libvirt.VIR_DOMAIN_EVENT_STARTED:

        def change(record: VmRecord) -> VmRecord:
            return mark_started(record, event.time)

    elif event.event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        reason = STOPPED_DETAILS.get(event.detail, "unknown")

        def change(record: VmRecord) -> VmRecord:
            return mark_stopped(record, event.time, reason)

    else:
        return None

    def record(conn: libvirt.virConnect) -> None:
        domain = lookup(conn, event.uuid)
        if domain is not None:
            update_record(domain, change)

    return record


def qemu_user(conn: libvirt.virConnect, domain_type: str) -> QemuUser | None:
    """Return the user QEMU runs as under libvirt's DAC model, or None when none is reported."""
    host = ET.fromstring(conn.getCapabilities()).find("host")
    if host is None:
        return None
    for model in host.iterfind("secmodel"):
        if model.findtext("model") != "dac":
            continue
        for label in model.iterfind("baselabel"):
            if label.get("type") == domain_type and label.text:
                return QemuUser.from_label(label.text)
    return None
