"""The agent server address that virtual machines on QEMU's user-mode network dial."""

from __future__ import annotations

import pytest

from agentic_sandbox.app import vm_agent_address
from agentic_sandbox.controller.config import Settings


def test_default_hosts_give_user_network_address() -> None:
    assert vm_agent_address(Settings(grpc_port=9120)) == "10.0.2.2:9120"


@pytest.mark.parametrize("hosts", [["127.0.0.1", "172.17.0.1"], ["0.0.0.0"], ["localhost"]])
def test_hosts_with_loopback_give_address(hosts: list[str]) -> None:
    assert vm_agent_address(Settings(grpc_port=8120, agent_hosts=hosts)) == "10.0.2.2:8120"


def test_hosts_without_loopback_give_none(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(agent_hosts=["172.17.0.1"])
    assert vm_agent_address(settings) is None
    assert "virtual machines cannot reach it" in caplog.text
