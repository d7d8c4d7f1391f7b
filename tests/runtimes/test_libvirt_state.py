"""Tests of folding a domain's XML, libvirt state and reason into a SandboxState."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import libvirt
import pytest

from agentic_sandbox.runtimes.base import LABEL_UID, SandboxStatus
from agentic_sandbox.runtimes.libvirt_ops import mark_started, mark_stopped
from agentic_sandbox.runtimes.libvirt_state import parse_domain, sandbox_state
from agentic_sandbox.runtimes.libvirt_xml import (
    DomainSpec,
    VmRecord,
    build_domain_xml,
    parse_record,
    record_metadata_xml,
)

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STARTED = CREATED + timedelta(minutes=1)
FINISHED = STARTED + timedelta(minutes=5)
UUID = "0b7c8d52-1a3e-4d1f-8f3c-2b9e6a1d4c55"
BASE = "/var/lib/agentic-sandbox/images/tiny/disk.qcow2"


def domain_xml(record: VmRecord | None, *, domain_type: str = "qemu") -> str:
    spec = DomainSpec(
        name="web",
        uuid=UUID,
        vcpus=1,
        memory_bytes=256 << 20,
        disk_path="/vms/web-x/disk.qcow2",
        serial_log_path="/vms/web-x/serial.log",
        ownership={LABEL_UID: "u-1", "agentic-test.run": "r1"},
        seed_iso_path="/vms/web-x/seed.iso",
        backing_image=BASE,
        domain_type="kvm" if domain_type == "kvm" else "qemu",
        record=record,
    )
    return build_domain_xml(spec)


def record(**changes: object) -> VmRecord:
    fields: dict[str, object] = {"base_image": BASE, "created_at": CREATED}
    fields.update(changes)
    return VmRecord(**fields)  # type: ignore[arg-type]


def test_parse_domain_reads_facts() -> None:
    facts = parse_domain(domain_xml(record()))

    assert facts.uuid == UUID
    assert facts.name == "web"
    assert facts.labels == {LABEL_UID: "u-1", "agentic-test.run": "r1"}
    assert facts.disk_path == "/vms/web-x/disk.qcow2"
    assert facts.serial_log_path == "/vms/web-x/serial.log"
    assert facts.accelerator == "tcg"
    assert facts.record == record()


def test_parse_domain_kvm_accelerator() -> None:
    assert parse_domain(domain_xml(record(), domain_type="kvm")).accelerator == "kvm"


def test_record_round_trip_all_fields() -> None:
    full = record(started_at=STARTED, finished_at=FINISHED, stop_reason="shutdown")

    assert parse_record(domain_xml(full)) == full


def test_record_metadata_xml_has_no_namespace() -> None:
    text = record_metadata_xml(record(started_at=STARTED))

    assert text.startswith("<vm>")
    assert f"<started-at>{STARTED.isoformat()}</started-at>" in text


def test_record_absent_is_none() -> None:
    assert parse_record(domain_xml(None)) is None


def test_backing_store_not_relabelled() -> None:
    xml = domain_xml(record())

    assert f'<source file="{BASE}"><seclabel model="dac" relabel="no" />' in xml.replace(
        "\n", ""
    ).replace("  ", "")


@pytest.mark.parametrize(
    ("state", "reason", "recorded", "status", "exit_code"),
    [
        (libvirt.VIR_DOMAIN_RUNNING, 1, record(started_at=STARTED), SandboxStatus.RUNNING, None),
        (libvirt.VIR_DOMAIN_BLOCKED, 0, record(started_at=STARTED), SandboxStatus.RUNNING, None),
        (libvirt.VIR_DOMAIN_SHUTDOWN, 1, record(started_at=STARTED), SandboxStatus.RUNNING, None),
        (libvirt.VIR_DOMAIN_PAUSED, 1, record(started_at=STARTED), SandboxStatus.PAUSED, None),
        (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN,
            record(),
            SandboxStatus.CREATED,
            None,
        ),
        (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN,
            record(),
            SandboxStatus.EXITED,
            0,
        ),
        (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED,
            record(),
            SandboxStatus.EXITED,
            137,
        ),
        (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_CRASHED,
            record(),
            SandboxStatus.EXITED,
            1,
        ),
        (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_FAILED,
            record(),
            SandboxStatus.DEAD,
            1,
        ),
        (libvirt.VIR_DOMAIN_CRASHED, 1, record(started_at=STARTED), SandboxStatus.DEAD, 1),
    ],
)
def test_status_mapping(
    state: int, reason: int, recorded: VmRecord, status: SandboxStatus, exit_code: int | None
) -> None:
    result = sandbox_state(parse_domain(domain_xml(recorded)), state, reason)

    assert result.status == status
    assert result.exit_code == exit_code


def test_crash_has_error_text() -> None:
    facts = parse_domain(domain_xml(record()))

    crashed = sandbox_state(facts, libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
    failed = sandbox_state(facts, libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_FAILED)

    assert "crashed" in crashed.error
    assert "failed to start" in failed.error


def test_unknown_reason_falls_back_to_record() -> None:
    stopped = record(started_at=STARTED, finished_at=FINISHED, stop_reason="destroyed")
    facts = parse_domain(domain_xml(stopped))

    result = sandbox_state(facts, libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN)

    assert result.status == SandboxStatus.EXITED
    assert result.exit_code == 137
    assert result.started_at == STARTED
    assert result.finished_at == FINISHED


def test_unknown_reason_after_unrecorded_stop() -> None:
    facts = parse_domain(domain_xml(record(started_at=STARTED)))

    result = sandbox_state(facts, libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN)

    assert result.status == SandboxStatus.EXITED
    assert result.exit_code is None
    assert result.finished_at is None
    assert "no driver was watching" in result.error


def test_running_reports_recorded_start() -> None:
    facts = parse_domain(domain_xml(record(started_at=STARTED)))

    result = sandbox_state(facts, libvirt.VIR_DOMAIN_RUNNING, 1)

    assert result.started_at == STARTED
    assert result.finished_at is None
    assert result.created_at == CREATED


def test_running_after_unrecorded_start_has_no_start_time() -> None:
    stopped = record(started_at=STARTED, finished_at=FINISHED, stop_reason="shutdown")
    facts = parse_domain(domain_xml(stopped))

    result = sandbox_state(facts, libvirt.VIR_DOMAIN_RUNNING, 1)

    assert result.started_at is None


def test_state_details_and_image() -> None:
    facts = parse_domain(domain_xml(record()))

    result = sandbox_state(facts, libvirt.VIR_DOMAIN_SHUTOFF, 0)

    assert result.id == UUID
    assert result.image == BASE
    assert result.details == {
        "domain": "web",
        "accelerator": "tcg",
        "serialLog": "/vms/web-x/serial.log",
        "disk": "/vms/web-x/disk.qcow2",
        "vcpus": "1",
        "memoryMiB": "256",
    }


def test_mark_started_then_stopped() -> None:
    started = mark_started(record(), STARTED)
    stopped = mark_stopped(started, FINISHED, "shutdown")

    assert started.running
    assert not stopped.running
    assert stopped.started_at == STARTED
    assert stopped.finished_at == FINISHED
    assert stopped.stop_reason == "shutdown"


def test_mark_started_keeps_running_record() -> None:
    started = mark_started(record(), STARTED)

    assert mark_started(started, FINISHED) == started


def test_mark_stopped_ignores_stopped_record() -> None:
    stopped = mark_stopped(mark_started(record(), STARTED), FINISHED, "shutdown")

    assert mark_stopped(stopped, FINISHED + timedelta(hours=1), "destroyed") == stopped
