"""Property-based test: random operations, then quiescence, then actual state equals desired state.

A hypothesis state machine drives the reconciler over the fake runtime and a real SQLite store
with random sequences of apply, edit, delete, out-of-band exits and removals, controller restarts
and runtime outages. After each step it reconciles every key until nothing changes and checks
that every live instance has exactly one sandbox with its current spec, running, and that no
sandbox exists without an instance (no duplicates, no orphans).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agentic_sandbox.controller.desired import HostPolicy, desired_hashes
from agentic_sandbox.controller.plan import sandbox_matches
from agentic_sandbox.controller.reconciler import InstanceReconciler
from agentic_sandbox.controller.recorder import EventRecorder
from agentic_sandbox.crds.instance import Instance
from agentic_sandbox.errors import NotFound, SandboxError
from agentic_sandbox.runtimes.base import LABEL_INSTANCE, LABEL_UID, SandboxStatus
from agentic_sandbox.runtimes.fake import FakeClock, FakeRuntime
from agentic_sandbox.store.apply import apply
from agentic_sandbox.store.sqlite import SqliteStore

NAMES = st.sampled_from(["a", "b", "c"])
ENV_VALUES = st.sampled_from(["1", "2", "no", "0755"])
MUTATING_CALLS = {"create", "start", "stop", "remove"}
# Past the crash-loop cap (5 min) and the stall cap (5 min), so every wait is over.
QUIESCENCE_STEP_SECONDS = 400
MAX_ROUNDS = 12


class ControllerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="state-machine-"))
        self.clock = FakeClock()
        self.runtime = FakeRuntime(clock=self.clock.now)
        self.store = self.run(SqliteStore(self.directory / "state.db").open())
        self.events = EventRecorder(self.store.events)
        self.reconciler = self.new_reconciler()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def new_reconciler(self) -> InstanceReconciler:
        policy = HostPolicy(
            controller_id="ctl-prop",
            mount_roots=[self.directory],
            workspace_root=self.directory / "workspaces",
            management_server="host.docker.internal:8120",
        )
        return InstanceReconciler(
            store=self.store,
            runtime=self.runtime,
            recorder=self.events,
            policy=policy,
            node="node",
            clock=self.clock.now,
        )

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # Desired-state changes.

    @rule(name=NAMES, value=ENV_VALUES)
    def apply_instance(self, name: str, value: str) -> None:
        body = {
            "metadata": {"name": name},
            "spec": {"image": "agentic/demo:dev", "env": {"VALUE": value}},
        }
        try:
            self.run(apply(self.store, Instance.model_validate(body), source="test"))
        except SandboxError:
            pass  # applying to an instance that is being deleted may conflict; that is allowed

    @rule(name=NAMES)
    def delete_instance(self, name: str) -> None:
        try:
            self.run(self.store.delete("Instance", "default", name))
        except NotFound:
            pass

    # Out-of-band changes.

    @rule(data=st.data(), code=st.sampled_from([0, 1, 137]))
    def sandbox_exits(self, data: st.DataObject, code: int) -> None:
        running = [s for s in self.runtime.sandboxes.values() if s.status == SandboxStatus.RUNNING]
        if running:
            victim = data.draw(st.sampled_from(sorted(s.id for s in running)))
            self.runtime.exit(victim, code, oom=code == 137)

    @rule(data=st.data())
    def sandbox_removed(self, data: st.DataObject) -> None:
        if self.runtime.sandboxes:
            victim = data.draw(st.sampled_from(sorted(self.runtime.sandboxes)))
            self.runtime.remove_out_of_band(victim)

    @rule()
    def controller_restarts(self) -> None:
        self.reconciler = self.new_reconciler()

    @precondition(lambda self: self.runtime._available)
    @rule()
    def outage_begins(self) -> None:
        self.runtime.set_available(False)
        self.reconcile_all_once()

    @precondition(lambda self: not self.runtime._available)
    @rule()
    def outage_ends(self) -> None:
        self.runtime.set_available(True)

    # Quiescence and the invariant.

    def keys(self) -> set[str]:
        listing = self.run(self.store.list("Instance"))
        keys = {item.key for item in listing.items}
        keys |= {s.labels[LABEL_INSTANCE] for s in self.runtime.sandboxes.values()}
        return keys

    def reconcile_all_once(self) -> None:
        for key in sorted(self.keys()):
            try:
                self.run(self.reconciler.reconcile(key))
            except SandboxError:
                pass

    def quiesce(self) -> None:
        for _ in range(MAX_ROUNDS):
            before = sum(1 for call in self.runtime.calls if call.method in MUTATING_CALLS)
            self.reconcile_all_once()
            self.clock.advance(QUIESCENCE_STEP_SECONDS)
            after = sum(1 for call in self.runtime.calls if call.method in MUTATING_CALLS)
            if after == before:
                return
        raise AssertionError(f"no quiescence after {MAX_ROUNDS} rounds")

    @invariant()
    def actual_matches_desired(self) -> None:
        if not self.runtime._available:
            return
        self.quiesce()
        instances = self.run(self.store.list("Instance")).items
        live = {i.metadata.uid: i for i in instances if i.metadata.deletion_timestamp is None}
        by_uid: dict[str, list[Any]] = {}
        for sandbox in self.runtime.sandboxes.values():
            by_uid.setdefault(sandbox.labels[LABEL_UID], []).append(sandbox)

        assert set(by_uid) == set(live), "orphaned or missing sandboxes"
        assert all(i.metadata.deletion_timestamp is None for i in instances), "stuck deletion"
        for uid, sandboxes in by_uid.items():
            instance = live[uid]
            assert isinstance(instance, Instance)
            assert len(sandboxes) == 1, f"duplicate sandboxes for {instance.key}"
            state = sandboxes[0].state()
            assert sandbox_matches(state, desired_hashes(instance)), f"stale spec {instance.key}"
            assert state.running, f"{instance.key} is {state.status}"
            assert instance.status.phase == "Running"


ControllerMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestControllerMachine = ControllerMachine.TestCase
