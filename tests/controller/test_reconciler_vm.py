"""Reconciling libvirt instances through a RuntimeRouter, with fake drivers on both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentic_sandbox.controller.desired import HostPolicy
from agentic_sandbox.controller.reconciler import InstanceReconciler
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.loadout import Loadout
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout, resolve
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER
from agentic_sandbox.errors import InvalidRuntimeSpec
from agentic_sandbox.runtimes.fake import FakeClock, FakeRuntime
from agentic_sandbox.runtimes.router import RuntimeRouter
from agentic_sandbox.store.sqlite import SqliteStore

LOADOUTS = {
    "small": {"baseImage": "/images/small.qcow2", "resources": {"cpus": 2, "memory": "512Mi"}},
    "small-disk": {"extends": ["small"], "resources": {"disk": "2Gi"}},
}


async def _resolve(name: str, namespace: str) -> ResolvedLoadout:
    def lookup(wanted: str) -> Loadout:
        if wanted not in LOADOUTS:
            raise InvalidRuntimeSpec(f"loadout {wanted!r} not found", field="spec.loadout")
        return Loadout.model_validate({"metadata": {"name": wanted}, "spec": LOADOUTS[wanted]})

    return resolve(name, lookup)


class Harness:
    def __init__(self, store: SqliteStore, tmp_path: Path, *, libvirt: bool = True) -> None:
        self.clock = FakeClock()
        self.docker = FakeRuntime(clock=self.clock.now)
        self.libvirt = FakeRuntime(clock=self.clock.now, uuid_ids=True, networks=["user"])
        drivers = {"docker": self.docker}
        if libvirt:
            drivers["libvirt"] = self.libvirt
        self.store = store
        policy = HostPolicy(
            controller_id="ctl-test",
            mount_roots=[tmp_path],
            workspace_root=tmp_path / "workspaces",
            management_server="host.docker.internal:8120",
        )
        self.reconciler = InstanceReconciler(
            store=store,
            runtime=RuntimeRouter(drivers),
            recorder=EventRecorder(store.events),
            policy=policy,
            node="node-1",
            clock=self.clock.now,
            loadouts=_resolve,
        )

    async def create(self, **spec: Any) -> Instance:
        body = {"metadata": {"name": "vm"}, "spec": {"runtime": "libvirt", **spec}}
        created = await self.store.create(Instance.model_validate(body))
        assert isinstance(created, Instance)
        return created

    async def get(self) -> Instance:
        found = await self.store.get("Instance", "default", "vm")
        assert isinstance(found, Instance)
        return found

    async def event_names(self) -> list[str]:
        return [event.name for event in await self.store.events.list(limit=1000)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore(tmp_path / "state.db").open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_loadout_sets_vm_resources(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(loadout="small-disk")
    await harness.reconciler.reconcile("default/vm")

    (sandbox,) = harness.libvirt.sandboxes.values()
    assert harness.docker.sandboxes == {}
    spec = sandbox.spec
    assert spec.runtime == "libvirt"
    assert spec.vm is not None
    assert spec.vm.base_image == "/images/small.qcow2"
    assert spec.vm.loadout.chain == ("small", "small-disk")
    assert spec.vm.disk_bytes == 2 << 30
    assert (spec.cpus, spec.memory_bytes) == (2, 512 << 20)
    instance = await harness.get()
    assert instance.status.phase == "Running"
    assert instance.status.runtime_ref is not None
    assert instance.status.runtime_ref.runtime == "libvirt"


async def test_instance_resources_win_over_loadout(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(loadout="small", resources={"cpus": 3, "memory": "768Mi"})
    await harness.reconciler.reconcile("default/vm")
    (sandbox,) = harness.libvirt.sandboxes.values()
    assert (sandbox.spec.cpus, sandbox.spec.memory_bytes) == (3, 768 << 20)


async def test_vm_operations_recorded_as_vm_events(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(loadout="small")
    await harness.reconciler.reconcile("default/vm")
    names = await harness.event_names()
    assert "vm.defined" in names
    assert "vm.started" in names
    assert not any(name.startswith("container.") for name in names)


async def test_missing_base_image_stalls_naming_field(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create()
    await harness.reconciler.reconcile("default/vm")
    instance = await harness.get()
    stalled = instance.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True"
    assert "spec.image" in (instance.status.message or "")
    assert harness.libvirt.sandboxes == {}


async def test_unknown_loadout_stalls(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(loadout="absent")
    await harness.reconciler.reconcile("default/vm")
    instance = await harness.get()
    assert "'absent'" in (instance.status.message or "")
    assert harness.libvirt.sandboxes == {}


async def test_mounts_rejected_for_vms(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(loadout="small", mounts=[f"{tmp_path}:/data"])
    await harness.reconciler.reconcile("default/vm")
    instance = await harness.get()
    assert "spec.mounts" in (instance.status.message or "")


async def test_disabled_libvirt_stalls_without_finalizer(
    store: SqliteStore, tmp_path: Path
) -> None:
    harness = Harness(store, tmp_path, libvirt=False)
    await harness.create(loadout="small")
    await harness.reconciler.reconcile("default/vm")
    instance = await harness.get()
    assert RUNTIME_FINALIZER not in instance.metadata.finalizers
    assert "libvirt" in (instance.status.message or "")
    stalled = instance.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True"


async def test_runtime_change_removes_old_sandbox(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(loadout="small")
    await harness.reconciler.reconcile("default/vm")
    instance = await harness.get()
    data = instance.spec.model_dump(by_alias=True)
    data.update(runtime="docker", image="agentic/demo:dev", loadout=None)
    instance.spec = type(instance.spec).model_validate(data)
    await store.update(instance)

    await harness.reconciler.reconcile("default/vm")

    assert harness.libvirt.sandboxes == {}
    (container,) = harness.docker.sandboxes.values()
    assert container.spec.runtime == "docker"


async def test_other_runtime_outage_keeps_instance_running(
    store: SqliteStore, tmp_path: Path
) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(runtime="docker", image="agentic/demo:dev")
    harness.libvirt.set_available(False)

    await harness.reconciler.reconcile("default/vm")

    instance = await harness.get()
    assert instance.status.phase == "Running"


async def test_memory_above_host_stalls_naming_field(store: SqliteStore, tmp_path: Path) -> None:
    harness = Harness(store, tmp_path)
    await harness.create(loadout="small", resources={"memory": "9999Ti"})
    await harness.reconciler.reconcile("default/vm")

    instance = await harness.get()
    stalled = instance.status.condition("Stalled")
    assert stalled is not None
    assert stalled.status == "True"
    assert "spec.resources.memory" in (instance.status.message or "")
    assert "this machine has" in (instance.status.message or "")
    assert harness.libvirt.sandboxes == {}
