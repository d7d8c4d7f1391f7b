"""The garbage collector over the fake runtime, a real SQLite store and real directories."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentic_sandbox.controller.config import Settings
from agentic_sandbox.controller.desired import (
    WORKSPACE_OWNER_FILE,
    HostPolicy,
    build_sandbox_spec,
)
from agentic_sandbox.controller.gc import (
    GarbageCollector,
    GcReason,
    GcSettings,
    TargetType,
    wait_for_stop,
)
from agentic_sandbox.controller.manager import Controller
from agentic_sandbox.controller.metrics import ControllerMetrics
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.crds.meta import RUNTIME_FINALIZER
from agentic_sandbox.errors import RuntimeAPIError, StoreUnavailable
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_INSTANCE,
    LABEL_UID,
    SandboxSpec,
    SandboxState,
)
from agentic_sandbox.runtimes.fake import FakeClock, FakeRuntime
from agentic_sandbox.store.base import ListResult
from agentic_sandbox.store.sqlite import SqliteStore

CONTROLLER_ID = "ctl-a"
OTHER_CONTROLLER_ID = "ctl-b"
GRACE = 60.0
ORPHANED_AGE = 3600.0
GONE_UID = "00000000-0000-0000-0000-00000000dead"


class Harness:
    def __init__(self, store: SqliteStore, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime(clock=self.clock.now)
        self.store = store
        self.metrics = ControllerMetrics()
        self.workspace_root = tmp_path / "workspaces"
        self.workspace_root.mkdir()
        self.outside = tmp_path / "outside"
        self.outside.mkdir()

    def collector(self, **settings: Any) -> GarbageCollector:
        values: dict[str, Any] = {"creation_grace": GRACE, "orphaned_age": ORPHANED_AGE}
        values.update(settings)
        return GarbageCollector(
            store=self.store,
            runtime=self.runtime,
            recorder=EventRecorder(self.store.events),
            metrics=self.metrics,
            controller_id=CONTROLLER_ID,
            workspace_root=self.workspace_root,
            settings=GcSettings(**values),
            clock=self.clock.now,
        )

    async def instance(self, name: str = "web") -> Instance:
        body = {"metadata": {"name": name}, "spec": {"image": "agentic/demo:dev"}}
        created = await self.store.create(Instance.model_validate(body))
        assert isinstance(created, Instance)
        return created

    async def container(
        self,
        name: str,
        *,
        uid: str | None = None,
        controller: str | None = CONTROLLER_ID,
        running: bool = True,
        stopped: bool = False,
    ) -> SandboxState:
        """Create a container; ``uid`` None with ``controller`` None makes a marker-only one."""
        labels: dict[str, str] = {}
        if controller is not None:
            labels[LABEL_CONTROLLER] = controller
            labels[LABEL_INSTANCE] = f"default/{name}"
        if uid is not None:
            labels[LABEL_UID] = uid
        created = await self.runtime.create(SandboxSpec(name=name, image="img", labels=labels))
        if running or stopped:
            await self.runtime.start(created.id)
        if stopped:
            await self.runtime.stop(created.id, 10)
        return created

    def ids(self) -> set[str]:
        return set(self.runtime.sandboxes)

    async def events(self) -> list[Any]:
        return list(await self.store.events.list(limit=1000))

    def workspace(
        self, name: str, *, uid: str = GONE_UID, controller: str = CONTROLLER_ID, age: float = 0
    ) -> Path:
        """Create ``root/default/<name>`` with an owner file written ``age`` seconds ago."""
        path = self.workspace_root / "default" / name
        path.mkdir(parents=True)
        (path / "data.txt").write_text("agent output")
        write_owner(path, controller=controller, uid=uid)
        stamp = self.clock.now().timestamp() - age
        os.utime(path / WORKSPACE_OWNER_FILE, (stamp, stamp))
        return path


def write_owner(path: Path, *, controller: str, uid: str) -> None:
    owner = {"controller": controller, "uid": uid, "instance": f"default/{path.name}"}
    (path / WORKSPACE_OWNER_FILE).write_text(json.dumps(owner))


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await SqliteStore(tmp_path / "state.db").open()
    try:
        yield Harness(store, tmp_path)
    finally:
        await store.close()


# Containers of this controller.


async def test_owned_orphan_removed_after_grace(harness: Harness) -> None:
    orphan = await harness.container("web", uid=GONE_UID)
    harness.clock.advance(GRACE + 1)

    result = await harness.collector().sweep()

    assert harness.ids() == set()
    assert [c.id for c in result.candidates] == [orphan.id]
    assert result.candidates[0].reason == GcReason.INSTANCE_GONE
    assert result.removed(result.candidates[0])
    assert harness.metrics.gc_removals["container"] == 1


async def test_owned_orphan_removal_recorded_as_event(harness: Harness) -> None:
    orphan = await harness.container("web", uid=GONE_UID)
    harness.clock.advance(GRACE + 1)

    await harness.collector().sweep()

    [event] = await harness.events()
    assert event.name == "container.removed"
    assert event.reason == "GarbageCollected"
    assert event.instance == "default/web"
    assert event.uid == GONE_UID
    assert event.details["containerId"] == orphan.id
    assert event.details["cause"] == "InstanceGone"


async def test_owned_orphan_removal_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    orphan = await harness.container("web", uid=GONE_UID)
    harness.clock.advance(GRACE + 1)

    with caplog.at_level(logging.INFO, logger="agentic_sandbox.controller.gc"):
        await harness.collector().sweep()

    [record] = [r for r in caplog.records if r.getMessage().startswith("garbage collected")]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert f"container_id={orphan.id[:12]}" in message
    assert "name=web" in message
    assert "instance=default/web" in message
    assert "reason=InstanceGone" in message


@pytest.mark.parametrize("age", [GRACE / 2, GRACE])
async def test_owned_orphan_young_kept(harness: Harness, age: float) -> None:
    await harness.container("web", uid=GONE_UID)
    harness.clock.advance(age)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert len(harness.ids()) == 1


@pytest.mark.parametrize("stopped", [False, True], ids=["running", "stopped"])
async def test_owned_instance_exists_kept(harness: Harness, stopped: bool) -> None:
    instance = await harness.instance("web")
    await harness.container("web", uid=instance.metadata.uid, stopped=stopped)
    harness.clock.advance(ORPHANED_AGE * 10)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert len(harness.ids()) == 1


async def test_owned_instance_being_deleted_kept(harness: Harness) -> None:
    instance = await harness.instance("web")
    instance.metadata.finalizers.append(RUNTIME_FINALIZER)
    await harness.store.update(instance)
    await harness.store.delete("Instance", "default", "web")
    await harness.container("web", uid=instance.metadata.uid)
    harness.clock.advance(GRACE + 1)

    result = await harness.collector().sweep()

    assert result.candidates == []


async def test_owned_without_uid_kept(harness: Harness) -> None:
    await harness.container("web", uid=None)
    harness.clock.advance(GRACE + 1)

    result = await harness.collector().sweep()

    assert result.candidates == []


async def test_other_controller_kept(harness: Harness) -> None:
    await harness.container("web", uid=GONE_UID, controller=OTHER_CONTROLLER_ID, stopped=True)
    await harness.container("task-x", uid=GONE_UID, controller=OTHER_CONTROLLER_ID, stopped=True)
    harness.clock.advance(ORPHANED_AGE * 10)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert len(harness.ids()) == 2


# Containers with only the agentic-sandbox=true marker.


async def test_unowned_prefixed_stopped_old_removed(harness: Harness) -> None:
    unowned = await harness.container("task-build", controller=None, stopped=True)
    harness.clock.advance(ORPHANED_AGE + 1)

    result = await harness.collector().sweep()

    assert [c.id for c in result.candidates] == [unowned.id]
    assert result.candidates[0].reason == GcReason.UNOWNED_STOPPED
    assert harness.ids() == set()
    [event] = await harness.events()
    assert event.reason == "GarbageCollected"
    assert event.instance is None


async def test_unowned_without_prefix_kept(harness: Harness) -> None:
    await harness.container("build", controller=None, stopped=True)
    harness.clock.advance(ORPHANED_AGE * 10)

    result = await harness.collector().sweep()

    assert result.candidates == []


async def test_unowned_running_kept(harness: Harness) -> None:
    await harness.container("task-build", controller=None, running=True)
    harness.clock.advance(ORPHANED_AGE * 10)

    result = await harness.collector().sweep()

    assert result.candidates == []


async def test_unowned_never_started_kept(harness: Harness) -> None:
    await harness.container("task-build", controller=None, running=False)
    harness.clock.advance(ORPHANED_AGE * 10)

    result = await harness.collector().sweep()

    assert result.candidates == []


@pytest.mark.parametrize("age", [ORPHANED_AGE / 2, ORPHANED_AGE])
async def test_unowned_recently_finished_kept(harness: Harness, age: float) -> None:
    harness.clock.advance(ORPHANED_AGE * 10)  # created long ago
    await harness.container("task-build", controller=None, stopped=True)
    harness.clock.advance(age)

    result = await harness.collector().sweep()

    assert result.candidates == []


async def test_unowned_empty_prefix_disables(harness: Harness) -> None:
    await harness.container("task-build", controller=None, stopped=True)
    harness.clock.advance(ORPHANED_AGE * 10)

    result = await harness.collector(name_prefix="").sweep()

    assert result.candidates == []
    listings = [call.target for call in harness.runtime.calls if call.method == "list_owned"]
    assert listings == [f"{LABEL_CONTROLLER}={CONTROLLER_ID}"]


async def test_unowned_started_after_listing_kept(harness: Harness) -> None:
    unowned = await harness.container("task-build", controller=None, stopped=True)
    harness.clock.advance(ORPHANED_AGE + 1)
    listed = harness.runtime.list_owned

    async def list_then_start(labels: dict[str, str], **options: bool) -> list[SandboxState]:
        states = await listed(labels)
        await harness.runtime.start(unowned.id)  # another tool starts it meanwhile
        return states

    harness.runtime.list_owned = list_then_start  # type: ignore[method-assign]

    result = await harness.collector().sweep()

    assert "started" in result.kept[unowned.id]
    assert harness.ids() == {unowned.id}
    assert await harness.events() == []


# The store listing.


async def test_store_unavailable_removes_nothing(harness: Harness) -> None:
    await harness.container("web", uid=GONE_UID)
    harness.workspace("web", age=GRACE + 1)
    harness.clock.advance(GRACE + 1)
    await harness.store.close()

    with pytest.raises(StoreUnavailable):
        await harness.collector().sweep()

    assert "remove" not in harness.runtime.methods_called()
    assert len(harness.ids()) == 1
    assert (harness.workspace_root / "default" / "web").is_dir()


async def test_store_listed_after_containers(harness: Harness) -> None:
    order: list[str] = []
    listed, store_list = harness.runtime.list_owned, harness.store.list

    async def list_owned(labels: dict[str, str], **options: bool) -> list[SandboxState]:
        order.append("containers")
        return await listed(labels)

    async def list_store(kind: str, **options: Any) -> ListResult:
        order.append("store")
        return await store_list(kind, **options)

    harness.runtime.list_owned = list_owned  # type: ignore[method-assign]
    harness.store.list = list_store  # type: ignore[method-assign]

    await harness.collector().sweep()

    assert order == ["containers", "store"]


async def test_new_instance_after_store_listing_kept(harness: Harness) -> None:
    """An instance and its container created right after the store listing are never judged."""
    created: list[str] = []
    store_list = harness.store.list

    async def list_store(kind: str, **options: Any) -> ListResult:
        listing = await store_list(kind, **options)
        instance = await harness.instance("fresh")
        sandbox = await harness.container("fresh", uid=instance.metadata.uid)
        created.append(sandbox.id)
        harness.clock.advance(GRACE + 1)
        return listing

    harness.store.list = list_store  # type: ignore[method-assign]

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert harness.ids() == set(created)


# Dry run.


async def test_dry_run_lists_reasons_changes_nothing(harness: Harness) -> None:
    owned = await harness.container("web", uid=GONE_UID)
    unowned = await harness.container("task-build", controller=None, stopped=True)
    workspace = harness.workspace("web", age=ORPHANED_AGE + 1)
    harness.clock.advance(ORPHANED_AGE + 1)

    result = await harness.collector().sweep(dry_run=True)

    reasons = {c.id: (c.type, c.reason) for c in result.candidates}
    assert reasons == {
        owned.id: (TargetType.CONTAINER, GcReason.INSTANCE_GONE),
        unowned.id: (TargetType.CONTAINER, GcReason.UNOWNED_STOPPED),
        str(workspace): (TargetType.WORKSPACE, GcReason.INSTANCE_GONE),
    }
    assert all(c.message for c in result.candidates)
    assert not any(result.removed(c) for c in result.candidates)
    assert harness.ids() == {owned.id, unowned.id}
    assert workspace.is_dir()
    assert "remove" not in harness.runtime.methods_called()
    assert await harness.events() == []
    assert sum(harness.metrics.gc_removals.values()) == 0


# Workspace directories.


async def test_workspace_with_owner_removed(harness: Harness) -> None:
    workspace = harness.workspace("web", age=GRACE + 1)

    result = await harness.collector().sweep()

    assert not workspace.exists()
    assert (harness.workspace_root / "default").is_dir()
    assert [c.type for c in result.candidates] == [TargetType.WORKSPACE]
    assert harness.metrics.gc_removals["workspace"] == 1


async def test_workspace_removal_keeps_link_targets(harness: Harness) -> None:
    secret = harness.outside / "secret.txt"
    secret.write_text("host data")
    workspace = harness.workspace("web", age=GRACE + 1)
    (workspace / "to-file").symlink_to(secret)
    (workspace / "to-dir").symlink_to(harness.outside)

    await harness.collector().sweep()

    assert not workspace.exists()
    assert secret.read_text() == "host data"


async def test_workspace_without_owner_kept(harness: Harness) -> None:
    workspace = harness.workspace_root / "default" / "web"
    workspace.mkdir(parents=True)
    harness.clock.advance(ORPHANED_AGE * 10)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert workspace.is_dir()


@pytest.mark.parametrize("content", ["not json", "[]", '{"controller": "ctl-a"}'])
async def test_workspace_invalid_owner_kept(harness: Harness, content: str) -> None:
    workspace = harness.workspace("web", age=GRACE + 1)
    (workspace / WORKSPACE_OWNER_FILE).write_text(content)
    os.utime(workspace / WORKSPACE_OWNER_FILE, (0, 0))

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert workspace.is_dir()


async def test_workspace_other_controller_kept(harness: Harness) -> None:
    workspace = harness.workspace("web", controller=OTHER_CONTROLLER_ID, age=GRACE + 1)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert workspace.is_dir()


async def test_workspace_instance_exists_kept(harness: Harness) -> None:
    instance = await harness.instance("web")
    workspace = harness.workspace("web", uid=str(instance.metadata.uid), age=GRACE + 1)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert workspace.is_dir()


async def test_workspace_same_name_new_instance_kept(harness: Harness) -> None:
    await harness.instance("web")
    workspace = harness.workspace("web", uid=GONE_UID, age=GRACE + 1)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert workspace.is_dir()


async def test_workspace_young_owner_kept(harness: Harness) -> None:
    workspace = harness.workspace("web", age=GRACE / 2)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert workspace.is_dir()


async def test_workspace_symlink_not_followed(harness: Harness) -> None:
    target = harness.outside / "web"
    target.mkdir()
    write_owner(target, controller=CONTROLLER_ID, uid=GONE_UID)
    os.utime(target / WORKSPACE_OWNER_FILE, (0, 0))
    (harness.workspace_root / "default").mkdir()
    (harness.workspace_root / "default" / "web").symlink_to(target)
    (harness.workspace_root / "linked").symlink_to(harness.outside)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert (target / WORKSPACE_OWNER_FILE).is_file()
    assert (harness.workspace_root / "default" / "web").is_symlink()


async def test_workspace_owner_symlink_not_followed(harness: Harness) -> None:
    real_owner = harness.outside / "owner.json"
    real_owner.write_text(json.dumps({"controller": CONTROLLER_ID, "uid": GONE_UID}))
    os.utime(real_owner, (0, 0))
    workspace = harness.workspace_root / "default" / "web"
    workspace.mkdir(parents=True)
    (workspace / WORKSPACE_OWNER_FILE).symlink_to(real_owner)

    result = await harness.collector().sweep()

    assert result.candidates == []
    assert workspace.is_dir()


async def test_workspace_rewritten_after_scan_kept(harness: Harness) -> None:
    workspace = harness.workspace("web", age=GRACE + 1)
    store_list = harness.store.list

    async def list_store(kind: str, **options: Any) -> ListResult:
        # A new instance's reconcile takes the workspace over between the scan and the removal.
        write_owner(workspace, controller=CONTROLLER_ID, uid="new-uid")
        return await store_list(kind, **options)

    harness.store.list = list_store  # type: ignore[method-assign]

    result = await harness.collector().sweep()

    assert workspace.is_dir()
    assert str(workspace) in result.kept


def test_build_sandbox_spec_writes_workspace_owner(tmp_path: Path) -> None:
    policy = HostPolicy(
        controller_id=CONTROLLER_ID,
        mount_roots=[tmp_path],
        workspace_root=tmp_path / "workspaces",
        management_server="host.docker.internal:8120",
    )
    body = {
        "metadata": {"name": "web", "uid": "uid-1"},
        "spec": {"image": "agentic/demo:dev", "agentshare": True},
    }
    instance = Instance.model_validate(body)
    workspace = tmp_path / "workspaces" / "default" / "web"
    workspace.mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    (workspace / WORKSPACE_OWNER_FILE).symlink_to(outside)  # planted by the sandbox

    build_sandbox_spec(instance, policy)

    owner = json.loads((workspace / WORKSPACE_OWNER_FILE).read_text())
    assert owner == {"controller": CONTROLLER_ID, "uid": "uid-1", "instance": "default/web"}
    assert not (workspace / WORKSPACE_OWNER_FILE).is_symlink()
    assert outside.read_text() == "keep"
    assert sorted(path.name for path in workspace.iterdir()) == [WORKSPACE_OWNER_FILE]


# The periodic loop.


class ScriptedWaits:
    """A waiter that records each requested delay and stops after ``passes`` sweeps."""

    def __init__(self, passes: int, before_pass: Any = None) -> None:
        self.delays: list[float] = []
        self.passes = passes
        self.before_pass = before_pass

    async def __call__(self, stopping: asyncio.Event, seconds: float) -> bool:
        self.delays.append(seconds)
        if len(self.delays) > self.passes:
            return True
        if self.before_pass is not None:
            self.before_pass(len(self.delays))
        return False


def loop_collector(harness: Harness, waits: ScriptedWaits, **settings: Any) -> GarbageCollector:
    collector = harness.collector(**settings)
    collector._wait = waits
    return collector


async def test_loop_waits_startup_delay_then_interval(harness: Harness) -> None:
    waits = ScriptedWaits(passes=3)

    await loop_collector(harness, waits, interval=5.0, startup_delay=2.0).run()

    assert waits.delays == [2.0, 5.0, 5.0, 5.0]
    assert harness.metrics.gc_sweeps["succeeded"] == 3


@pytest.mark.parametrize(("interval", "expected"), [(5.0, 30.0), (30.0, 30.0), (90.0, 90.0)])
def test_first_sweep_delay_default(interval: float, expected: float) -> None:
    assert GcSettings(interval=interval).first_sweep_delay == expected


async def test_loop_logs_failure_once_and_recovery(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    outage = {1, 2, 3, 5}
    waits = ScriptedWaits(
        passes=6, before_pass=lambda n: harness.runtime.set_available(n not in outage)
    )

    with caplog.at_level(logging.DEBUG, logger="agentic_sandbox.controller.gc"):
        await loop_collector(harness, waits).run()

    levels = [
        (record.levelno, record.getMessage().split(";")[0])
        for record in caplog.records
        if record.levelno >= logging.INFO and "started" not in record.getMessage()
    ]
    assert levels == [
        (logging.WARNING, "garbage collection failing"),
        (logging.INFO, "garbage collection recovered"),
        (logging.WARNING, "garbage collection failing"),
        (logging.INFO, "garbage collection recovered"),
    ]
    assert harness.metrics.gc_sweeps == {"failed": 4, "succeeded": 2}


async def test_loop_removal_failure_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.container("web", uid=GONE_UID)
    harness.clock.advance(GRACE + 1)
    for _ in range(3):
        harness.runtime.fail_next("remove", RuntimeAPIError("device busy"))
    waits = ScriptedWaits(passes=4)

    with caplog.at_level(logging.INFO, logger="agentic_sandbox.controller.gc"):
        await loop_collector(harness, waits).run()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "device busy" in warnings[0].getMessage()
    assert harness.ids() == set()


async def test_wait_for_stop_distinguishes_timeout() -> None:
    stopping = asyncio.Event()

    assert await wait_for_stop(stopping, 0) is False
    stopping.set()
    assert await wait_for_stop(stopping, 3600) is True


async def test_loop_stops_promptly(harness: Harness) -> None:
    collector = harness.collector(interval=3600.0)
    task = asyncio.create_task(collector.run())
    await asyncio.sleep(0)

    collector.stop()

    await asyncio.wait_for(task, timeout=10)
    assert "list_owned" not in harness.runtime.methods_called()


async def test_controller_runs_collector_when_enabled(harness: Harness) -> None:
    await harness.container("web", uid=GONE_UID)
    policy = HostPolicy(
        controller_id=CONTROLLER_ID,
        mount_roots=[],
        workspace_root=harness.workspace_root,
        management_server="host.docker.internal:8120",
    )
    controller = Controller(
        store=harness.store,
        runtime=harness.runtime,
        events=harness.store.events,
        policy=policy,
        node="node-1",
        gc=GcSettings(interval=3600.0, startup_delay=0.0, creation_grace=GRACE),
    )
    running = asyncio.create_task(controller.run())
    try:
        # The fake runtime's clock is years behind the real one, so the container is old.
        for _ in range(1000):
            if not harness.ids():
                break
            await asyncio.sleep(0.01)
        assert harness.ids() == set()
    finally:
        await controller.stop(grace_seconds=5)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_controller_collector_off_by_default(harness: Harness) -> None:
    policy = HostPolicy(
        controller_id=CONTROLLER_ID,
        mount_roots=[],
        workspace_root=harness.workspace_root,
        management_server="host.docker.internal:8120",
    )
    controller = Controller(
        store=harness.store,
        runtime=harness.runtime,
        events=harness.store.events,
        policy=policy,
        node="node-1",
    )

    assert controller.gc.settings.enabled is False


# Settings.


def test_settings_gc_defaults() -> None:
    settings = Settings.from_env({})

    assert settings.docker_monitor_enabled is True
    assert settings.docker_poll_interval == 30.0
    assert settings.docker_orphaned_age == 3600.0
    assert settings.gc_creation_grace == 60.0
    assert settings.docker_orphan_name_prefix == "task-"
    assert settings.gc_startup_delay is None


def test_settings_gc_from_env() -> None:
    env = {
        "DOCKER_MONITOR_ENABLED": "false",
        "DOCKER_POLL_INTERVAL_SECS": "2",
        "DOCKER_ORPHANED_AGE_SECS": "0",
        "AGENTIC_SANDBOX_GC_GRACE_SECS": "1.5",
        "DOCKER_ORPHAN_NAME_PREFIX": "",
        "AGENTIC_SANDBOX_GC_STARTUP_DELAY_SECS": "3",
    }

    settings = Settings.from_env(env)

    assert settings.docker_monitor_enabled is False
    assert settings.docker_poll_interval == 2.0
    assert settings.docker_orphaned_age == 0.0
    assert settings.gc_creation_grace == 1.5
    assert settings.docker_orphan_name_prefix == ""
    assert settings.gc_startup_delay == 3.0


def test_settings_gc_grace_negative_rejected() -> None:
    with pytest.raises(ValueError, match="AGENTIC_SANDBOX_GC_GRACE_SECS"):
        Settings.from_env({"AGENTIC_SANDBOX_GC_GRACE_SECS": "-1"})
