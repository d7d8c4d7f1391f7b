"""sandboxctl wait against a real API server.

The command polls; tests replace its sleep between polls with a step that changes the instance,
so they never wait in real time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from agentic_sandbox.cli.wait import WaitFor, parse_duration, parse_wait_for
from agentic_sandbox.crds.instance import Instance, Phase
from agentic_sandbox.crds.meta import Condition
from tests.api.support import manifest
from tests.cli.conftest import ApiServer
from tests.cli.support import Sandboxctl


def create_web(server: ApiServer) -> None:
    assert server.store is not None
    server.call(server.store.create(Instance.model_validate(manifest("web"))))


def set_status(server: ApiServer, *, ready: str | None = None, phase: Phase | None = None) -> None:
    assert server.store is not None
    store = server.store

    async def write() -> None:
        found = await store.get("Instance", "default", "web")
        assert isinstance(found, Instance)
        if ready is not None:
            found.status.conditions = [
                Condition(
                    type="Ready",
                    status=ready,
                    reason="Test",
                    observed_generation=found.metadata.generation,
                )
            ]
        if phase is not None:
            found.status.phase = phase
        await store.update_status(found)

    server.call(write())


def on_first_poll(monkeypatch: pytest.MonkeyPatch, step: Callable[[], object]) -> list[float]:
    """Run ``step`` in place of the first sleep between polls; return the requested sleeps."""
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        if not sleeps:
            step()
        sleeps.append(seconds)

    monkeypatch.setattr("agentic_sandbox.cli.wait.time.sleep", fake_sleep)
    return sleeps


def test_wait_condition_already_met(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    create_web(client_env)
    set_status(client_env, ready="True")

    result = sandboxctl("wait", "--for=condition=Ready", "--timeout=60s", "web")

    assert result.code == 0, result.err
    assert result.out == "instance/web condition Ready=True met\n"


def test_wait_accepts_kind_prefix(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    create_web(client_env)
    set_status(client_env, ready="True")

    result = sandboxctl("wait", "--for=condition=Ready", "--timeout=60s", "instance/web")

    assert result.code == 0, result.err
    assert result.out == "instance/web condition Ready=True met\n"


def test_wait_condition_met_later(
    client_env: ApiServer, sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_web(client_env)
    set_status(client_env, ready="False")
    sleeps = on_first_poll(monkeypatch, lambda: set_status(client_env, ready="True"))

    result = sandboxctl("wait", "--for=condition=Ready", "--timeout=60s", "web")

    assert result.code == 0, result.err
    assert len(sleeps) == 1


def test_wait_timeout_names_state(
    client_env: ApiServer, sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_web(client_env)
    set_status(client_env, ready="False")
    monkeypatch.setattr("agentic_sandbox.cli.wait.time.sleep", lambda seconds: None)

    result = sandboxctl("wait", "--for=condition=Ready", "--timeout=0s", "web")

    assert result.code == 1
    assert "timed out after 0s waiting for condition Ready=True of instance/web" in result.err
    assert "condition Ready is False (reason Test" in result.err


def test_wait_stale_condition_not_met(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    create_web(client_env)
    set_status(client_env, ready="True")
    assert client_env.store is not None
    store = client_env.store

    async def change_spec() -> None:
        found = await store.get("Instance", "default", "web")
        assert isinstance(found, Instance)
        found.spec.env = {"A": "1"}
        await store.update(found)

    client_env.call(change_spec())

    result = sandboxctl("wait", "--for=condition=Ready", "--timeout=0s", "web")

    assert result.code == 1
    assert "is for generation 1, not 2" in result.err


def test_wait_phase(
    client_env: ApiServer, sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_web(client_env)
    on_first_poll(monkeypatch, lambda: set_status(client_env, phase=Phase.RUNNING))

    result = sandboxctl("wait", "--for=phase=Running", "web")

    assert result.code == 0, result.err
    assert result.out == "instance/web phase Running met\n"


def test_wait_delete(
    client_env: ApiServer, sandboxctl: Sandboxctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_web(client_env)
    assert client_env.store is not None
    store = client_env.store
    on_first_poll(monkeypatch, lambda: client_env.call(store.delete("Instance", "default", "web")))

    result = sandboxctl("wait", "--for=delete", "web")

    assert result.code == 0, result.err
    assert result.out == "instance/web deleted\n"


def test_wait_missing_instance_fails(client_env: ApiServer, sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("wait", "--for=condition=Ready", "web")

    assert result.code == 1
    assert "not found" in result.err


def test_wait_bad_for_is_usage_error(sandboxctl: Sandboxctl) -> None:
    result = sandboxctl("wait", "--for=ready", "web")

    assert result.code == 2
    assert "condition=NAME[=VALUE]" in result.err


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60.0), ("5m", 300.0), ("1h", 3600.0), ("500ms", 0.5), ("7", 7.0)]
)
def test_parse_duration_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_text() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("soon")


def test_parse_wait_for_forms() -> None:
    assert parse_wait_for("condition=Ready") == WaitFor("condition", "Ready", "True")
    assert parse_wait_for("condition=Ready=false") == WaitFor("condition", "Ready", "false")
    assert parse_wait_for("phase=Stopped") == WaitFor("phase", value="Stopped")
    assert parse_wait_for("jsonpath={.status.phase}=Running") == WaitFor("phase", value="Running")
    assert parse_wait_for("delete") == WaitFor("delete")
