"""One Runtime over several drivers: each call goes to the driver that owns the sandbox.

The controller, the garbage collector and the API speak to a single Runtime. The router sends a
create to the driver that ``SandboxSpec.runtime`` names, and every call on an existing sandbox
to the driver whose id format it carries: libvirt domains are named by their UUID, Docker
containers by 64 hexadecimal digits. Listings merge every driver's listing, and a listing that
one driver cannot give fails as a whole, so a caller never mistakes an outage for absence.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping

from agentic_sandbox.errors import InvalidRuntimeSpec
from agentic_sandbox.runtimes.base import Runtime, RuntimeEvent, SandboxSpec, SandboxState

DOCKER = "docker"
LIBVIRT = "libvirt"

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def runtime_of_id(sandbox_id: str) -> str:
    """Return the driver name that issues ids of this format."""
    return LIBVIRT if _UUID.match(sandbox_id.lower()) else DOCKER


class RuntimeRouter:
    """Routes Runtime calls to named drivers; ``drivers`` maps a runtime name to its driver."""

    name = "router"

    def __init__(self, drivers: Mapping[str, Runtime]) -> None:
        if not drivers:
            raise ValueError("a RuntimeRouter needs at least one driver")
        self.drivers: dict[str, Runtime] = dict(drivers)

    def driver(self, runtime: str) -> Runtime:
        """Return the driver for ``runtime``; InvalidRuntimeSpec when it is not enabled."""
        try:
            return self.drivers[runtime]
        except KeyError:
            enabled = ", ".join(sorted(self.drivers))
            hint = (
                "start the controller with libvirt enabled (AGENTIC_SANDBOX_LIBVIRT_URI, "
                "default qemu:///system) and a running libvirtd"
                if runtime == LIBVIRT
                else f"use one of: {enabled}"
            )
            raise InvalidRuntimeSpec(
                f"spec.runtime is {runtime!r}, but this controller runs only {enabled}; {hint}",
                field="spec.runtime",
            ) from None

    def _for_id(self, sandbox_id: str) -> Runtime:
        return self.driver(runtime_of_id(sandbox_id))

    async def ping(self) -> None:
        for driver in self.drivers.values():
            await driver.ping()

    async def create(self, spec: SandboxSpec) -> SandboxState:
        return await self.driver(spec.runtime).create(spec)

    async def start(self, sandbox_id: str) -> None:
        await self._for_id(sandbox_id).start(sandbox_id)

    async def stop(self, sandbox_id: str, timeout: int) -> None:  # noqa: ASYNC109
        await self._for_id(sandbox_id).stop(sandbox_id, timeout)

    async def remove(self, sandbox_id: str) -> None:
        await self._for_id(sandbox_id).remove(sandbox_id)

    async def inspect(self, sandbox_id: str) -> SandboxState | None:
        return await self._for_id(sandbox_id).inspect(sandbox_id)

    async def list_owned(
        self, labels: dict[str, str], *, detailed: bool = True
    ) -> list[SandboxState]:
        found: list[SandboxState] = []
        for driver in self.drivers.values():
            found.extend(await driver.list_owned(labels, detailed=detailed))
        return found

    async def image_present(self, refs: list[str]) -> dict[str, bool]:
        # Image references are container images; base disk images are checked by the driver
        # that boots them when it creates the sandbox.
        docker = self.drivers.get(DOCKER)
        if docker is None:
            return dict.fromkeys(refs, False)
        return await docker.image_present(refs)

    def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        return self._for_id(sandbox_id).logs(sandbox_id, tail=tail, follow=follow)

    def events(self, labels: dict[str, str]) -> AsyncGenerator[RuntimeEvent, None]:
        """Not merged: the controller follows each driver's stream on its own (see drivers)."""
        raise NotImplementedError("follow the event stream of each driver in RuntimeRouter.drivers")

    async def close(self) -> None:
        for driver in self.drivers.values():
            await driver.close()


def drivers_of(runtime: Runtime) -> list[Runtime]:
    """Return the drivers behind ``runtime``: the router's, or the runtime itself."""
    if isinstance(runtime, RuntimeRouter):
        return list(runtime.drivers.values())
    return [runtime]


def driver_for(runtime: Runtime, name: str) -> Runtime:
    """Return the driver for runtime ``name`` behind ``runtime``.

    A plain driver serves every name it is asked for, which keeps the fake runtime usable in
    planning tests; a router checks that the driver is enabled.
    """
    if isinstance(runtime, RuntimeRouter):
        return runtime.driver(name)
    return runtime
