"""Fast tests of the libvirt driver on libvirt's in-process test driver.

Each runtime opens the test driver on a node file of its own (``test:///PATH``), which gives
the connection private domains that live only as long as it does, so these tests leave
nothing behind. (``test:///default`` is shared by every connection of the process.) The test
driver runs no QEMU, so booting real guests is tested in test_libvirt_vm.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentic_sandbox.crds.loadout import LoadoutSpec
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout
from agentic_sandbox.errors import (
    ImageNotFound,
    InvalidRuntimeSpec,
    NameConflict,
    RuntimeObjectNotFound,
    RuntimeUnavailable,
)
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_UID,
    STREAM_CONNECTED,
    RuntimeEvent,
    SandboxSpec,
    SandboxStatus,
    VmSpec,
)
from agentic_sandbox.runtimes.libvirt import LibvirtRuntime
from agentic_sandbox.runtimes.libvirt_disk import MARKER_NAME, OVERLAY_NAME, SEED_NAME
from tests.runtimes.support import ownership_labels


@pytest.fixture
def base_image(tmp_path: Path) -> str:
    path = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    return str(path)


# One foreign domain, named "test", without ownership metadata.
TEST_NODE = """<node>
  <domain type="test">
    <name>test</name>
    <memory>8192</memory>
    <os><type>hvm</type></os>
  </domain>
