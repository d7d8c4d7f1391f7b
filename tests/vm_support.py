"""Helpers for tests that boot real virtual machines: the guest check and domain clean-up."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from agentic_sandbox.controller.config import DEFAULT_VM_DIR
from agentic_sandbox.runtimes.base import LABEL_CONTROLLER
from agentic_sandbox.runtimes.libvirt_xml import parse_ownership
from tests.conftest import missing_component

LIBVIRT_URI = "qemu:///system"
TINY_GUEST = Path("/var/lib/agentic-sandbox/images/tiny")
TINY_FILES = ("vmlinuz", "initrd.img", "disk.qcow2")


def require_tiny_guest() -> None:
    """Fail (CI) or skip (elsewhere) unless libvirtd responds and the tiny guest is built."""
    missing = [name for name in TINY_FILES if not (TINY_GUEST / name).is_file()]
    if missing:
        missing_component(
            f"the tiny VM guest is not built ({', '.join(missing)} missing in {TINY_GUEST}); "
            "build it with scripts/setup"
        )
    try:
        connection = libvirt.open(LIBVIRT_URI)
    except libvirt.libvirtError as error:
        missing_component(f"libvirtd does not respond at {LIBVIRT_URI}: {error}")
        return
    connection.close()


def remove_domains(controller_id: str) -> list[str]:
    """Destroy and undefine every domain owned by ``controller_id``; return their names.

    Only domains whose metadata names this controller are touched, so tests running side by
    side never remove each other's machines. The domain's directory next to its disk goes too.
    """
    connection = libvirt.open(LIBVIRT_URI)
    removed = []
    try:
        for domain in connection.listAllDomains():
            labels = parse_ownership(domain.XMLDesc(0))
            if labels.get(LABEL_CONTROLLER) != controller_id:
                continue
            if domain.isActive():
                domain.destroy()
            disks = _disk_dirs(domain.XMLDesc(0))
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            for directory in disks:
                shutil.rmtree(directory, ignore_errors=True)
            removed.append(domain.name())
    finally:
        connection.close()
    return removed


def _disk_dirs(xml: str) -> list[Path]:
    """Return the per-domain directories under the VM directory that hold this domain's files."""
    root = ET.fromstring(xml)
    files = [Path(str(source.get("file"))) for source in root.iter("source") if source.get("file")]
    return sorted({path.parent for path in files if path.parent.parent == DEFAULT_VM_DIR})


@pytest.fixture
def tiny_guest() -> Path:
    require_tiny_guest()
    return TINY_GUEST
