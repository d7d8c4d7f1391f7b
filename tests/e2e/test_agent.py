"""The in-sandbox agent against a real controller, the real Docker Engine and agentic/agent:dev."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from agentic_sandbox.agent.proto.agent.v1 import agent_pb2 as pb
from agentic_sandbox.agent.rpc import METADATA_AGENT_ID, METADATA_AGENT_SECRET, connect_call
from tests.conftest import REPO_ROOT, require_docker
from tests.e2e.controller_process import ControllerProcess, free_port, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

AGENT_IMAGE = "agentic/agent:dev"
# A cold build runs debootstrap, which takes minutes; a cached one takes seconds.
BUILD_TIMEOUT_SECONDS = 1800


def manifest(name: str, *, network: str = "bridge") -> str:
    # The long restart delay keeps a killed agent down for the test's whole run.
    return f"""\
apiVersion: sandbox.agentic.dev/v1alpha1
kind: Instance
metadata:
  name: {name}
spec:
  image: {AGENT_IMAGE}
  network: {network}
  env:
    AGENT_RESTART_DELAY_SECONDS: "600"
"""


@pytest.fixture(scope="session")
def agent_image() -> str:
    require_docker()
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "images" / "agent" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        pytest.fail(f"images/agent/build.sh failed:\n{result.stdout}{result.stderr}", pytrace=False)
    return AGENT_IMAGE


@pytest.fixture
def controller(agent_image: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    process = ControllerProcess(tmp_path)
    process.grpc_port = free_port()  # type: ignore[attr-defined]
    process.extra_args = ["--grpc-port", str(process.grpc_port)]  # type: ignore[attr-defined]
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


def condition(controller: ControllerProcess, name: str, type_: str) -> dict[str, Any] | None:
    instance = controller.instance(name) or {}
    for item in instance.get("status", {}).get("conditions", []):
        if item["type"] == type_:
            return dict(item)
    return None


def container_secret(controller: ControllerProcess, name: str) -> str:
    container = wait_for(lambda: controller.running_container(name), what=f"container of {name}")
    env = controller.docker.inspect_container(container["Id"])["Config"]["Env"]
    return next(item.split("=", 1)[1] for item in env if item.startswith("AGENT_SECRET="))


def _log_with(controller: ControllerProcess, text: str) -> str | None:
    log = controller.log_path.read_text()
    return log if text in log else None


def open_stream(port: int, agent_id: str, secret: str) -> grpc.StatusCode:
    async def attempt() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = connect_call(channel)(
                metadata=((METADATA_AGENT_ID, agent_id), (METADATA_AGENT_SECRET, secret))
            )
            try:
                await call.write(pb.AgentMessage(register=pb.Register(agent_id=agent_id)))
                message = await call.read()
            except grpc.aio.AioRpcError:
                # The server may end the call before the first message is sent: the call's
                # final status is the answer either way.
                return await call.code()
            call.cancel()
            return grpc.StatusCode.OK if message is not grpc.aio.EOF else grpc.StatusCode.UNKNOWN

    return asyncio.run(attempt())


def test_agent_instance_ready_exec_and_failure(controller: ControllerProcess) -> None:
    controller.write_manifest("worker.yaml", manifest("worker"))

    waited = controller.sandboxctl("wait", "--for=condition=Ready", "--timeout=120s", "worker")
    assert waited.returncode == 0, waited.stderr

    # Ready only after the agent registered.
    names = [event["name"] for event in controller.events("default/worker")]
    assert "agent.registered" in names
    agent_connected = condition(controller, "worker", "AgentConnected")
    assert agent_connected is not None
    assert agent_connected["status"] == "True"
    ready = condition(controller, "worker", "Ready")
    assert ready is not None
    registered = next(
        e for e in controller.events("default/worker") if e["name"] == "agent.registered"
    )
    assert ready["lastTransitionTime"] >= registered["time"][:19]

    uname = controller.sandboxctl("exec", "worker", "--", "uname", "-a")
    assert uname.returncode == 0, uname.stderr
    assert uname.stdout.startswith("Linux ")

    failing = controller.sandboxctl("exec", "worker", "--", "sh", "-c", "echo oops >&2; exit 3")
    assert failing.returncode == 3
    assert failing.stderr == "oops\n"

    missing = controller.sandboxctl("exec", "worker", "--", "no-such-program")
    assert missing.returncode == 127


def test_secret_never_leaves(controller: ControllerProcess) -> None:
    controller.write_manifest("quiet.yaml", manifest("quiet"))
    waited = controller.sandboxctl("wait", "--for=condition=Ready", "--timeout=120s", "quiet")
    assert waited.returncode == 0, waited.stderr
    secret = container_secret(controller, "quiet")

    described = controller.sandboxctl("describe", "instance", "quiet")
    assert described.returncode == 0, described.stderr
    env_output = controller.sandboxctl("exec", "quiet", "--", "env")
    assert env_output.returncode == 0
    listed = controller.client.get("/api/v1/instances").text
    events = json.dumps(controller.events())

    wrong = "f" * 64
    code = open_stream(controller.grpc_port, "quiet", wrong)  # type: ignore[attr-defined]
    assert code == grpc.StatusCode.UNAUTHENTICATED
    log = wait_for(
        lambda: _log_with(controller, "agent rejected"),
        what="the rejected attempt in the controller log",
    )
    assert "agent rejected agent_id='quiet'" in log
    for where, text in [
        ("describe", described.stdout),
        ("exec env", env_output.stdout),
        ("instance list", listed),
        ("events", events),
        ("controller log", log),
    ]:
        assert secret not in text, where
        assert wrong not in text, where


def test_other_instance_secret_rejected(controller: ControllerProcess) -> None:
    controller.write_manifest("one.yaml", manifest("one"))
    controller.write_manifest("two.yaml", manifest("two"))
    for name in ("one", "two"):
        waited = controller.sandboxctl("wait", "--for=condition=Ready", "--timeout=120s", name)
        assert waited.returncode == 0, waited.stderr
    secret_of_two = container_secret(controller, "two")

    code = open_stream(controller.grpc_port, "one", secret_of_two)  # type: ignore[attr-defined]

    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_killed_agent_turns_ready_false(controller: ControllerProcess) -> None:
    controller.write_manifest("fragile.yaml", manifest("fragile"))
    waited = controller.sandboxctl("wait", "--for=condition=Ready", "--timeout=120s", "fragile")
    assert waited.returncode == 0, waited.stderr
    container = controller.running_container("fragile")
    assert container is not None

    exec_id = controller.docker.exec_create(
        container["Id"], ["sh", "-c", "kill -KILL $(pgrep -f /usr/local/bin/sandbox-agent)"]
    )
    controller.docker.exec_start(exec_id)

    ready = wait_for(
        lambda: (c := condition(controller, "fragile", "Ready")) and c["status"] == "False" and c,
        what="Ready False after the agent died",
    )
    assert ready["reason"] == "AgentDisconnected"
    assert controller.running_container("fragile") is not None
    assert controller.phase("fragile") == "Running"


def test_network_none_reaches_server_by_socket(controller: ControllerProcess) -> None:
    controller.write_manifest("sealed.yaml", manifest("sealed", network="none"))
    waited = controller.sandboxctl("wait", "--for=condition=Ready", "--timeout=120s", "sealed")
    assert waited.returncode == 0, waited.stderr

    result = controller.sandboxctl("exec", "sealed", "--", "sh", "-c", "echo $MANAGEMENT_SERVER")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unix:///run/agentic-sandbox/agent.sock"