</node>
"""


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LibvirtRuntime]:
    node = tmp_path / "node.xml"
    node.write_text(TEST_NODE)
    driver = LibvirtRuntime(uri=f"test://{node}", vm_dir=tmp_path / "vms", call_timeout=10)
    yield driver
    await driver.close()


def qemu_img_info(path: str) -> str:
    command = ["qemu-img", "info", "--output=json", path]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def vm_spec(name: str, base_image: str, labels: dict[str, str]) -> SandboxSpec:
    loadout = ResolvedLoadout(name="", chain=(), spec=LoadoutSpec())
    return SandboxSpec(
        name=name,
        image=base_image,
        labels=labels,
        env={"GREETING": "hello"},
        memory_bytes=64 << 20,
        runtime="libvirt",
        vm=VmSpec(base_image=base_image, loadout=loadout),
    )


async def next_event(events: AsyncIterator[RuntimeEvent], action: str) -> RuntimeEvent:
    async with asyncio.timeout(10):
        while True:
            event = await anext(events)
            if event.action == action:
                return event


async def test_create_defines_stopped_domain(
    runtime: LibvirtRuntime, base_image: str, tmp_path: Path
) -> None:
    labels = ownership_labels("ctrl-a", "web")

    state = await runtime.create(vm_spec("web", base_image, labels))

    directory = tmp_path / "vms" / f"web-{state.id}"
    assert state.status == SandboxStatus.CREATED
    assert state.name == "web"
    assert state.labels == labels
    assert state.image == base_image
    assert state.created_at is not None
    assert state.details["accelerator"] == "tcg"
    assert state.details["disk"] == str(directory / OVERLAY_NAME)
    assert (directory / OVERLAY_NAME).is_file()
    assert (directory / SEED_NAME).is_file()
    assert (directory / MARKER_NAME).read_text().strip() == state.id


async def test_overlay_backs_onto_base(runtime: LibvirtRuntime, base_image: str) -> None:
    state = await runtime.create(vm_spec("web", base_image, ownership_labels("c", "web")))

    info = qemu_img_info(state.details["disk"])

    assert f'"backing-filename": "{base_image}"' in info


async def test_create_adopts_same_uid(runtime: LibvirtRuntime, base_image: str) -> None:
    labels = ownership_labels("ctrl-a", "web")
    first = await runtime.create(vm_spec("web", base_image, labels))

    second = await runtime.create(vm_spec("web", base_image, labels))

    assert second.id == first.id


async def test_create_conflicts_with_other_uid(runtime: LibvirtRuntime, base_image: str) -> None:
    await runtime.create(vm_spec("web", base_image, ownership_labels("ctrl-a", "web")))

    with pytest.raises(NameConflict, match="does not own"):
        await runtime.create(vm_spec("web", base_image, ownership_labels("ctrl-a", "web")))


async def test_create_conflicts_with_foreign_domain(
    runtime: LibvirtRuntime, base_image: str
) -> None:
    with pytest.raises(NameConflict, match="'test'"):
        await runtime.create(vm_spec("test", base_image, ownership_labels("ctrl-a", "test")))


async def test_create_missing_base_image(runtime: LibvirtRuntime, tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.qcow2")

    with pytest.raises(ImageNotFound, match="absent.qcow2"):
        await runtime.create(vm_spec("web", missing, ownership_labels("c", "web")))


async def test_create_without_vm_part(runtime: LibvirtRuntime) -> None:
    spec = SandboxSpec(name="web", image="/x.qcow2", labels={}, runtime="docker")

    with pytest.raises(InvalidRuntimeSpec, match="no VM part"):
        await runtime.create(spec)


async def test_create_rejects_small_disk(runtime: LibvirtRuntime, base_image: str) -> None:
    spec = vm_spec("web", base_image, ownership_labels("c", "web"))
    assert spec.vm is not None
    small = SandboxSpec(
        **{**spec.__dict__, "vm": VmSpec(spec.vm.base_image, spec.vm.loadout, 1 << 20)}
    )

    with pytest.raises(InvalidRuntimeSpec, match="smaller than"):
        await runtime.create(small)
    assert await runtime.list_owned({LABEL_UID: spec.labels[LABEL_UID]}) == []


async def test_create_removes_leftover_directory(
    runtime: LibvirtRuntime, base_image: str, tmp_path: Path
) -> None:
    # What a create that crashed before its define leaves behind.
    leftover_uuid = str(uuid.uuid4())
    leftover = tmp_path / "vms" / f"web-{leftover_uuid}"
    leftover.mkdir(parents=True)
    (leftover / MARKER_NAME).write_text(leftover_uuid + "\n")
    (leftover / OVERLAY_NAME).write_bytes(b"partial")
    unmarked = tmp_path / "vms" / f"web-{uuid.uuid4()}"
    unmarked.mkdir()

    await runtime.create(vm_spec("web", base_image, ownership_labels("c", "web")))

    assert not leftover.exists()
    assert unmarked.exists()


async def test_start_stop_inspect(runtime: LibvirtRuntime, base_image: str) -> None:
    created = await runtime.create(vm_spec("web", base_image, ownership_labels("c", "web")))

    await runtime.start(created.id)
    running = await runtime.inspect(created.id)
    await runtime.stop(created.id, timeout=5)
    stopped = await runtime.inspect(created.id)

    assert running is not None
    assert running.status == SandboxStatus.RUNNING
    assert running.started_at is not None
    assert stopped is not None
    assert stopped.status == SandboxStatus.EXITED
    assert stopped.exit_code == 0
    assert stopped.started_at == running.started_at
    assert stopped.finished_at is not None
    assert stopped.finished_at >= stopped.started_at


async def test_inspect_by_name(runtime: LibvirtRuntime, base_image: str) -> None:
    created = await runtime.create(vm_spec("web", base_image, ownership_labels("c", "web")))

    by_name = await runtime.inspect("web")

    assert by_name is not None
    assert by_name.id == created.id


async def test_start_twice_is_fine(runtime: LibvirtRuntime, base_image: str) -> None:
    created = await runtime.create(vm_spec("web", base_image, ownership_labels("c", "web")))

    await runtime.start(created.id)
    await runtime.start(created.id)

    state = await runtime.inspect(created.id)
    assert state is not None
    assert state.status == SandboxStatus.RUNNING


async def test_missing_domain_cases(runtime: LibvirtRuntime) -> None:
    absent = str(uuid.uuid4())

    assert await runtime.inspect(absent) is None
    await runtime.stop(absent, timeout=1)
    await runtime.remove(absent)
    with pytest.raises(RuntimeObjectNotFound):
        await runtime.start(absent)
    with pytest.raises(RuntimeObjectNotFound):
        await anext(runtime.logs(absent, tail=None, follow=False))


async def test_list_owned_filters_by_labels(runtime: LibvirtRuntime, base_image: str) -> None:
    mine = ownership_labels("ctrl-a", "web")
    theirs = ownership_labels("ctrl-b", "api")
    await runtime.create(vm_spec("web", base_image, mine))
    await runtime.create(vm_spec("api", base_image, theirs))

    listed = await runtime.list_owned({LABEL_CONTROLLER: "ctrl-a"})
    everything = await runtime.list_owned({})

    assert [state.name for state in listed] == ["web"]
    assert {"web", "api", "test"} <= {state.name for state in everything}


async def test_events_filtered_by_labels(runtime: LibvirtRuntime, base_image: str) -> None:
    mine = ownership_labels("ctrl-a", "web")
    events = runtime.events({LABEL_CONTROLLER: "ctrl-a"})
    connected = await anext(events)

    other = await runtime.create(vm_spec("api", base_image, ownership_labels("ctrl-b", "api")))
    await runtime.start(other.id)
    created = await runtime.create(vm_spec("web", base_image, mine))
    await runtime.start(created.id)
    await runtime.stop(created.id, timeout=5)

    defined = await next_event(events, "vm.defined")
    started = await next_event(events, "vm.started")
    stopped = await next_event(events, "vm.stopped")
    assert connected.action == STREAM_CONNECTED
    for event in (defined, started, stopped):
        assert event.sandbox_id == created.id
        assert event.labels == mine
    await events.aclose()


async def test_events_raise_when_connection_lost(runtime: LibvirtRuntime, base_image: str) -> None:
    events = runtime.events({})
    await anext(events)

    runtime._conn._discard(runtime._conn._get_conn(), "simulated libvirtd restart")

    with pytest.raises(RuntimeUnavailable, match="simulated libvirtd restart"):
        await asyncio.wait_for(anext(events), 10)
    await runtime.ping()  # the next call opens a new connection


async def test_events_raise_when_runtime_closed(runtime: LibvirtRuntime) -> None:
    events = runtime.events({})
    await anext(events)

    await runtime.close()

    with pytest.raises(RuntimeUnavailable, match="closed"):
        await asyncio.wait_for(anext(events), 10)


async def test_image_present(runtime: LibvirtRuntime, base_image: str, tmp_path: Path) -> None:
    present = await runtime.image_present([base_image, str(tmp_path / "absent"), "debian:12"])

    assert present == {base_image: True, str(tmp_path / "absent"): False, "debian:12": False}


async def test_accelerator_without_kvm_is_tcg(runtime: LibvirtRuntime) -> None:
    assert runtime.accelerator is None

    assert await runtime.detect_accelerator() == "tcg"
    assert runtime.accelerator == "tcg"


async def test_logs_follow_ends_at_stop(runtime: LibvirtRuntime, base_image: str) -> None:
    created = await runtime.create(vm_spec("web", base_image, ownership_labels("c", "web")))
    await runtime.start(created.id)
    # The test driver runs no QEMU, so the test writes the console output itself.
    write_bytes(Path(created.details["serialLog"]), b"boot\nready\n")
    stream = runtime.logs(created.id, tail=1, follow=True)

    opened = await anext(stream)
    tail = await anext(stream)
    await runtime.stop(created.id, timeout=5)
    rest = [chunk async for chunk in stream]

    assert opened == b""
    assert tail == b"ready\n"
    assert rest == []


async def test_logs_without_follow(runtime: LibvirtRuntime, base_image: str) -> None:
    created = await runtime.create(vm_spec("web", base_image, ownership_labels("c", "web")))
    write_bytes(Path(created.details["serialLog"]), b"one\ntwo\n")

    chunks = [chunk async for chunk in runtime.logs(created.id, tail=None, follow=False)]

    assert chunks == [b"", b"one\ntwo\n"]


def write_bytes(path: Path, content: bytes) -> None:
    path.write_bytes(content)


async def test_remove_cleans_undefined_domain_directory(
    runtime: LibvirtRuntime, tmp_path: Path
) -> None:
    # What a remove that crashed between its undefine and its directory removal leaves behind.
    domain_uuid = str(uuid.uuid4())
    leftover = tmp_path / "vms" / f"web-{domain_uuid}"
    leftover.mkdir(parents=True)
    (leftover / MARKER_NAME).write_text(domain_uuid + "\n")

    await runtime.remove(domain_uuid)

    assert not leftover.exists()


async def test_name_that_looks_like_uuid(runtime: LibvirtRuntime, base_image: str) -> None:
    name = str(uuid.uuid4())
    labels = ownership_labels("c", name)

    created = await runtime.create(vm_spec(name, base_image, labels))
    adopted = await runtime.create(vm_spec(name, base_image, labels))

    assert created.name == name
    assert created.id != name
    assert adopted.id == created.id
