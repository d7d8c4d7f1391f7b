"""The agent settings of a virtual machine's SandboxSpec: the agent label and MANAGEMENT_SERVER."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentic_sandbox.controller.agent_identity import LABEL_IMAGE_CARRIES_AGENT, carries_agent
from agentic_sandbox.controller.desired import HostPolicy, build_sandbox_spec
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.loadout import LoadoutSpec
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout
from agentic_sandbox.errors import InvalidRuntimeSpec

VM_SERVER = "10.0.2.2:8120"


def policy(tmp_path: Path, *, vm_management_server: str | None = VM_SERVER) -> HostPolicy:
    return HostPolicy(
        controller_id="ctl-test",
        mount_roots=[tmp_path],
        workspace_root=tmp_path / "workspaces",
        management_server="host.docker.internal:8120",
        vm_management_server=vm_management_server,
    )


def loadout(*, agent: bool | None, mode: str = "user") -> ResolvedLoadout:
    spec: dict[str, Any] = {"baseImage": "/images/agent.qcow2", "network": {"mode": mode}}
    if agent is not None:
        spec["agent"] = agent
    return ResolvedLoadout(name="agent", chain=("agent",), spec=LoadoutSpec.model_validate(spec))


def instance() -> Instance:
    body = {"metadata": {"name": "vm"}, "spec": {"runtime": "libvirt", "loadout": "agent"}}
    return Instance.model_validate(body)


def test_agent_loadout_labels_sandbox(tmp_path: Path) -> None:
    spec = build_sandbox_spec(
        instance(), policy(tmp_path), loadout(agent=True), agent_secret="s" * 64
    )
    assert spec.labels[LABEL_IMAGE_CARRIES_AGENT] == "true"
    assert carries_agent(spec.labels)
    assert spec.env["MANAGEMENT_SERVER"] == VM_SERVER
    assert spec.env["AGENT_ID"] == "vm"
    assert spec.env["AGENT_SECRET"] == "s" * 64


@pytest.mark.parametrize("agent", [False, None])
def test_plain_loadout_has_no_agent_label(tmp_path: Path, agent: bool | None) -> None:
    spec = build_sandbox_spec(instance(), policy(tmp_path), loadout(agent=agent))
    assert LABEL_IMAGE_CARRIES_AGENT not in spec.labels
    # A guest that installs the agent itself can still dial the server.
    assert spec.env["MANAGEMENT_SERVER"] == VM_SERVER


@pytest.mark.parametrize("mode", ["libvirt", "isolated"])
def test_plain_vm_off_user_network_has_no_server(tmp_path: Path, mode: str) -> None:
    spec = build_sandbox_spec(instance(), policy(tmp_path), loadout(agent=None, mode=mode))
    assert "MANAGEMENT_SERVER" not in spec.env
    assert spec.env["AGENT_ID"] == "vm"


@pytest.mark.parametrize("mode", ["libvirt", "isolated"])
def test_agent_vm_off_user_network_rejected(tmp_path: Path, mode: str) -> None:
    with pytest.raises(InvalidRuntimeSpec) as raised:
        build_sandbox_spec(instance(), policy(tmp_path), loadout(agent=True, mode=mode))
    message = str(raised.value)
    assert f"network mode '{mode}'" in message
    assert "network.mode to user" in message
    assert raised.value.field == "spec.loadout"
    assert raised.value.retryable is False


def test_agent_vm_without_loopback_listener_rejected(tmp_path: Path) -> None:
    no_loopback = policy(tmp_path, vm_management_server=None)
    with pytest.raises(InvalidRuntimeSpec) as raised:
        build_sandbox_spec(instance(), no_loopback, loadout(agent=True))
    assert "does not listen on 127.0.0.1" in str(raised.value)
    assert "AGENTIC_SANDBOX_AGENT_HOSTS" in str(raised.value)


def test_container_env_unchanged_by_vm_server(tmp_path: Path) -> None:
    body = {"metadata": {"name": "web"}, "spec": {"image": "agentic/agent:dev"}}
    spec = build_sandbox_spec(Instance.model_validate(body), policy(tmp_path))
    assert spec.env["MANAGEMENT_SERVER"] == "host.docker.internal:8120"
    assert LABEL_IMAGE_CARRIES_AGENT not in spec.labels
