"""Accelerator detection: KVM when it truly works for libvirt's QEMU, otherwise TCG.

An existing ``/dev/kvm`` proves little. QEMU runs as an unprivileged user that may not be
allowed to open it. Under nested virtualization the host's KVM may also reject CPU state that
QEMU sets: QEMU 7.2 with CPU mode host-model aborts when it cannot set the model-specific
register 0x10a (IA32_ARCH_CAPABILITIES). So detection makes two checks through libvirt, as
the domains will run:

1. the domain capabilities for virtualization type ``kvm`` must exist;
2. a transient probe domain of type ``kvm``, with the CPU mode real domains get, no devices
   and 16 MiB of memory, must start (paused, so no guest code runs). The driver destroys it
   right after, and libvirt would on a lost connection too (``VIR_DOMAIN_START_AUTODESTROY``).

Both run in one blocking function on the driver's worker pool.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Literal

import libvirt

from agentic_sandbox.runtimes.libvirt_conn import error_message
from agentic_sandbox.runtimes.libvirt_xml import build_probe_xml

logger = logging.getLogger(__name__)

Accelerator = Literal["kvm", "tcg"]
PROBE_NAME_PREFIX = "agentic-sandbox-kvm-probe-"


@dataclass(frozen=True)
class Detection:
    """The detected accelerator and, for TCG, why KVM was not used."""

    accelerator: Accelerator
    reason: str = ""

    @property
    def domain_type(self) -> Literal["kvm", "qemu"]:
        return "kvm" if self.accelerator == "kvm" else "qemu"


def detect(conn: libvirt.virConnect) -> Detection:
    """Return KVM when a paused KVM domain starts on ``conn``, else TCG with the reason. Blocks."""
    try:
        conn.getDomainCapabilities(None, None, None, "kvm", 0)
    except libvirt.libvirtError as exc:
        return Detection("tcg", f"libvirt reports no KVM support: {error_message(exc)}")

    name = f"{PROBE_NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    flags = libvirt.VIR_DOMAIN_START_PAUSED | libvirt.VIR_DOMAIN_START_AUTODESTROY
    try:
        probe = conn.createXML(build_probe_xml(name, "kvm"), flags)
    except libvirt.libvirtError as exc:
        return Detection("tcg", f"a KVM probe domain failed to start: {error_message(exc)}")
    try:
        probe.destroy()
    except libvirt.libvirtError as exc:
        # AUTODESTROY removes it when the connection closes, and KVM worked.
        logger.warning("kvm probe domain not destroyed name=%s error=%s", name, error_message(exc))
    return Detection("kvm")
