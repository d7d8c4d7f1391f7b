"""The libvirt runtime driver: one persistent QEMU domain per sandbox, on libvirt-python.

A sandbox id is the domain UUID. Each domain runs on a qcow2 overlay of its base image, in a
directory of its own under ``vm_dir`` (see ``libvirt_disk``), with a cloud-init seed and a
serial log there. The ownership labels and a ``VmRecord`` (base image, creation, start and
stop times) live in the domain's metadata, so a restarted controller adopts and collects
domains exactly as it does containers.

Calls go through ``LibvirtConnection`` (worker pool, deadlines, circuit breaker, reconnection
after a libvirtd restart). Every ``libvirtError`` leaves this module as a RuntimeFailure chained
with ``from``. The driver makes no decisions and never retries: the controller requeues.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid as uuid_module
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import libvirt

from agentic_sandbox.errors import (
    InvalidRuntimeSpec,
    NameConflict,
    RuntimeObjectNotFound,
)
from agentic_sandbox.runtimes import libvirt_ops as ops
from agentic_sandbox.runtimes.base import (
    LABEL_INSTANCE,
    LABEL_UID,
    RuntimeEvent,
    SandboxSpec,
    SandboxState,
    VmSpec,
)
from agentic_sandbox.runtimes.libvirt_accel import Detection, detect
from agentic_sandbox.runtimes.libvirt_circuit import (
    DEFAULT_COOL_DOWN_SECONDS,
    DEFAULT_THRESHOLD,
    CircuitBreaker,
)
from agentic_sandbox.runtimes.libvirt_conn import LibvirtConnection, api_error
from agentic_sandbox.runtimes.libvirt_disk import (
    DomainFiles,
    ImageInfo,
    QemuUser,
    image_info,
    is_regular_readable,
    remove_directories_of,
    remove_directory,
)
from agentic_sandbox.runtimes.libvirt_errors import define_error, run_disk_job, spec_error
from agentic_sandbox.runtimes.libvirt_events import LifecycleEvent, LifecycleHub
from agentic_sandbox.runtimes.libvirt_provision import (
    NewDomain,
    build_files,
    check_qemu_access,
    domain_spec,
    remove_leftovers,
)
from agentic_sandbox.runtimes.libvirt_state import sandbox_state
from agentic_sandbox.runtimes.libvirt_streams import LibvirtStreams
from agentic_sandbox.runtimes.libvirt_xml import build_domain_xml

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_VM_DIR = Path("/var/lib/agentic-sandbox/vms")
# qemu-img on a large base image, and copying a kernel and initrd, take longer than a call.
DEFAULT_DISK_TIMEOUT_SECONDS = 120.0


class LibvirtRuntime:
    """The Runtime protocol on libvirt, one persistent domain per sandbox."""

    name = "libvirt"

    def __init__(
        self,
        *,
        uri: str = "qemu:///system",
        vm_dir: Path = DEFAULT_VM_DIR,
        call_timeout: float = 30.0,
        disk_timeout: float = DEFAULT_DISK_TIMEOUT_SECONDS,
        max_workers: int = 8,
        circuit_threshold: int = DEFAULT_THRESHOLD,
        circuit_cool_down: float = DEFAULT_COOL_DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Configure the driver without connecting; the first call connects.

        ``call_timeout`` is the deadline of each libvirt call in seconds and ``disk_timeout``
        that of preparing a domain's files. ``circuit_threshold`` timed-out calls in a row open
        the circuit for ``circuit_cool_down`` seconds (measured with ``clock``).
        """
        self._vm_dir = Path(vm_dir)
        self._disk_timeout = disk_timeout
        self._hub = LifecycleHub()
        self._circuit = CircuitBreaker(
            name=f"libvirt at {uri}",
            threshold=circuit_threshold,
            cool_down=circuit_cool_down,
            clock=clock,
        )
        self._conn = LibvirtConnection(
            uri=uri,
            call_timeout=call_timeout,
            max_workers=max_workers,
            circuit=self._circuit,
            hub=self._hub,
            on_lifecycle=self._record_lifecycle,
        )
        self._streams = LibvirtStreams(self._conn, self._hub)
        self._detection: Detection | None = None
        self._detection_lock = asyncio.Lock()
        self._qemu_users: dict[str, QemuUser | None] = {}

    @property
    def circuit_open(self) -> bool:
        """Whether calls now fail at once because libvirtd timed out repeatedly."""
        return self._circuit.open

    @property
    def retry_after(self) -> float:
        """Seconds until the open circuit lets a call through again; 0 when it is closed."""
        return self._circuit.retry_after

    @property
    def accelerator(self) -> str | None:
        """``kvm`` or ``tcg`` once ``detect_accelerator`` has run, else None."""
        return None if self._detection is None else self._detection.accelerator

    async def ping(self) -> None:
        """Raise RuntimeUnavailable unless libvirtd responds."""
        await self._conn.call("ping", lambda conn: conn.getLibVersion())

    async def detect_accelerator(self) -> str:
        """Return ``kvm`` when a KVM domain starts on this host, else ``tcg``; cached.

        The result decides the type of every domain this driver defines from now on.
        """
        async with self._detection_lock:
            if self._detection is None:
                # Starting the probe domain takes a QEMU launch on top of a normal call.
                timeout = self._conn.call_timeout
                detection = await self._conn.call("detect", detect, extra_timeout=timeout)
                logger.info(
                    "libvirt accelerator detected uri=%s accelerator=%s reason=%s",
                    self._conn.uri,
                    detection.accelerator,
                    detection.reason or "-",
                )
                self._detection = detection
            return self._detection.accelerator

    async def create(self, spec: SandboxSpec) -> SandboxState:
        """Define the domain without starting it; adopt our own after a half-done create.

        Raises ImageNotFound for a missing base image or boot file. Raises InvalidRuntimeSpec
        for a spec without a VM part, for a base image or boot file QEMU cannot use, and for XML
        that libvirt rejects. Raises NameConflict when the name belongs to a domain with
        another ``agentic-sandbox.uid``.
        ``spec.command`` has no meaning for a VM and is ignored: the loadout's ``runcmd`` is.
        """
        vm = _require_vm(spec)
        existing = await self._conn.call("lookup", lambda conn: ops.observe_name(conn, spec.name))
        if existing is not None:
            return self._adopt(spec, existing)

        detection = await self._detect()
        domain_uuid = str(uuid_module.uuid4())
        new = NewDomain(
            spec=spec,
            vm=vm,
            files=DomainFiles.for_domain(self._vm_dir, spec.name, domain_uuid),
            base=await self._check_base_image(vm, detection),
            domain_type=detection.domain_type,
        )
        try:
            xml = build_domain_xml(domain_spec(new, created_at=datetime.now(UTC)))
        except ValueError as exc:
            raise InvalidRuntimeSpec(f"sandbox {spec.name!r} cannot be a domain: {exc}") from exc

        defined = await self._conn.call("list", ops.domain_uuids)
        await run_disk_job(
            f"files of domain {spec.name!r}",
            lambda: self._build_files(new, defined),
            timeout=self._disk_timeout,
        )
        try:
            await self._conn.call("define", lambda conn: conn.defineXML(xml))
        except libvirt.libvirtError as exc:
            await run_disk_job("cleanup", lambda: remove_directory(new.files), timeout=30)
            if exc.get_error_code() in (
                libvirt.VIR_ERR_OPERATION_FAILED,
                libvirt.VIR_ERR_DOM_EXIST,
            ):
                # Another create of this name got there first.
                raced = await self._conn.call(
                    "lookup", lambda conn: ops.observe_name(conn, spec.name)
                )
                if raced is not None:
                    return self._adopt(spec, raced)
            raise define_error(spec.name, exc) from exc

        logger.info(
            "domain defined instance=%s name=%s domain_uuid=%s accelerator=%s",
            spec.labels.get(LABEL_INSTANCE),
            spec.name,
            domain_uuid,
            detection.accelerator,
        )
        state = await self.inspect(domain_uuid)
        if state is None:
            raise RuntimeObjectNotFound(
                f"domain {spec.name!r} ({domain_uuid}) was undefined right after its define"
            )
        return state

    def _build_files(self, new: NewDomain, defined: set[str]) -> None:
        remove_leftovers(self._vm_dir, new.spec.name, keep=defined)
        build_files(new, vm_dir=self._vm_dir, timeout=self._disk_timeout)

    def _adopt(self, spec: SandboxSpec, existing: ops.Observation) -> SandboxState:
        """Return the domain holding ``spec.name`` when it carries our uid, else raise."""
        facts = existing.facts
        uid = spec.labels.get(LABEL_UID)
        owner = facts.labels.get(LABEL_UID)
        if uid is not None and owner == uid:
            logger.info(
                "domain adopted instance=%s name=%s domain_uuid=%s",
                spec.labels.get(LABEL_INSTANCE),
                spec.name,
                facts.uuid,
            )
            return self._remember(existing)
        raise NameConflict(
            f"domain name {spec.name!r} is taken by domain {facts.uuid}, which this controller "
            f"does not own (its {LABEL_UID} label is {owner!r}, expected {uid!r}); remove or "
            "rename that domain"
        )

    async def _detect(self) -> Detection:
        await self.detect_accelerator()
        assert self._detection is not None
        return self._detection

    async def _check_base_image(self, vm: VmSpec, detection: Detection) -> ImageInfo:
        info = await run_disk_job(
            f"base image {vm.base_image}",
            lambda: image_info(vm.base_image, timeout=self._disk_timeout),
            timeout=self._disk_timeout,
        )
        user = await self._qemu_user(detection.domain_type)
        if user is not None:
            check_qemu_access(user, base_image=vm.base_image, vm_dir=self._vm_dir)
        return info

    async def _qemu_user(self, domain_type: str) -> QemuUser | None:
        if domain_type not in self._qemu_users:
            self._qemu_users[domain_type] = await self._conn.call(
                "capabilities", lambda conn: ops.qemu_user(conn, domain_type)
            )
        return self._qemu_users[domain_type]

    async def start(self, sandbox_id: str) -> None:
        """Start the domain; starting a running one is fine.

        Raises RuntimeObjectNotFound for a missing domain and InvalidRuntimeSpec when libvirt
        rejects its configuration on this host.
        """
        now = datetime.now(UTC)
        try:
            found = await self._conn.call("start", lambda conn: ops.start(conn, sandbox_id, now))
        except libvirt.libvirtError as exc:
            raise spec_error("start", sandbox_id, exc) or api_error("start", exc) from exc
        if not found:
            raise RuntimeObjectNotFound(f"domain {sandbox_id} not found")

    async def stop(self, sandbox_id: str, timeout: int) -> None:  # noqa: ASYNC109 (protocol)
        """Press the ACPI power button, wait up to ``timeout`` seconds, then destroy.

        The wait ends on the domain's stopped event. A stopped or missing domain is fine; the
        overlay is kept.
        """
        await self._streams.stop(sandbox_id, timeout)

    async def remove(self, sandbox_id: str) -> None:
        """Destroy and undefine the domain, then remove its directory. A missing one is fine.

        Undefine also clears NVRAM, managed save, snapshot and checkpoint metadata. The
        directory goes only when the domain carried ownership labels and the directory's
        marker names the domain.
        """
        try:
            facts = await self._conn.call("remove", lambda conn: ops.remove(conn, sandbox_id))
        except libvirt.libvirtError as exc:
            raise api_error("remove", exc) from exc
        if facts is None:
            # A remove that crashed between the undefine and the directory removal left this.
            await run_disk_job(
                "remove files",
                lambda: remove_directories_of(self._vm_dir, sandbox_id),
                timeout=self._disk_timeout,
            )
            return
        if not facts.labels:
            return
        files = DomainFiles.for_domain(self._vm_dir, facts.name, facts.uuid)
        if facts.disk_path is not None:
            # The directory the domain uses, even when vm_dir has changed since its create.
            files = DomainFiles(directory=Path(facts.disk_path).parent, uuid=facts.uuid)
        await run_disk_job(
            "remove files", lambda: remove_directory(files), timeout=self._disk_timeout
        )
        logger.info("domain removed name=%s domain_uuid=%s", facts.name, facts.uuid)

    async def inspect(self, sandbox_id: str) -> SandboxState | None:
        """Return the domain's state by UUID or name, or None when there is none."""
        try:
            observation = await self._conn.call(
                "inspect", lambda conn: ops.observe(conn, sandbox_id)
            )
        except libvirt.libvirtError as exc:
            raise api_error("inspect", exc) from exc
        return None if observation is None else self._remember(observation)

    async def list_owned(
        self, labels: dict[str, str], *, detailed: bool = True
    ) -> list[SandboxState]:
        """List every domain, running or not, whose labels include all of ``labels``.

        One call reads every domain's XML and state, so ``detailed`` changes nothing.
        """
        try:
            observations = await self._conn.call("list", ops.observe_all)
        except libvirt.libvirtError as exc:
            raise api_error("list", exc) from exc
        return [
            self._remember(observation)
            for observation in observations
            if labels.items() <= observation.facts.labels.items()
        ]

    async def image_present(self, refs: list[str]) -> dict[str, bool]:
        """Return, for each base image path, whether it is a file QEMU's user can read."""
        detection = await self._detect()
        user = await self._qemu_user(detection.domain_type)
        present = {}
        for ref in refs:
            readable = ref.startswith("/") and is_regular_readable(ref)
            present[ref] = readable and (user is None or user.can_access(ref))
        return present

    def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        """Stream the domain's serial console log; the first chunk is ``b""`` once it is open.

        With ``follow`` the stream waits for new output until the domain stops. Raises
        RuntimeObjectNotFound for a missing domain.
        """
        return self._streams.logs(sandbox_id, tail=tail, follow=follow)

    def events(self, labels: dict[str, str]) -> AsyncGenerator[RuntimeEvent, None]:
        """Stream lifecycle events (``vm.defined``, ``vm.started``, ``vm.stopped``,
        ``vm.crashed``, ``vm.undefined``, ``vm.paused``, ``vm.resumed``) of domains carrying
        ``labels``. Raises RuntimeUnavailable when the connection to libvirtd closes."""
        return self._streams.events(labels)

    async def close(self) -> None:
        """End streams (they raise RuntimeUnavailable) and close the connection."""
        self._conn.close()

    def _remember(self, observation: ops.Observation) -> SandboxState:
        self._streams.remember_labels(observation.facts.uuid, observation.facts.labels)
        return sandbox_state(observation.facts, observation.state, observation.reason)

    def _record_lifecycle(self, event: LifecycleEvent) -> None:
        """Record a start or stop in the domain's VmRecord. Runs on libvirt's event thread."""
        change = ops.record_change(event)
        if change is not None:
            self._conn.submit("record lifecycle", change)


def _require_vm(spec: SandboxSpec) -> VmSpec:
    if spec.vm is None:
        raise InvalidRuntimeSpec(
            f"sandbox {spec.name!r} has runtime {spec.runtime!r} and no VM part; the libvirt "
            "runtime needs a base image and a loadout"
        )
    return spec.vm
