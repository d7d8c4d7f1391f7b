"""Fixtures for the runtime driver tests: a busybox image, labelled cleanup, a socket proxy,
and for the libvirt driver a VM directory and domain names that are cleaned up.

Every container and network a test creates carries ``agentic-test.run=<run id>`` and its own
controller id, and the finalizers remove exactly those, so tests can share the Docker Engine
with other users. Every domain a libvirt test defines has a name starting with the test's own
prefix, and the finalizer removes exactly those domains and their directories.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import libvirt  # type: ignore[import-untyped]
import pytest

from agentic_sandbox.runtimes.base import LABEL_CONTROLLER
from agentic_sandbox.runtimes.docker import DockerRuntime
from tests.runtimes.support import RUN_ID, RUN_LABEL, SocketProxy

BUSYBOX = Path("/bin/busybox")


def _busybox_rootfs() -> bytes:
    """Return a tar of a root file system with busybox and a symlink for each of its applets."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    """A plain docker-py client for setting up and checking what the driver did."""
    client = docker.APIClient(version="auto", timeout=30)
    yield client
    for container in client.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"}):
        client.remove_container(container["Id"], force=True, v=True)
    for network in client.networks(filters={"label": f"{RUN_LABEL}={RUN_ID}"}):
        client.remove_network(network["Id"])
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_api: docker.APIClient) -> Iterator[str]:
    """A tiny image imported from the host's static busybox, removed after the session."""
    repository = "agentic-test/busybox"
    tag = RUN_ID
    docker_api.import_image_from_data(
        _busybox_rootfs(), repository=repository, tag=tag, changes=['CMD ["sh"]']
    )
    image = f"{repository}:{tag}"
    yield image
    # The session's containers go first, so the image is no longer in use.
    for container in docker_api.containers(all=True, filters={"ancestor": image}):
        docker_api.remove_container(container["Id"], force=True, v=True)
    docker_api.remove_image(image, force=True)


@pytest.fixture
def controller_id(docker_api: docker.APIClient) -> Iterator[str]:
    """A controller id unique to the test; its containers are removed afterwards."""
    value = f"test-{uuid.uuid4().hex[:10]}"
    yield value
    for container in docker_api.containers(
        all=True, filters={"label": f"{LABEL_CONTROLLER}={value}"}
    ):
        docker_api.remove_container(container["Id"], force=True, v=True)


@pytest.fixture
async def runtime() -> AsyncIterator[DockerRuntime]:
    driver = DockerRuntime(call_timeout=20.0)
    yield driver
    await driver.close()


@pytest.fixture
async def socket_proxy() -> AsyncIterator[SocketProxy]:
    # A short directory, because a unix socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="as-proxy-") as directory:
        proxy = SocketProxy(Path(directory) / "docker.sock")
        await proxy.start()
        yield proxy
        await proxy.stop()


LIBVIRT_URI = "qemu:///system"


@pytest.fixture(scope="session")
def libvirt_vm_dir() -> Iterator[Path]:
    """A VM directory for the session under /var/tmp, which QEMU's user can traverse.

    pytest's tmp_path is below a mode 0700 directory, where QEMU could not open a disk.
    """
    directory = Path(tempfile.mkdtemp(prefix=f"agentic-sandbox-test-{RUN_ID}-", dir="/var/tmp"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def domain_prefix(libvirt_vm_dir: Path) -> Iterator[str]:
    """A domain name prefix unique to the test; its domains and their directories go after it."""
    prefix = f"astest-{uuid.uuid4().hex[:8]}"
    yield prefix
    remove_test_domains(LIBVIRT_URI, prefix)
    for directory in libvirt_vm_dir.glob(f"{prefix}*"):
        shutil.rmtree(directory, ignore_errors=True)


def remove_test_domains(uri: str, prefix: str) -> None:
    """Destroy and undefine every domain on ``uri`` whose name starts with ``prefix``."""
    try:
        connection = libvirt.open(uri)
    except libvirt.libvirtError:
        return  # libvirtd is not there, so the test defined nothing
    try:
        for domain in connection.listAllDomains(0):
            if not domain.name().startswith(prefix):
                continue
            if domain.isActive():
                domain.destroy()
            domain.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            )
    finally:
        connection.close()
