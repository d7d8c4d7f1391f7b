"""RuntimeRouter: creates go to the named driver, calls on a sandbox to the driver of its id."""

from __future__ import annotations

import pytest

from agentic_sandbox.crds.loadout import LoadoutSpec
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout
from agentic_sandbox.errors import InvalidRuntimeSpec, RuntimeUnavailable
from agentic_sandbox.runtimes.base import LABEL_UID, SandboxSpec, VmSpec
from agentic_sandbox.runtimes.fake import FakeRuntime
from agentic_sandbox.runtimes.router import (
    RuntimeRouter,
    driver_for,
    drivers_of,
    runtime_of_id,
)


def _spec(name: str, runtime: str) -> SandboxSpec:
    vm = None
    if runtime == "libvirt":
        loadout = ResolvedLoadout(name="", chain=(), spec=LoadoutSpec())
        vm = VmSpec(base_image="/images/base.qcow2", loadout=loadout)
    return SandboxSpec(
        name=name,
        image="/images/base.qcow2" if vm else "agentic/demo:dev",
        labels={LABEL_UID: name},
        network="user" if vm else "bridge",
        runtime=runtime,
        vm=vm,
    )


def _router() -> tuple[RuntimeRouter, FakeRuntime, FakeRuntime]:
    docker = FakeRuntime()
    libvirt = FakeRuntime(uuid_ids=True, networks=["user"])
    return RuntimeRouter({"docker": docker, "libvirt": libvirt}), docker, libvirt


def test_id_format_names_runtime() -> None:
    assert runtime_of_id("3f2504e0-4f89-11d3-9a0c-0305e82c3301") == "libvirt"
    assert runtime_of_id("a" * 64) == "docker"
    assert runtime_of_id("fake-0001") == "docker"


async def test_create_goes_to_named_driver() -> None:
    router, docker, libvirt = _router()
    vm = await router.create(_spec("vm", "libvirt"))
    container = await router.create(_spec("ct", "docker"))
    assert list(libvirt.sandboxes) == [vm.id]
    assert list(docker.sandboxes) == [container.id]


async def test_calls_follow_id_format() -> None:
    router, docker, libvirt = _router()
    vm = await router.create(_spec("vm", "libvirt"))
    container = await router.create(_spec("ct", "docker"))
    await router.start(vm.id)
    await router.start(container.id)
    assert (await router.inspect(vm.id)) is not None
    await router.stop(vm.id, 5)
    await router.remove(container.id)
    assert docker.sandboxes == {}
    assert list(libvirt.sandboxes) == [vm.id]


async def test_listing_merges_every_driver() -> None:
    router, _, _ = _router()
    await router.create(_spec("vm", "libvirt"))
    await router.create(_spec("ct", "docker"))
    names = sorted(state.name for state in await router.list_owned({}))
    assert names == ["ct", "vm"]


async def test_listing_fails_when_one_driver_is_down() -> None:
    router, _, libvirt = _router()
    await router.create(_spec("ct", "docker"))
    libvirt.set_available(False)
    with pytest.raises(RuntimeUnavailable):
        await router.list_owned({})


async def test_disabled_runtime_names_the_fix() -> None:
    router = RuntimeRouter({"docker": FakeRuntime()})
    with pytest.raises(InvalidRuntimeSpec, match="AGENTIC_SANDBOX_LIBVIRT_URI") as caught:
        await router.create(_spec("vm", "libvirt"))
    assert caught.value.field == "spec.runtime"


def test_plain_driver_serves_every_runtime() -> None:
    fake = FakeRuntime()
    assert driver_for(fake, "libvirt") is fake
    assert drivers_of(fake) == [fake]


def test_router_lists_its_drivers() -> None:
    router, docker, libvirt = _router()
    assert drivers_of(router) == [docker, libvirt]
