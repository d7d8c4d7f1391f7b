"""images/vm/build-guest.sh: the tiny test guest's files, and how the build skips unchanged work.

The module builds the guest once into a temporary images directory with ``--offline``, taking
the kernel package from the cache of the default images directory, which scripts/setup fills.
So these tests download nothing. They check the files without booting them: the libvirt
driver's tests boot the guest.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from agentic_sandbox.crds.loadout import Loadout
from tests.conftest import REPO_ROOT, missing_component

BUILD_SCRIPT = REPO_ROOT / "images" / "vm" / "build-guest.sh"
GUEST_DIR = REPO_ROOT / "images" / "vm" / "guest"
TINY_LOADOUT = REPO_ROOT / "images" / "vm" / "loadouts" / "tiny.yaml"
DEFAULT_IMAGES = Path(
    os.environ.get("AGENTIC_SANDBOX_VM_IMAGES", "/var/lib/agentic-sandbox/images")
)
BUSYBOX = Path(os.environ.get("AGENTIC_SANDBOX_BUSYBOX", "/bin/busybox"))
OUTPUT_FILES = ("vmlinuz", "initrd.img", "disk.qcow2")
# A build from the cached kernel package takes about 4 s; the limit covers a busy machine.
BUILD_TIMEOUT_SECONDS = 300
NEWC_MAGIC = b"070701"
NEWC_HEADER_SIZE = 110
# The 8-digit hexadecimal fields after the magic in a newc header, in order.
NEWC_FIELDS = (
    "ino", "mode", "uid", "gid", "nlink", "mtime", "filesize",
    "devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check",
)  # fmt: skip
POWER_BUTTON_HANDLER = "etc/acpi/PWRF/00000080"
MODULE_LIST = "etc/agentic-sandbox/modules"


@dataclass(frozen=True)
class CpioEntry:
    mode: int
    uid: int
    gid: int
    data: bytes


@dataclass(frozen=True)
class GuestBuild:
    images: Path
    cache: Path

    @property
    def output(self) -> Path:
        return self.images / "tiny"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "AGENTIC_SANDBOX_VM_IMAGES": str(self.images),
            "AGENTIC_SANDBOX_VM_CACHE": str(self.cache),
        }
        return subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--offline", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def read_newc(archive: bytes) -> dict[str, CpioEntry]:
    """Parse a cpio archive in the newc format into entries by path, without a leading './'."""
    entries: dict[str, CpioEntry] = {}
    offset = 0
    while True:
        header = archive[offset : offset + NEWC_HEADER_SIZE]
        assert header[:6] == NEWC_MAGIC, f"no newc header at offset {offset}: {header[:6]!r}"
        values = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(len(NEWC_FIELDS))]
        fields = dict(zip(NEWC_FIELDS, values, strict=True))
        file_size, name_size = fields["filesize"], fields["namesize"]
        name_start = offset + NEWC_HEADER_SIZE
        name = archive[name_start : name_start + name_size - 1].decode()
        data_start = _align4(name_start + name_size)
        if name == "TRAILER!!!":
            return entries
        data = archive[data_start : data_start + file_size]
        entries[name.removeprefix("./")] = CpioEntry(
            mode=fields["mode"], uid=fields["uid"], gid=fields["gid"], data=data
        )
        offset = _align4(data_start + file_size)


def _align4(offset: int) -> int:
    return (offset + 3) & ~3


def file_identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_ino, status.st_mtime_ns


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> GuestBuild:
    cache = DEFAULT_IMAGES / "cache"
    if not any(cache.glob("linux-image-*.deb")):
        missing_component(
            f"no kernel package in {cache}; run images/vm/build-guest.sh (scripts/setup does)"
        )
    build = GuestBuild(images=tmp_path_factory.mktemp("vm-images"), cache=cache)
    result = build.run()
    if "is not in the cache" in result.stderr:
        missing_component(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    return build


@pytest.fixture(scope="module")
def initrd(guest: GuestBuild) -> dict[str, CpioEntry]:
    return read_newc(gzip.decompress((guest.output / "initrd.img").read_bytes()))


def test_initrd_has_init_and_busybox(initrd: dict[str, CpioEntry]) -> None:
    assert initrd["init"].data == (GUEST_DIR / "init").read_bytes()
    assert stat.S_IMODE(initrd["init"].mode) == 0o755
    assert initrd["bin/busybox"].data == BUSYBOX.read_bytes()
    assert stat.S_IMODE(initrd["bin/busybox"].mode) == 0o755
    assert stat.S_ISLNK(initrd["bin/sh"].mode)
    assert initrd["bin/sh"].data == b"/bin/busybox"


def test_initrd_has_power_button_handler(initrd: dict[str, CpioEntry]) -> None:
    handler = initrd[POWER_BUTTON_HANDLER]

    assert handler.data == (GUEST_DIR / "power-button").read_bytes()
    assert stat.S_IMODE(handler.mode) == 0o755


def test_initrd_entries_owned_by_root(initrd: dict[str, CpioEntry]) -> None:
    not_root = sorted(path for path, entry in initrd.items() if (entry.uid, entry.gid) != (0, 0))

    assert not_root == []


def test_module_list_loads_dependencies_first(initrd: dict[str, CpioEntry]) -> None:
    lines = initrd[MODULE_LIST].data.decode().splitlines()
    paths = [line.split()[0] for line in lines]
    names = [Path(path).stem for path in paths]

    assert len(paths) == len(set(paths))
    for name in ("virtio_pci", "virtio_blk", "virtio_scsi", "sr_mod", "isofs", "button"):
        assert name in names
    for name in ("evdev", "virtio_net"):
        assert name in names
    # ext4 is built into the Debian cloud kernel, so it has no module file.
    assert "ext4" not in names
    assert names.index("virtio") < names.index("virtio_blk")
    assert names.index("virtio_ring") < names.index("virtio")
    assert names.index("scsi_mod") < names.index("sr_mod")
    assert names.index("cdrom") < names.index("sr_mod")
    assert f"{paths[names.index('scsi_mod')]} scan=sync" in lines


def test_module_list_files_are_in_initrd(initrd: dict[str, CpioEntry]) -> None:
    release_dirs = {path.split("/")[2] for path in initrd if path.startswith("lib/modules/")}
    assert len(release_dirs) == 1
    release = release_dirs.pop()

    for line in initrd[MODULE_LIST].data.decode().splitlines():
        module = initrd[f"lib/modules/{release}/{line.split()[0]}"]
        assert module.data.startswith(b"\x7fELF")


def test_output_files_readable_by_everyone(guest: GuestBuild) -> None:
    assert stat.S_IMODE(guest.output.stat().st_mode) == 0o755
    for name in OUTPUT_FILES:
        assert stat.S_IMODE((guest.output / name).stat().st_mode) == 0o644, name


def test_vmlinuz_is_bzimage(guest: GuestBuild) -> None:
    header = (guest.output / "vmlinuz").read_bytes()[:0x206]

    # The x86 boot protocol puts the magic "HdrS" at offset 0x202 of a bzImage.
    assert header[0x202:0x206] == b"HdrS"


def test_disk_is_standalone_qcow2(guest: GuestBuild) -> None:
    result = subprocess.run(
        ["qemu-img", "info", "--output=json", str(guest.output / "disk.qcow2")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info = json.loads(result.stdout)

    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 64 * 1024 * 1024
    assert "backing-filename" not in info


def test_disk_contains_clean_ext4(guest: GuestBuild, tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    subprocess.run(
        ["qemu-img", "convert", "-O", "raw", str(guest.output / "disk.qcow2"), str(raw)],
        timeout=60,
        check=True,
    )
    result = subprocess.run(
        ["dumpe2fs", "-h", str(raw)], capture_output=True, text=True, timeout=60, check=True
    )
    header = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in result.stdout.splitlines())
    )

    assert header["Filesystem volume name"] == "agentic-disk"
    assert header["Filesystem state"] == "clean"
    assert "has_journal" in header["Filesystem features"]


def test_second_run_is_up_to_date(guest: GuestBuild) -> None:
    before = {name: file_identity(guest.output / name) for name in OUTPUT_FILES}

    result = guest.run()

    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout
    assert "building" not in result.stdout
    assert {name: file_identity(guest.output / name) for name in OUTPUT_FILES} == before


def test_stale_boot_stamp_rebuilds_boot_files_only(guest: GuestBuild) -> None:
    initrd_before = (guest.output / "initrd.img").read_bytes()
    disk_before = file_identity(guest.output / "disk.qcow2")
    (guest.output / "boot.inputs").write_text("stale\n")

    result = guest.run()

    assert result.returncode == 0, result.stderr
    assert "building vmlinuz and initrd.img" in result.stdout
    assert "building disk.qcow2" not in result.stdout
    assert file_identity(guest.output / "disk.qcow2") == disk_before
    # The initramfs is reproducible: the same inputs give the same bytes.
    assert (guest.output / "initrd.img").read_bytes() == initrd_before
    assert guest.run().stdout.count("is up to date") == 1


def test_missing_disk_is_rebuilt_identically(guest: GuestBuild) -> None:
    disk = guest.output / "disk.qcow2"
    before = disk.read_bytes()
    disk.unlink()

    result = guest.run()

    assert result.returncode == 0, result.stderr
    assert "building disk.qcow2" in result.stdout
    assert disk.read_bytes() == before


def test_unknown_argument_rejected(tmp_path: Path) -> None:
    build = GuestBuild(images=tmp_path, cache=tmp_path / "cache")

    result = build.run("--fast")

    assert result.returncode == 1
    assert "unknown argument '--fast'" in result.stderr
    assert not (tmp_path / "tiny").exists()


def test_offline_without_cached_kernel_fails(tmp_path: Path) -> None:
    build = GuestBuild(images=tmp_path, cache=tmp_path / "empty-cache")

    result = build.run()

    assert result.returncode == 1
    assert "is not in the cache" in result.stderr
    assert "--offline forbids downloading it" in result.stderr


@pytest.mark.parametrize("name", ["init", "power-button"])
def test_guest_script_parses(name: str) -> None:
    result = subprocess.run(
        [str(BUSYBOX), "sh", "-n", str(GUEST_DIR / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr


def test_tiny_loadout_names_built_files() -> None:
    loadout = Loadout.model_validate(YAML(typ="safe").load(TINY_LOADOUT.read_text()))
    spec = loadout.spec

    assert loadout.metadata.name == "tiny"
    assert spec.base_image == "/var/lib/agentic-sandbox/images/tiny/disk.qcow2"
    assert spec.kernel == "/var/lib/agentic-sandbox/images/tiny/vmlinuz"
    assert spec.initrd == "/var/lib/agentic-sandbox/images/tiny/initrd.img"
    assert spec.cmdline is not None
    assert "console=ttyS0" in spec.cmdline.split()
