"""Planner decisions, compared as rendered text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentic_sandbox.controller.plan import Observation, crash_backoff, plan
from agentic_sandbox.crds.instance import Instance, LastExit, RunStrategy
from agentic_sandbox.runtimes.base import (
    LABEL_HASH_SCHEMA,
    LABEL_SPEC_HASH,
    SandboxState,
    SandboxStatus,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HASH = "aaaa"


def make_instance(strategy: RunStrategy = RunStrategy.ALWAYS, **status: object) -> Instance:
    instance = Instance.model_validate(
        {
            "metadata": {"name": "web", "uid": "uid-1", "generation": 1},
            "spec": {"image": "agentic/demo:dev", "runStrategy": strategy.value},
        }
    )
    for name, value in status.items():
        setattr(instance.status, name, value)
    return instance


def make_sandbox(
    sandbox_id: str = "c1",
    status: SandboxStatus = SandboxStatus.RUNNING,
    *,
    spec_hash: str = HASH,
    exit_code: int | None = None,
    ran_for: timedelta = timedelta(seconds=5),
    finished_ago: timedelta = timedelta(seconds=1),
    created: datetime = NOW - timedelta(hours=1),
    oom: bool = False,
) -> SandboxState:
    finished = NOW - finished_ago if status == SandboxStatus.EXITED else None
    started = (finished or NOW) - ran_for
    return SandboxState(
        id=sandbox_id,
        name="web",
        labels={LABEL_SPEC_HASH: spec_hash, LABEL_HASH_SCHEMA: "1"},
        status=status,
        created_at=created,
        started_at=started,
        finished_at=finished,
        exit_code=exit_code,
        oom_killed=oom,
    )


def render(instance: Instance, *sandboxes: SandboxState) -> str:
    observation = Observation(
        instance=instance,
        sandboxes=list(sandboxes),
        now=NOW,
        desired_hash=HASH,
        hashes_by_schema={"1": HASH},
    )
    return plan(observation).render()


def test_missing_sandbox_is_created_and_started() -> None:
    assert render(make_instance()) == "create: no sandbox exists\nstart: run strategy Always"


def test_running_matching_sandbox_needs_nothing() -> None:
    assert render(make_instance(), make_sandbox()) == "nothing to do"


def test_spec_change_recreates() -> None:
    text = render(make_instance(), make_sandbox(spec_hash="old"))
    assert text == (
        "remove c1: spec changed (hash old -> aaaa)\n"
        "create: recreate after spec change\n"
        "start: run strategy Always"
    )


def test_sandbox_from_older_hash_schema_is_kept() -> None:
    sandbox = make_sandbox(spec_hash="v0hash")
    sandbox.labels[LABEL_HASH_SCHEMA] = "0"
    observation = Observation(
        instance=make_instance(),
        sandboxes=[sandbox],
        now=NOW,
        desired_hash=HASH,
        hashes_by_schema={"0": "v0hash", "1": HASH},
    )
    assert plan(observation).render() == "nothing to do"


def test_duplicates_removed_running_one_kept() -> None:
    stopped = make_sandbox("c-old", SandboxStatus.EXITED, exit_code=0, created=NOW)
    running = make_sandbox("c-run")
    assert render(make_instance(), stopped, running) == (
        "remove c-old: duplicate sandbox for this instance"
    )


def test_created_sandbox_is_started() -> None:
    text = render(make_instance(), make_sandbox(status=SandboxStatus.CREATED))
    assert text == "start c1: sandbox was created but never started"


def test_paused_sandbox_left_alone() -> None:
    text = render(make_instance(), make_sandbox(status=SandboxStatus.PAUSED))
    assert text == "nothing to do"


def test_halted_stops_paused_sandbox() -> None:
    text = render(make_instance(RunStrategy.HALTED), make_sandbox(status=SandboxStatus.PAUSED))
    assert text == "stop c1: run strategy Halted"


def test_halted_stops_running_sandbox() -> None:
    text = render(make_instance(RunStrategy.HALTED), make_sandbox())
    assert text == "stop c1: run strategy Halted"


def test_halted_creates_nothing() -> None:
    assert render(make_instance(RunStrategy.HALTED)) == "nothing to do"


def test_manual_creates_without_starting() -> None:
    assert render(make_instance(RunStrategy.MANUAL)) == "create: no sandbox exists"


def test_always_restarts_first_exit_at_once() -> None:
    exited = make_sandbox(status=SandboxStatus.EXITED, exit_code=3)
    assert render(make_instance(), exited) == "start c1: restart after exit code 3"


def test_always_backs_off_in_crash_loop() -> None:
    instance = make_instance(consecutive_restarts=3)
    exited = make_sandbox(status=SandboxStatus.EXITED, exit_code=1)
    text = render(instance, exited)
    assert text.startswith("nothing to do\nretry at ")


def test_long_healthy_run_resets_backoff() -> None:
    instance = make_instance(consecutive_restarts=6)
    exited = make_sandbox(status=SandboxStatus.EXITED, exit_code=1, ran_for=timedelta(hours=1))
    assert render(instance, exited) == "start c1: restart after exit code 1"


def test_rerun_on_failure_keeps_clean_exit() -> None:
    exited = make_sandbox(status=SandboxStatus.EXITED, exit_code=0)
    assert render(make_instance(RunStrategy.RERUN_ON_FAILURE), exited) == "nothing to do"


def test_rerun_on_failure_restarts_oom() -> None:
    exited = make_sandbox(status=SandboxStatus.EXITED, exit_code=137, oom=True)
    text = render(make_instance(RunStrategy.RERUN_ON_FAILURE), exited)
    assert text == "start c1: restart after the sandbox was killed for running out of memory"


def test_once_never_restarts() -> None:
    exited = make_sandbox(status=SandboxStatus.EXITED, exit_code=1)
    assert render(make_instance(RunStrategy.ONCE), exited) == "nothing to do"


def test_once_completed_not_recreated_after_removal() -> None:
    instance = make_instance(
        RunStrategy.ONCE, last_exit=LastExit(code=0, reason="Completed"), spec_hash=HASH
    )
    assert render(instance) == "nothing to do"


def test_deletion_removes_every_sandbox() -> None:
    instance = make_instance()
    instance.metadata.deletion_timestamp = NOW
    text = render(instance, make_sandbox("c1"), make_sandbox("c2"))
    assert text == "remove c1: instance is being deleted\nremove c2: instance is being deleted"


def test_crash_backoff_doubles_to_cap() -> None:
    instance = make_instance()
    delays = [crash_backoff(instance, n).total_seconds() for n in range(0, 8)]
    assert delays[0] == 0
    assert 9 <= delays[1] <= 11
    assert 18 <= delays[2] <= 22
    assert delays[-1] <= 300
    assert delays[-1] >= 270


def with_request(instance: Instance, value: str) -> Instance:
    instance.metadata.annotations["sandbox.agentic.dev/requested-action"] = value
    return instance


def test_stop_request_stops_manual_sandbox() -> None:
    instance = with_request(make_instance(RunStrategy.MANUAL), "stop@t1")
    assert render(instance, make_sandbox()) == "stop c1: stop requested"


def test_start_request_starts_exited_sandbox() -> None:
    instance = with_request(make_instance(RunStrategy.ONCE), "start@t1")
    exited = make_sandbox(status=SandboxStatus.EXITED, exit_code=0)
    assert render(instance, exited) == "start c1: start requested"


def test_restart_request_stops_then_starts() -> None:
    instance = with_request(make_instance(), "restart@t1")
    assert (
        render(instance, make_sandbox())
        == "stop c1: restart requested\nstart c1: restart requested"
    )


def test_handled_request_is_not_repeated() -> None:
    instance = with_request(make_instance(RunStrategy.MANUAL, handled_request="stop@t1"), "stop@t1")
    assert render(instance, make_sandbox()) == "nothing to do"


def test_start_request_creates_missing_sandbox() -> None:
    instance = with_request(make_instance(RunStrategy.MANUAL), "start@t2")
    assert render(instance) == (
        "create: no sandbox exists; start requested\nstart: start requested"
    )
