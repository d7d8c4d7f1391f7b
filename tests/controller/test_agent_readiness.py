"""Ready and AgentConnected, written by the reconciler from what the agent tracker knows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentic_sandbox.controller.agent_identity import (
    LABEL_AGENT_SECRET_SHA256,
    LABEL_IMAGE_CARRIES_AGENT,
    secret_digest,
)
from agentic_sandbox.controller.agent_tracker import AgentTracker
from agentic_sandbox.controller.desired import AGENT_SOCKET_MOUNT, HostPolicy
from agentic_sandbox.controller.reconciler import InstanceReconciler
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.runtimes.fake import FakeClock, FakeRuntime
from agentic_sandbox.store.sqlite import SqliteStore

KEY = "default/web"


class Harness:
    def __init__(self, store: SqliteStore, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime(clock=self.clock.now)
        self.store = store
        self.enqueued: list[str] = []
        self.tracker = AgentTracker(enqueue=self.enqueued.append)
        self.socket_dir = tmp_path / "agent"
        policy = HostPolicy(
            controller_id="ctl-test",
            mount_roots=[tmp_path],
            workspace_root=tmp_path / "workspaces",
            management_server="host.docker.internal:8120",
            agent_socket_dir=self.socket_dir,
        )
        self.reconciler = InstanceReconciler(
            store=store,
            runtime=self.runtime,
            recorder=EventRecorder(store.events),
            policy=policy,
            node="node-1",
            clock=self.clock.now,
            agents=self.tracker,
        )

    async def create(self, **spec: object) -> None:
        body = {"metadata": {"name": "web"}, "spec": {"image": "agentic/agent:dev", **spec}}
        await self.store.create(Instance.model_validate(body))

    async def get(self) -> Instance:
        found = await self.store.get("Instance", "default", "web")
        assert isinstance(found, Instance)
        return found

    def mark_agent_image(self) -> None:
        """Give the sandbox the label an agent image would pass on to its container."""
        for sandbox in self.runtime.sandboxes.values():
            sandbox.labels[LABEL_IMAGE_CARRIES_AGENT] = "true"

    async def condition(self, type_: str) -> tuple[str, str]:
        condition = (await self.get()).status.condition(type_)
        assert condition is not None
        return condition.status, condition.reason


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await SqliteStore(tmp_path / "state.db").open()
    try:
        yield Harness(store, tmp_path)
    finally:
        await store.close()


async def test_secret_injected_and_only_digest_labelled(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)

    (sandbox,) = harness.runtime.sandboxes.values()
    secret = sandbox.spec.env["AGENT_SECRET"]
    assert len(bytes.fromhex(secret)) == 32
    assert sandbox.labels[LABEL_AGENT_SECRET_SHA256] == secret_digest(secret)
    assert secret not in (await harness.get()).model_dump_json()
    assert harness.tracker.authenticate("web", secret) is not None


async def test_image_without_agent_is_ready_when_running(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)

    assert await harness.condition("Ready") == ("True", "Running")
    assert await harness.condition("AgentConnected") == ("Unknown", "NoAgentInImage")


async def test_agent_image_waits_for_agent(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    harness.mark_agent_image()
    await harness.reconciler.reconcile(KEY)

    assert await harness.condition("RuntimeReady") == ("True", "Running")
    assert await harness.condition("AgentConnected") == ("False", "NotConnected")
    assert await harness.condition("Ready") == ("False", "AgentNotConnected")


async def test_connected_agent_makes_ready(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    harness.mark_agent_image()
    (sandbox,) = harness.runtime.sandboxes.values()
    expected = harness.tracker.authenticate("web", sandbox.spec.env["AGENT_SECRET"])
    assert expected is not None
    harness.tracker.connect(expected, connection_id="c", close=lambda reason: None)
    await harness.reconciler.reconcile(KEY)

    assert await harness.condition("AgentConnected") == ("True", "Connected")
    assert await harness.condition("Ready") == ("True", "Running")
    status = (await harness.get()).status
    assert status.agent is not None
    assert status.agent.id == "web"
    assert status.agent.connected_at is not None

    harness.tracker.disconnect(KEY, "c", "the agent closed the stream")
    await harness.reconciler.reconcile(KEY)
    assert await harness.condition("Ready") == ("False", "AgentDisconnected")
    assert (await harness.get()).status.phase == "Running"


async def test_recreate_rotates_secret(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    (first,) = harness.runtime.sandboxes.values()
    old_secret = first.spec.env["AGENT_SECRET"]

    instance = await harness.get()
    instance.spec.env = {"CHANGED": "1"}
    await harness.store.update(instance)
    await harness.reconciler.reconcile(KEY)

    (second,) = harness.runtime.sandboxes.values()
    assert second.spec.env["AGENT_SECRET"] != old_secret
    assert harness.tracker.authenticate("web", old_secret) is None
    assert harness.tracker.authenticate("web", second.spec.env["AGENT_SECRET"]) is not None


async def test_network_none_gets_unix_socket(harness: Harness) -> None:
    await harness.create(network="none")
    await harness.reconciler.reconcile(KEY)

    (sandbox,) = harness.runtime.sandboxes.values()
    assert sandbox.spec.env["MANAGEMENT_SERVER"] == f"unix://{AGENT_SOCKET_MOUNT}/agent.sock"
    mount = next(m for m in sandbox.spec.mounts if m.path == AGENT_SOCKET_MOUNT)
    assert mount.host_path == str(harness.socket_dir)
    assert mount.read_only


async def test_deleted_instance_forgets_agent(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    (sandbox,) = harness.runtime.sandboxes.values()
    secret = sandbox.spec.env["AGENT_SECRET"]
    await harness.store.delete("Instance", "default", "web")
    await harness.reconciler.reconcile(KEY)

    assert harness.tracker.authenticate("web", secret) is None
