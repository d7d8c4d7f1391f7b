"""The files of one virtual machine: its directory, qcow2 overlay, seed ISO, kernel and log.

Each domain gets the directory ``<vm_dir>/<name>-<uuid>``. The driver writes a marker file
containing the domain UUID into it before anything else, and removes a directory only when
its marker names the domain being removed, so it never deletes a directory it did not make.

QEMU runs as an unprivileged user (``libvirt-qemu`` on Debian). With libvirt's default
``dynamic_ownership``, libvirt chowns the domain's own files (overlay, seed ISO, kernel and
initrd copies, serial log) to that user while the domain runs and gives them back to root when
it stops. QEMU still opens them by path, so every directory above them must be traversable
by that user. The base image is not relabelled (see ``libvirt_xml``): QEMU reads it through
its permission bits, which ``QemuUser.can_access`` checks.

Every function here blocks; the driver runs them on a worker thread.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid as uuid_module
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER_NAME = ".agentic-sandbox-domain"
OVERLAY_NAME = "disk.qcow2"
SEED_NAME = "seed.iso"
SERIAL_LOG_NAME = "serial.log"
KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
# Traversable by QEMU's user, but not listable by other users.
DIRECTORY_MODE = 0o711
# The overlay contains the guest's data and the seed its secrets. libvirt relabels them for QEMU.
FILE_MODE = 0o600
IMAGE_FORMATS = ("qcow2", "raw")


class ImageError(Exception):
    """A base image or boot file cannot be used. The message names the cause and the fix."""


class ImageMissing(ImageError):
    """A base image or boot file does not exist."""


@dataclass(frozen=True)
class DomainFiles:
    """The paths of one domain's files."""

    directory: Path
    uuid: str

    @classmethod
    def for_domain(cls, vm_dir: Path, name: str, uuid: str) -> DomainFiles:
        return cls(directory=vm_dir / f"{name}-{uuid}", uuid=uuid)

    @property
    def marker(self) -> Path:
        return self.directory / MARKER_NAME

    @property
    def overlay(self) -> Path:
        return self.directory / OVERLAY_NAME

    @property
    def seed(self) -> Path:
        return self.directory / SEED_NAME

    @property
    def serial_log(self) -> Path:
        return self.directory / SERIAL_LOG_NAME

    @property
    def kernel(self) -> Path:
        return self.directory / KERNEL_NAME

    @property
    def initrd(self) -> Path:
        return self.directory / INITRD_NAME


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` reports about a disk image."""

    path: str
    format: str
    virtual_size: int
    backing_file: str | None


@dataclass(frozen=True)
class QemuUser:
    """The user and groups QEMU runs as, from libvirt's DAC security model."""

    uid: int
    gids: frozenset[int]

    @classmethod
    def from_label(cls, label: str) -> QemuUser:
        """Parse a DAC label such as ``+64055:+64055`` and look up the user's other groups."""
        user_text, _, group_text = label.partition(":")
        uid = int(user_text.lstrip("+"))
        gid = int(group_text.lstrip("+"))
        gids = {gid}
        try:
            gids.update(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
        except KeyError:
            pass  # a uid without a passwd entry has only the group in the label
        return cls(uid=uid, gids=frozenset(gids))

    def can_access(self, path: str | os.PathLike[str], mode: int = os.R_OK) -> bool:
        """Whether this user can reach ``path`` and access it with ``mode`` (os.R_OK, os.W_OK).

        Follows symbolic links and checks the permission bits of every directory on the way.
        NOTE: POSIX ACLs and capabilities are not considered, so an ACL that grants QEMU
        access reads as no access.
        """
        real = Path(os.path.realpath(path))
        try:
            for directory in reversed(real.parents):
                if not self._allows(directory.stat(), os.X_OK):
                    return False
            return self._allows(real.stat(), mode)
        except OSError:
            return False

    def _allows(self, info: os.stat_result, mode: int) -> bool:
        if self.uid == 0:
            return True
        if info.st_uid == self.uid:
            shift = 6
        elif info.st_gid in self.gids:
            shift = 3
        else:
            shift = 0
        bits = (info.st_mode >> shift) & 0o7
        return bits & mode == mode


def image_info(path: str, *, timeout: float) -> ImageInfo:
    """Run ``qemu-img info`` on ``path``. Raises ImageError for a missing or unusable image."""
    if not os.path.isabs(path):
        raise ImageError(f"base image {path!r} is not an absolute path")
    if not os.path.isfile(path):
        raise ImageMissing(f"base image {path} does not exist or is not a regular file")
    # --force-share reads an image that running domains hold open.
    output = _qemu_img(["info", "--output=json", "--force-share", path], timeout=timeout)
    data = json.loads(output)
    info = ImageInfo(
        path=path,
        format=str(data.get("format", "")),
        virtual_size=int(data.get("virtual-size", 0)),
        backing_file=data.get("backing-filename"),
    )
    if info.format not in IMAGE_FORMATS:
        raise ImageError(
            f"base image {path} has format {info.format!r}; expected one of {IMAGE_FORMATS}"
        )
    if info.backing_file:
        raise ImageError(
            f"base image {path} has a backing file {info.backing_file}; flatten it with "
            f"'qemu-img convert -O qcow2 {path} NEW' and use the new image"
        )
    return info


def prepare_directory(files: DomainFiles) -> None:
    """Create the domain's directory with its marker. Raises FileExistsError when it exists."""
    files.directory.mkdir(mode=DIRECTORY_MODE)
    files.directory.chmod(DIRECTORY_MODE)  # mkdir applies the umask
    _write_file(files.marker, files.uuid.encode() + b"\n", mode=0o644)


def create_overlay(
    files: DomainFiles, base: ImageInfo, *, size: int | None, timeout: float
) -> None:
    """Create the qcow2 overlay on ``base`` with ``qemu-img create``; the base is only read."""
    if size is not None and size < base.virtual_size:
        raise ImageError(
            f"the disk size {size} bytes is smaller than the {base.virtual_size} bytes of base "
            f"image {base.path}; request at least that much, or leave the disk size unset"
        )
    temporary = files.directory / f".{OVERLAY_NAME}.partial"
    arguments = ["create", "-q", "-f", "qcow2", "-F", base.format, "-b", base.path]
    arguments.append(str(temporary))
    if size is not None:
        arguments.append(str(size))
    try:
        _qemu_img(arguments, timeout=timeout)
        temporary.chmod(FILE_MODE)
        os.replace(temporary, files.overlay)
    finally:
        temporary.unlink(missing_ok=True)


def copy_boot_file(source: str, destination: Path) -> None:
    """Copy a kernel or initrd into the domain's directory.

    libvirt relabels a domain's kernel and initrd while it runs, so each domain gets its own
    copy and the shared file keeps its owner.
    """
    if not os.path.isfile(source):
        raise ImageMissing(f"boot file {source} does not exist or is not a regular file")
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        with os.fdopen(descriptor, "wb") as target, open(source, "rb") as origin:
            shutil.copyfileobj(origin, target)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_directory(files: DomainFiles) -> bool:
    """Remove the domain's directory if its marker names this domain; return whether it did."""
    try:
        marker = files.marker.read_text().strip()
    except FileNotFoundError:
        return False
    if marker != files.uuid:
        logger.warning(
            "vm directory marker mismatch, keeping directory path=%s marker=%s uuid=%s",
            files.directory,
            marker,
            files.uuid,
        )
        return False
    shutil.rmtree(files.directory)
    return True


def remove_directories_of(vm_dir: Path, domain_uuid: str) -> None:
    """Remove every directory in ``vm_dir`` whose name ends with the UUID and whose marker
    names it: the files of a domain that is already undefined."""
    try:
        uuid_module.UUID(domain_uuid)
    except ValueError:
        return
    for entry in vm_dir.glob(f"*-{domain_uuid}"):
        if entry.is_dir() and not entry.is_symlink():
            remove_directory(DomainFiles(directory=entry, uuid=domain_uuid))


def leftover_directories(vm_dir: Path, name: str) -> list[DomainFiles]:
    """List the directories this driver made for domains named ``name``, by their markers."""
    leftovers = []
    prefix = f"{name}-"
    try:
        entries = list(vm_dir.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        uuid = entry.name.removeprefix(prefix)
        # A UUID is 36 characters, so "web-<uuid>" never matches the name "web-1".
        if not entry.name.startswith(prefix) or len(uuid) != 36:
            continue
        if entry.is_dir() and not entry.is_symlink():
            leftovers.append(DomainFiles(directory=entry, uuid=uuid))
    return leftovers


def ensure_vm_dir(vm_dir: Path) -> None:
    """Create ``vm_dir`` (mode 0711) unless it exists. An existing one keeps its mode."""
    if vm_dir.is_dir():
        return
    vm_dir.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    vm_dir.chmod(DIRECTORY_MODE)


def is_regular_readable(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and os.access(path, os.R_OK)


def _write_file(path: Path, content: bytes, *, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)


def _qemu_img(arguments: list[str], *, timeout: float) -> str:
    try:
        result = subprocess.run(
            ["qemu-img", *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ImageError("qemu-img is not installed; install the qemu-utils package") from exc
    if result.returncode != 0:
        message = result.stderr.strip() or f"exit status {result.returncode}"
        raise ImageError(f"qemu-img {arguments[0]} failed: {message}")
    return result.stdout
