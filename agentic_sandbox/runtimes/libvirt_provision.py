"""Building a new domain: its files on disk, then its definition.

``build_files`` writes the domain's directory (overlay, cloud-init seed, kernel and initrd
copies) before the domain is defined, so a defined domain always has complete files and can
start. A create that crashes before the define leaves a directory without a domain, and the
next create of the same name removes it (``libvirt_disk.leftover_directories``).
NOTE: when the instance is deleted before a next create of its name, nothing removes that
directory; the garbage collector lists domains, not directories.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from agentic_sandbox.errors import InvalidRuntimeSpec
from agentic_sandbox.runtimes import cloudinit
from agentic_sandbox.runtimes.base import SandboxSpec, VmSpec
from agentic_sandbox.runtimes.libvirt_disk import (
    DomainFiles,
    ImageInfo,
    QemuUser,
    copy_boot_file,
    create_overlay,
    ensure_vm_dir,
    leftover_directories,
    prepare_directory,
    remove_directory,
)
from agentic_sandbox.runtimes.libvirt_xml import DomainSpec, VmRecord, vcpus_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewDomain:
    """One domain about to be created: its spec, its files and the base image they use."""

    spec: SandboxSpec
    vm: VmSpec
    files: DomainFiles
    base: ImageInfo
    domain_type: str


def check_qemu_access(user: QemuUser, *, base_image: str, vm_dir: Path) -> None:
    """Raise InvalidRuntimeSpec unless QEMU's user can read the base image and reach vm_dir."""
    if not user.can_access(base_image):
        raise InvalidRuntimeSpec(
            f"base image {base_image} is not readable by QEMU's user (uid {user.uid}); "
            "make the file readable by others (chmod o+r) and its directories searchable "
            "(chmod o+x)",
            field="spec.image",
            value=base_image,
        )
    nearest = vm_dir if vm_dir.exists() else vm_dir.parent
    if not user.can_access(nearest, os.X_OK):
        raise InvalidRuntimeSpec(
            f"QEMU's user (uid {user.uid}) cannot search {nearest}, so it could not open "
            f"disks in the VM directory {vm_dir}; make it and its parents searchable "
            "(chmod o+x)"
        )


def remove_leftovers(vm_dir: Path, name: str, *, keep: set[str]) -> None:
    """Remove the directories of earlier creates of ``name`` that never defined a domain.

    The caller has checked that no domain named ``name`` exists. A directory whose UUID is in
    ``keep`` (the defined domains) is kept all the same, in case its domain was renamed.
    """
    for leftover in leftover_directories(vm_dir, name):
        if leftover.uuid not in keep and remove_directory(leftover):
            logger.info("vm leftover directory removed path=%s", leftover.directory)


def build_files(new: NewDomain, *, vm_dir: Path, timeout: float) -> None:
    """Write the domain's directory; on any failure remove what was written and re-raise.

    Raises ImageError for an unusable image or boot file, ValueError for a loadout the seed
    cannot express, and OSError for file system failures.
    """
    ensure_vm_dir(vm_dir)
    prepare_directory(new.files)
    try:
        create_overlay(new.files, new.base, size=new.vm.disk_bytes, timeout=timeout)
        cloudinit.build_seed_iso(new.files.seed, seed_files(new))
        loadout = new.vm.loadout.spec
        if loadout.kernel is not None:
            copy_boot_file(loadout.kernel, new.files.kernel)
        if loadout.initrd is not None:
            copy_boot_file(loadout.initrd, new.files.initrd)
    except BaseException:
        remove_directory(new.files)
        raise


def seed_files(new: NewDomain) -> dict[str, bytes]:
    """Build the NoCloud seed: the loadout's provisioning and the sandbox env, per domain."""
    loadout = new.vm.loadout
    # The env of SandboxSpec already contains what the controller injects, such as AGENT_ID.
    user_data = cloudinit.build_user_data(loadout, env=dict(new.spec.env), agent_env={})
    # A DNS-1123 label: "namespace.name" becomes "namespace-name".
    hostname = new.spec.name.replace(".", "-")[:63].rstrip("-")
    return {
        cloudinit.USER_DATA: user_data.encode(),
        cloudinit.META_DATA: cloudinit.build_meta_data(new.files.uuid, hostname).encode(),
        cloudinit.NETWORK_CONFIG: cloudinit.build_network_config(loadout.network_mode).encode(),
    }


def domain_spec(new: NewDomain, *, created_at: datetime) -> DomainSpec:
    """Describe the domain for ``build_domain_xml``, with its files and the creation record.

    Raises ValueError for a spec libvirt cannot take, such as an initrd without a kernel.
    """
    loadout = new.vm.loadout.spec
    domain_type: Literal["kvm", "qemu"] = "kvm" if new.domain_type == "kvm" else "qemu"
    base_format: Literal["qcow2", "raw"] = "raw" if new.base.format == "raw" else "qcow2"
    return DomainSpec(
        name=new.spec.name,
        uuid=new.files.uuid,
        vcpus=vcpus_for(new.spec.cpus),
        memory_bytes=new.spec.memory_bytes,
        disk_path=str(new.files.overlay),
        serial_log_path=str(new.files.serial_log),
        ownership=dict(new.spec.labels),
        seed_iso_path=str(new.files.seed),
        kernel=str(new.files.kernel) if loadout.kernel is not None else None,
        initrd=str(new.files.initrd) if loadout.initrd is not None else None,
        cmdline=loadout.cmdline,
        network_mode=new.vm.loadout.network_mode,
        domain_type=domain_type,
        backing_image=new.base.path,
        backing_format=base_format,
        record=VmRecord(base_image=new.vm.base_image, created_at=created_at),
    )
