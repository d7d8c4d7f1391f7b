"""The libvirt driver against the real libvirtd (qemu:///system), booting the tiny test guest.

The tiny guest (images/vm/build-guest.sh) boots a Debian kernel with a busybox initramfs,
counts its boots on its disk, prints "agentic-sandbox-guest: ready" on the serial console
and powers off on the ACPI power button. Every domain these tests define has the test's own
name prefix (the ``domain_prefix`` fixture), and the fixture removes them afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import libvirt  # type: ignore[import-untyped]
import pytest

from agentic_sandbox.crds.loadout import LoadoutSpec
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout, load_loadout_dir, resolve
from agentic_sandbox.errors import NameConflict, RuntimeUnavailable
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_UID,
    STREAM_CONNECTED,
    RuntimeEvent,
    SandboxSpec,
    SandboxState,
    SandboxStatus,
    VmSpec,
)
from agentic_sandbox.runtimes.libvirt import LibvirtRuntime
from agentic_sandbox.runtimes.libvirt_disk import MARKER_NAME
from tests.conftest import REPO_ROOT
from tests.runtimes.support import SocketProxy, ownership_labels
from tests.vm_support import require_tiny_guest

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

READY = b"agentic-sandbox-guest: ready"
LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
# Generous for TCG on a busy two-core machine; the guest is usually ready in seconds.
BOOT_TIMEOUT_SECONDS = 240
STOP_TIMEOUT_SECONDS = 120


@pytest.fixture
async def runtime(libvirt_vm_dir: Path) -> AsyncIterator[LibvirtRuntime]:
    require_tiny_guest()
    driver = LibvirtRuntime(vm_dir=libvirt_vm_dir, call_timeout=60)
    yield driver
    await driver.close()


def tiny_spec(name: str, labels: dict[str, str]) -> SandboxSpec:
    loadouts = load_loadout_dir(REPO_ROOT / "images" / "vm" / "loadouts")
    loadout = resolve("tiny", loadouts.__getitem__)
    assert loadout.spec.base_image is not None
    return SandboxSpec(
        name=name,
        image=loadout.spec.base_image,
        labels=labels,
        cpus=loadout.cpus,
        memory_bytes=loadout.memory_bytes,
        runtime="libvirt",
        vm=VmSpec(base_image=loadout.spec.base_image, loadout=loadout),
    )


def empty_disk_spec(name: str, labels: dict[str, str], directory: Path) -> SandboxSpec:
    """A domain that boots nothing: SeaBIOS finds no bootable disk and ignores ACPI."""
    base = directory / f"{name}-base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    base.chmod(0o644)
    empty = ResolvedLoadout(name="", chain=(), spec=LoadoutSpec())
    return SandboxSpec(
        name=name,
        image=str(base),
        labels=labels,
        memory_bytes=64 << 20,
        runtime="libvirt",
        vm=VmSpec(base_image=str(base), loadout=empty),
    )


async def wait_for_output(
    runtime: LibvirtRuntime, sandbox_id: str, text: bytes, *, after: bytes = b""
) -> bytes:
    """Follow the serial log until ``text`` appears after ``after``; return all read from there.

    The log keeps the output of earlier boots, so ``after`` picks the boot to wait for.
    """
    output = b""
    stream = runtime.logs(sandbox_id, tail=None, follow=True)
    try:
        async with asyncio.timeout(BOOT_TIMEOUT_SECONDS):
            async for chunk in stream:
                output += chunk
                start = output.find(after)
                if start >= 0 and text in output[start:]:
                    return output[start:]
    finally:
        await stream.aclose()
    raise AssertionError(f"the serial log ended without {text!r}; it has:\n{output.decode()}")


def is_file(path: Path) -> bool:
    return path.is_file()


def exists(path: Path) -> bool:
    return path.exists()


def names_matching(directory: Path, pattern: str) -> list[str]:
    return sorted(path.name for path in directory.glob(pattern))


def fingerprint(path: str) -> tuple[str, int, int, int, float]:
    info = os.stat(path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digest, info.st_uid, info.st_gid, info.st_mode, info.st_mtime


async def next_action(events: AsyncIterator[RuntimeEvent], action: str, sandbox_id: str) -> None:
    async with asyncio.timeout(BOOT_TIMEOUT_SECONDS):
        while True:
            event = await anext(events)
            if event.action == action and event.sandbox_id == sandbox_id:
                return


async def test_vm_lifecycle_keeps_disk_and_cleans_up(
    runtime: LibvirtRuntime, domain_prefix: str
) -> None:
    labels = ownership_labels(domain_prefix, "tiny")
    spec = tiny_spec(f"{domain_prefix}-tiny", labels)
    assert spec.vm is not None
    base_before = fingerprint(spec.vm.base_image)
    events = runtime.events({LABEL_CONTROLLER: domain_prefix})
    assert (await anext(events)).action == STREAM_CONNECTED

    created = await runtime.create(spec)
    await runtime.start(created.id)
    first_boot = await wait_for_output(runtime, created.id, READY)
    await next_action(events, "vm.started", created.id)
    running = await runtime.inspect(created.id)

    await runtime.stop(created.id, STOP_TIMEOUT_SECONDS)
    await next_action(events, "vm.stopped", created.id)
    stopped = await runtime.inspect(created.id)
    overlay = Path(created.details["disk"])

    assert created.status == SandboxStatus.CREATED
    assert created.details["accelerator"] in ("kvm", "tcg")
    assert b"agentic-sandbox-guest: booted boot=1" in first_boot
    assert f"seed instance-id={created.id}".encode() in first_boot
    assert running is not None
    assert running.status == SandboxStatus.RUNNING
    assert running.started_at is not None
    assert stopped is not None
    assert stopped.status == SandboxStatus.EXITED
    assert stopped.exit_code == 0
    assert stopped.finished_at is not None
    assert is_file(overlay)

    await runtime.start(created.id)
    second_boot = await wait_for_output(
        runtime, created.id, READY, after=b"agentic-sandbox-guest: booted boot=2"
    )
    await runtime.remove(created.id)

    assert second_boot.startswith(b"agentic-sandbox-guest: booted boot=2")
    assert await runtime.inspect(created.id) is None
    assert not exists(overlay)
    assert not exists(overlay.parent)
    assert fingerprint(spec.vm.base_image) == base_before
    await events.aclose()


async def test_stop_destroys_guest_ignoring_acpi(
    runtime: LibvirtRuntime, domain_prefix: str, libvirt_vm_dir: Path
) -> None:
    spec = empty_disk_spec(
        f"{domain_prefix}-mute", ownership_labels(domain_prefix, "mute"), libvirt_vm_dir
    )
    created = await runtime.create(spec)
    await runtime.start(created.id)

    await runtime.stop(created.id, 1)
    stopped = await runtime.inspect(created.id)
    await runtime.stop(created.id, 1)

    assert stopped is not None
    assert stopped.status == SandboxStatus.EXITED
    assert stopped.exit_code == 137
    assert is_file(Path(created.details["disk"]))


async def test_create_adopts_and_conflicts(runtime: LibvirtRuntime, domain_prefix: str) -> None:
    labels = ownership_labels(domain_prefix, "adopt")
    name = f"{domain_prefix}-adopt"
    first = await runtime.create(tiny_spec(name, labels))

    again = await runtime.create(tiny_spec(name, labels))
    other = ownership_labels(domain_prefix, "adopt", uid=str(uuid.uuid4()))

    assert again.id == first.id
    with pytest.raises(NameConflict, match=labels[LABEL_UID]):
        await runtime.create(tiny_spec(name, other))
    assert [state.id for state in await runtime.list_owned({LABEL_UID: labels[LABEL_UID]})] == [
        first.id
    ]


async def test_create_after_crash_leaves_one_domain(
    runtime: LibvirtRuntime, domain_prefix: str, libvirt_vm_dir: Path
) -> None:
    # A create killed after writing its files but before its define leaves this behind.
    name = f"{domain_prefix}-crash"
    leftover_uuid = str(uuid.uuid4())
    leftover = libvirt_vm_dir / f"{name}-{leftover_uuid}"
    leftover.mkdir()
    (leftover / MARKER_NAME).write_text(leftover_uuid + "\n")
    (leftover / "disk.qcow2").write_bytes(b"partial overlay")

    created = await runtime.create(tiny_spec(name, ownership_labels(domain_prefix, "crash")))

    directories = names_matching(libvirt_vm_dir, f"{name}-*")
    assert directories == [f"{name}-{created.id}"]
    assert len(await runtime.list_owned({LABEL_CONTROLLER: domain_prefix})) == 1


async def test_list_owned_filters_by_controller(
    runtime: LibvirtRuntime, domain_prefix: str
) -> None:
    mine = await runtime.create(
        tiny_spec(f"{domain_prefix}-mine", ownership_labels(domain_prefix, "mine"))
    )
    await runtime.create(
        tiny_spec(f"{domain_prefix}-other", ownership_labels(f"{domain_prefix}x", "other"))
    )

    listed = await runtime.list_owned({LABEL_CONTROLLER: domain_prefix})

    assert [state.id for state in listed] == [mine.id]


async def test_accelerator_matches_domains(runtime: LibvirtRuntime, domain_prefix: str) -> None:
    accelerator = await runtime.detect_accelerator()

    created = await runtime.create(
        tiny_spec(f"{domain_prefix}-accel", ownership_labels(domain_prefix, "accel"))
    )

    assert accelerator in ("kvm", "tcg")
    assert created.details["accelerator"] == accelerator


async def test_image_present_checks_qemu_can_read(
    runtime: LibvirtRuntime, libvirt_vm_dir: Path, domain_prefix: str
) -> None:
    private = libvirt_vm_dir / f"{domain_prefix}-private.qcow2"
    private.write_bytes(b"")
    private.chmod(0o600)
    tiny = tiny_spec("x", {}).image

    present = await runtime.image_present([tiny, str(private)])

    assert present == {tiny: True, str(private): False}


async def test_lost_connection_ends_events_and_reconnects(libvirt_vm_dir: Path) -> None:
    require_tiny_guest()
    # Cutting the connections of a proxy in front of libvirtd's socket looks to the client
    # like a libvirtd restart, without touching the shared daemon.
    with tempfile.TemporaryDirectory(prefix="as-libvirt-") as directory:
        proxy = SocketProxy(Path(directory) / "libvirt.sock", upstream=LIBVIRT_SOCKET)
        await proxy.start()
        runtime = LibvirtRuntime(
            uri=f"qemu+unix:///system?socket={proxy.path}", vm_dir=libvirt_vm_dir, call_timeout=30
        )
        try:
            events = runtime.events({})
            assert (await anext(events)).action == STREAM_CONNECTED

            proxy.cut_connections()

            with pytest.raises(RuntimeUnavailable, match="closed|lost"):
                await asyncio.wait_for(anext(events), 60)
            await runtime.ping()
            reopened = runtime.events({})
            assert (await anext(reopened)).action == STREAM_CONNECTED
            await reopened.aclose()
        finally:
            await runtime.close()
            await proxy.stop()


async def test_stop_outside_driver_is_recorded(runtime: LibvirtRuntime, domain_prefix: str) -> None:
    labels = ownership_labels(domain_prefix, "outside")
    created = await runtime.create(tiny_spec(f"{domain_prefix}-outside", labels))
    events = runtime.events({LABEL_CONTROLLER: domain_prefix})
    await anext(events)
    await runtime.start(created.id)
    await wait_for_output(runtime, created.id, READY)

    # Another libvirt client presses the power button, as virsh shutdown does.
    await asyncio.to_thread(press_power_button, created.id)
    await next_action(events, "vm.stopped", created.id)
    stopped = await wait_for_state(runtime, created.id, lambda s: s.finished_at is not None)

    assert stopped.status == SandboxStatus.EXITED
    assert stopped.exit_code == 0
    assert stopped.started_at is not None
    assert stopped.finished_at is not None
    assert stopped.finished_at > stopped.started_at
    await events.aclose()


def press_power_button(domain_uuid: str) -> None:
    connection = libvirt.open("qemu:///system")
    try:
        connection.lookupByUUIDString(domain_uuid).shutdownFlags(
            libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
        )
    finally:
        connection.close()


async def wait_for_state(
    runtime: LibvirtRuntime, sandbox_id: str, condition: Callable[[SandboxState], bool]
) -> SandboxState:
    """Inspect until ``condition`` holds, at most every 0.1 s, for up to 30 seconds."""
    async with asyncio.timeout(30):
        while True:
            state = await runtime.inspect(sandbox_id)
            assert state is not None
            if condition(state):
                return state
            await asyncio.sleep(0.1)
