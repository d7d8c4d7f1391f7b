"""The reconciler over the fake runtime and a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentic_sandbox.controller.desired import HostPolicy
from agentic_sandbox.controller.reconciler import InstanceReconciler
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.controller.verbs import Verb, request_verb
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER
from agentic_sandbox.errors import ImageNotFound, InvalidResource, NotFound, RuntimeUnavailable
from agentic_sandbox.runtimes.base import LABEL_CONTROLLER
from agentic_sandbox.runtimes.fake import FakeClock, FakeRuntime
from agentic_sandbox.store.sqlite import SqliteStore

KEY = "default/web"


class Harness:
    def __init__(self, store: SqliteStore, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime(clock=self.clock.now)
        self.store = store
        self.mount_root = tmp_path / "mounts"
        self.mount_root.mkdir()
        policy = HostPolicy(
            controller_id="ctl-test",
            mount_roots=[self.mount_root],
            workspace_root=tmp_path / "workspaces",
            management_server="host.docker.internal:8120",
        )
        self.reconciler = InstanceReconciler(
            store=store,
            runtime=self.runtime,
            recorder=EventRecorder(store.events),
            policy=policy,
            node="node-1",
            clock=self.clock.now,
        )

    async def create(self, **spec: Any) -> Instance:
        body = {"metadata": {"name": "web"}, "spec": {"image": "agentic/demo:dev", **spec}}
        created = await self.store.create(Instance.model_validate(body))
        assert isinstance(created, Instance)
        return created

    async def get(self) -> Instance:
        found = await self.store.get("Instance", "default", "web")
        assert isinstance(found, Instance)
        return found

    async def edit(self, **spec: Any) -> None:
        instance = await self.get()
        data = instance.spec.model_dump(by_alias=True)
        data.update(spec)
        instance.spec = type(instance.spec).model_validate(data)
        await self.store.update(instance)

    def sandboxes(self) -> list[Any]:
        return list(self.runtime.sandboxes.values())

    async def event_names(self) -> list[str]:
        return [event.name for event in await self.store.events.list(limit=1000)]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await SqliteStore(tmp_path / "state.db").open()
    try:
        yield Harness(store, tmp_path)
    finally:
        await store.close()


async def test_new_instance_created_started_running(harness: Harness) -> None:
    await harness.create()

    result = await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    assert result.requeue_after is None
    assert instance.status.phase == "Running"
    assert RUNTIME_FINALIZER in instance.metadata.finalizers
    assert instance.status.observed_generation == 1
    ready = instance.status.condition("Ready")
    assert ready is not None and ready.status == "True"
    (sandbox,) = harness.sandboxes()
    assert sandbox.labels[LABEL_CONTROLLER] == "ctl-test"
    assert sandbox.spec.env["AGENT_ID"] == "web"
    assert await harness.event_names() == [
        "container.created",
        "container.started",
        "instance.running",
    ]


async def test_second_reconcile_changes_nothing(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    version = (await harness.get()).metadata.resource_version
    calls = len(harness.runtime.calls)

    await harness.reconciler.reconcile(KEY)

    assert (await harness.get()).metadata.resource_version == version
    assert harness.runtime.methods_called()[calls:] == ["list_owned"]


async def test_env_change_recreates(harness: Harness) -> None:
    await harness.create(env={"A": "1"})
    await harness.reconciler.reconcile(KEY)
    (first,) = harness.sandboxes()

    await harness.edit(env={"A": "2"})
    await harness.reconciler.reconcile(KEY)

    (second,) = harness.sandboxes()
    assert second.id != first.id
    assert second.spec.env["A"] == "2"
    assert (await harness.get()).status.observed_generation == 2


async def test_run_strategy_change_keeps_sandbox(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    (first,) = harness.sandboxes()

    await harness.edit(runStrategy="Halted")
    await harness.reconciler.reconcile(KEY)

    (same,) = harness.sandboxes()
    assert same.id == first.id
    assert same.status == "exited"
    assert (await harness.get()).status.phase == "Stopped"


async def test_out_of_band_removal_recreated(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    (first,) = harness.sandboxes()

    harness.runtime.remove_out_of_band(first.id)
    await harness.reconciler.reconcile(KEY)

    (second,) = harness.sandboxes()
    assert second.id != first.id
    assert (await harness.get()).status.phase == "Running"


async def test_exit_restarts_then_backs_off(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    (sandbox,) = harness.sandboxes()

    harness.runtime.exit(sandbox.id, 1)
    await harness.reconciler.reconcile(KEY)
    instance = await harness.get()
    assert instance.status.phase == "Running"
    assert instance.status.restart_count == 1

    harness.clock.advance(2)
    harness.runtime.exit(sandbox.id, 1)
    result = await harness.reconciler.reconcile(KEY)
    instance = await harness.get()
    assert instance.status.phase == "CrashLoopBackOff"
    assert instance.status.last_exit is not None
    assert instance.status.last_exit.code == 1
    assert instance.status.next_retry_at is not None
    assert result.requeue_after is not None
    assert 9 <= result.requeue_after <= 11

    harness.clock.advance(result.requeue_after)
    await harness.reconciler.reconcile(KEY)
    instance = await harness.get()
    assert instance.status.phase == "Running"
    assert instance.status.restart_count == 2


async def test_rerun_on_failure_clean_exit_succeeds(harness: Harness) -> None:
    await harness.create(runStrategy="RerunOnFailure")
    await harness.reconciler.reconcile(KEY)
    (sandbox,) = harness.sandboxes()

    harness.runtime.exit(sandbox.id, 0)
    await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    assert instance.status.phase == "Succeeded"
    assert instance.status.restart_count == 0


async def test_once_failure_stays_failed(harness: Harness) -> None:
    await harness.create(runStrategy="Once")
    await harness.reconciler.reconcile(KEY)
    (sandbox,) = harness.sandboxes()

    harness.runtime.exit(sandbox.id, 2)
    await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    assert instance.status.phase == "Failed"
    assert instance.status.last_exit is not None
    assert instance.status.last_exit.code == 2


async def test_oom_kill_reported(harness: Harness) -> None:
    await harness.create(runStrategy="Once")
    await harness.reconciler.reconcile(KEY)
    (sandbox,) = harness.sandboxes()

    harness.runtime.exit(sandbox.id, 137, oom=True)
    await harness.reconciler.reconcile(KEY)

    last_exit = (await harness.get()).status.last_exit
    assert last_exit is not None
    assert last_exit.oom_killed is True
    assert last_exit.reason == "OOMKilled"


async def test_missing_image_stalls_without_hot_loop(harness: Harness) -> None:
    await harness.create()
    harness.runtime.fail_next("create", ImageNotFound("image agentic/demo:dev not found"))

    result = await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    stalled = instance.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == "ImageNotFound"
    assert result.requeue_after == 30
    calls = len(harness.runtime.calls)
    again = await harness.reconciler.reconcile(KEY)
    assert len(harness.runtime.calls) == calls
    assert again.requeue_after is not None

    harness.clock.advance(31)
    await harness.reconciler.reconcile(KEY)
    assert (await harness.get()).status.phase == "Running"


async def test_spec_edit_retries_stalled_at_once(harness: Harness) -> None:
    await harness.create()
    harness.runtime.fail_next("create", ImageNotFound("image agentic/demo:dev not found"))
    await harness.reconciler.reconcile(KEY)

    await harness.edit(env={"FIXED": "yes"})
    await harness.reconciler.reconcile(KEY)

    assert (await harness.get()).status.phase == "Running"


async def test_mount_outside_roots_stalls_naming_field(harness: Harness) -> None:
    await harness.create(mounts=["/etc:/host-etc:ro"])

    await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    stalled = instance.status.condition("Stalled")
    assert stalled is not None and stalled.status == "True"
    assert "spec.mounts[0].hostPath" in stalled.message
    assert "'/etc'" in stalled.message
    assert harness.sandboxes() == []


async def test_missing_host_path_stalls(harness: Harness) -> None:
    missing = harness.mount_root / "absent"
    await harness.create(mounts=[f"{missing}:/data"])

    await harness.reconciler.reconcile(KEY)

    stalled = (await harness.get()).status.condition("Stalled")
    assert stalled is not None and "does not exist" in stalled.message
    assert not missing.exists()


async def test_outage_marks_unknown_and_raises(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    harness.runtime.set_available(False)

    with pytest.raises(RuntimeUnavailable):
        await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    assert instance.status.phase == "Unknown"
    runtime_ready = instance.status.condition("RuntimeReady")
    assert runtime_ready is not None and runtime_ready.status == "Unknown"
    assert len(harness.sandboxes()) == 1


async def test_deletion_removes_sandbox_then_record(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)

    await harness.store.delete("Instance", "default", "web")
    await harness.reconciler.reconcile(KEY)

    assert harness.sandboxes() == []
    with pytest.raises(NotFound):
        await harness.get()
    assert "instance.deleted" in await harness.event_names()


async def test_deletion_during_outage_keeps_record(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    await harness.store.delete("Instance", "default", "web")
    harness.runtime.set_available(False)

    with pytest.raises(RuntimeUnavailable):
        await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    assert instance.metadata.deletion_timestamp is not None
    assert instance.status.phase == "Terminating"
    assert instance.status.message is not None
    reconciling = instance.status.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "RuntimeUnavailable"
    assert len(harness.sandboxes()) == 1


async def request(harness: Harness, verb: str, grace: int | None = None) -> None:
    await request_verb(
        harness.store,
        EventRecorder(harness.store.events),
        namespace="default",
        name="web",
        verb=Verb(verb),
        grace_seconds=grace,
        requested_by="test",
    )


async def test_stop_verb_halts_and_keeps_container(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    (first,) = harness.sandboxes()

    await request(harness, "stop", grace=0)
    await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    assert instance.spec.run_strategy == "Halted"
    assert instance.status.phase == "Stopped"
    (same,) = harness.sandboxes()
    assert same.id == first.id
    assert ("stop", first.id) in [(c.method, c.target) for c in harness.runtime.calls]


async def test_stop_records_phase_change(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    await request(harness, "stop", grace=0)
    await harness.reconciler.reconcile(KEY)

    events = await harness.store.events.list(limit=1000)
    changes = [event for event in events if event.name == "instance.phase_changed"]
    assert [event.reason for event in changes] == ["Stopped"]
    assert "was Running" in changes[0].message


async def test_start_verb_restores_strategy(harness: Harness) -> None:
    await harness.create(runStrategy="RerunOnFailure")
    await harness.reconciler.reconcile(KEY)
    await request(harness, "stop")
    await harness.reconciler.reconcile(KEY)

    await request(harness, "start")
    await harness.reconciler.reconcile(KEY)

    instance = await harness.get()
    assert instance.spec.run_strategy == "RerunOnFailure"
    assert instance.status.phase == "Running"
    assert len(harness.sandboxes()) == 1


async def test_restart_verb_keeps_container_id(harness: Harness) -> None:
    await harness.create()
    await harness.reconciler.reconcile(KEY)
    (first,) = harness.sandboxes()
    calls = len(harness.runtime.calls)

    await request(harness, "restart")
    await harness.reconciler.reconcile(KEY)
    await harness.reconciler.reconcile(KEY)

    methods = harness.runtime.methods_called()[calls:]
    assert methods.count("stop") == 1
    assert methods.count("start") == 1
    (same,) = harness.sandboxes()
    assert same.id == first.id
    instance = await harness.get()
    assert instance.status.phase == "Running"
    assert instance.status.handled_request is not None


async def test_manual_start_and_stop_verbs(harness: Harness) -> None:
    await harness.create(runStrategy="Manual")
    await harness.reconciler.reconcile(KEY)
    assert (await harness.get()).status.phase == "Stopped"

    await request(harness, "start")
    await harness.reconciler.reconcile(KEY)
    assert (await harness.get()).status.phase == "Running"

    await request(harness, "stop")
    await harness.reconciler.reconcile(KEY)
    assert (await harness.get()).status.phase == "Stopped"


async def test_restart_of_halted_instance_rejected(harness: Harness) -> None:
    await harness.create(runStrategy="Halted")

    with pytest.raises(InvalidResource, match="use start"):
        await request(harness, "restart")
