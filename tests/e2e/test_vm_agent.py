"""The agent inside a real virtual machine: the agent guest under libvirt, a real controller.

The guest's root file system is the agentic/agent:dev image (images/vm/build-agent-guest.sh).
It reaches the agent server through QEMU's user-mode network, where 10.0.2.2 is the host's
loopback, so the server listens on no address other than 127.0.0.1 for it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.conftest import REPO_ROOT, missing_component, require_docker
from tests.e2e.controller_process import ControllerProcess, wait_for
from tests.vm_support import LIBVIRT_URI, remove_domains

pytestmark = [pytest.mark.libvirt, pytest.mark.docker, pytest.mark.slow]

AGENT_GUEST = Path("/var/lib/agentic-sandbox/images/agent")
# A cold agent image build runs debootstrap (minutes); the guest build itself takes seconds.
BUILD_TIMEOUT_SECONDS = 1800
# The guest boots and registers in seconds under TCG; the bound covers a loaded machine.
BOOT_SECONDS = 300
GUEST_KERNEL_SUFFIX = "-cloud-amd64"

VM_MANIFEST = """\
apiVersion: sandbox.agentic.dev/v1alpha1
kind: Instance
metadata:
  name: {name}
spec:
  runtime: libvirt
  loadout: agent
  terminationGracePeriodSeconds: 60
"""


def _build(script: Path) -> None:
    result = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        pytest.fail(f"{script} failed:\n{result.stdout}{result.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def agent_guest() -> Path:
    """Build agentic/agent:dev and the agent guest on it; both skip work that is up to date."""
    require_docker()
    try:
        libvirt.open(LIBVIRT_URI).close()
    except libvirt.libvirtError as error:
        missing_component(f"libvirtd does not respond at {LIBVIRT_URI}: {error}")
    _build(REPO_ROOT / "images" / "agent" / "build.sh")
    _build(REPO_ROOT / "images" / "vm" / "build-agent-guest.sh")
    return AGENT_GUEST


@pytest.fixture
def controller(agent_guest: Path, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()
        remove_domains(process.controller_id)


def condition(controller: ControllerProcess, name: str, type_: str) -> dict[str, Any]:
    instance = controller.instance(name) or {}
    for item in instance.get("status", {}).get("conditions", []):
        if item["type"] == type_:
            return dict(item)
    raise AssertionError(f"instance {name} has no {type_} condition: {instance}")


def serial_text(controller: ControllerProcess, name: str) -> str:
    instance = controller.instance(name) or {}
    path = instance.get("status", {}).get("runtimeRef", {}).get("details", {}).get("serialLog")
    if not path or not Path(path).exists():
        return ""
    return Path(path).read_text(errors="replace")


def apply_vm(controller: ControllerProcess, name: str) -> None:
    path = controller.manifests.parent / f"{name}.yaml"
    path.write_text(VM_MANIFEST.format(name=name))
    applied = controller.sandboxctl("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr


def wait_ready(controller: ControllerProcess, name: str) -> None:
    waited = controller.sandboxctl(
        "wait", "--for=condition=Ready", f"--timeout={BOOT_SECONDS}s", name
    )
    assert waited.returncode == 0, f"{waited.stderr}\nserial log:\n{serial_text(controller, name)}"


def agent_events(controller: ControllerProcess, name: str, event: str) -> list[dict[str, Any]]:
    return [e for e in controller.events(f"default/{name}") if e["name"] == event]


def test_vm_agent_ready_and_exec(controller: ControllerProcess) -> None:
    name = f"vmagent-{controller.controller_id[-6:]}"
    apply_vm(controller, name)
    wait_ready(controller, name)

    # Ready only after the agent in the guest registered.
    registered = agent_events(controller, name, "agent.registered")
    assert registered, "Ready without an agent.registered event"
    assert condition(controller, name, "AgentConnected")["status"] == "True"
    ready = condition(controller, name, "Ready")
    assert ready["lastTransitionTime"] >= registered[0]["time"][:19]
    instance = controller.instance(name) or {}
    assert instance["status"]["runtimeRef"]["runtime"] == "libvirt"

    uname = controller.sandboxctl("exec", name, "--", "uname", "-a")
    assert uname.returncode == 0, uname.stderr
    assert uname.stdout.startswith("Linux ")
    assert GUEST_KERNEL_SUFFIX in uname.stdout, "the command ran outside the guest's kernel"

    failing = controller.sandboxctl("exec", name, "--", "sh", "-c", "echo oops >&2; exit 3")
    assert failing.returncode == 3
    assert failing.stderr == "oops\n"

    # The guest dials the server's loopback listener as 10.0.2.2, and commands get no secret.
    server = f"10.0.2.2:{controller.grpc_port}"
    env = controller.sandboxctl("exec", name, "--", "env")
    assert env.returncode == 0, env.stderr
    assert f"MANAGEMENT_SERVER={server}\n" in env.stdout
    assert "AGENT_SECRET" not in env.stdout
    whoami = controller.sandboxctl("exec", name, "--", "id", "-un")
    assert whoami.stdout == "agent\n"
    probe = (
        "import socket, sys; "
        "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close(); "
        "print('connected')"
    )
    connected = controller.sandboxctl(
        "exec", name, "--", "python3", "-c", probe, "10.0.2.2", str(controller.grpc_port)
    )
    assert connected.returncode == 0, connected.stderr
    assert connected.stdout == "connected\n"


def test_vm_agent_stop_and_start(controller: ControllerProcess) -> None:
    name = f"vmstop-{controller.controller_id[-6:]}"
    apply_vm(controller, name)
    wait_ready(controller, name)

    stopped = controller.sandboxctl("stop", name)
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: controller.phase(name) == "Stopped", timeout=BOOT_SECONDS, what="Stopped")
    log = serial_text(controller, name)
    assert "agentic-sandbox-guest: power button pressed, powering off" in log
    last_exit = (controller.instance(name) or {})["status"]["lastExit"]
    assert last_exit["code"] == 0, f"the guest did not power off by itself: {last_exit}"
    assert condition(controller, name, "Ready")["status"] == "False"

    started = controller.sandboxctl("start", name)
    assert started.returncode == 0, started.stderr
    # The first stream of a sandbox is agent.registered; every stream is agent.connected.
    wait_for(
        lambda: len(agent_events(controller, name, "agent.connected")) >= 2,
        timeout=BOOT_SECONDS,
        what="the agent connecting again after the start",
    )
    wait_ready(controller, name)
    echoed = controller.sandboxctl("exec", name, "--", "echo", "back")
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout == "back\n"
