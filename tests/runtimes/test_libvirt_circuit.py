"""Tests of the libvirt circuit breaker, alone and in front of a connection whose calls block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentic_sandbox.errors import RuntimeTimeout, RuntimeUnavailable
from agentic_sandbox.runtimes.libvirt import LibvirtRuntime
from agentic_sandbox.runtimes.libvirt_circuit import CircuitBreaker, CircuitOpen
from agentic_sandbox.runtimes.libvirt_conn import LibvirtConnection
from agentic_sandbox.runtimes.libvirt_events import LifecycleHub


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(name="libvirt at test", threshold=threshold, cool_down=30, clock=clock)


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.threshold):
        probe = breaker.before_call("list")
        breaker.record_timeout(probe=probe)


def test_breaker_starts_closed() -> None:
    breaker = make_breaker(FakeClock())

    assert not breaker.open
    assert breaker.retry_after == 0
    assert breaker.before_call("list") is False


def test_breaker_opens_at_threshold() -> None:
    breaker = make_breaker(FakeClock())

    for _ in range(2):
        breaker.record_timeout(probe=breaker.before_call("list"))
    assert not breaker.open
    breaker.record_timeout(probe=breaker.before_call("list"))

    assert breaker.open
    assert breaker.retry_after == 30


def test_breaker_success_resets_count() -> None:
    breaker = make_breaker(FakeClock())

    for _ in range(2):
        breaker.record_timeout(probe=breaker.before_call("list"))
    breaker.record_success(probe=breaker.before_call("list"))
    for _ in range(2):
        breaker.record_timeout(probe=breaker.before_call("list"))

    assert not breaker.open


def test_open_breaker_fails_fast_with_retry_after() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.now += 10

    with pytest.raises(CircuitOpen) as raised:
        breaker.before_call("define")

    assert raised.value.retry_after == 20
    assert isinstance(raised.value, RuntimeUnavailable)
    assert "circuit is open" in str(raised.value)
    assert "define" in str(raised.value)
    assert "in 20 s" in str(raised.value)


def test_half_open_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.now += 30

    assert not breaker.open
    assert breaker.before_call("list") is True
    assert breaker.open
    with pytest.raises(CircuitOpen):
        breaker.before_call("list")


def test_probe_success_closes() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.now += 30

    breaker.record_success(probe=breaker.before_call("list"))

    assert not breaker.open
    assert breaker.before_call("list") is False


def test_probe_timeout_reopens_for_cool_down() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.now += 30

    breaker.record_timeout(probe=breaker.before_call("list"))

    assert breaker.open
    assert breaker.retry_after == 30


def test_abandoned_probe_frees_half_open() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.now += 30

    breaker.abandon(probe=breaker.before_call("list"))

    assert breaker.before_call("list") is True


def test_breaker_rejects_invalid_settings() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(name="x", threshold=0)
    with pytest.raises(ValueError, match="cool_down"):
        CircuitBreaker(name="x", cool_down=0)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test, so calls blocked on it end and their threads finish."""
    event = threading.Event()
    yield event
    event.set()


async def test_connection_timeouts_open_circuit(release: threading.Event) -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    connection = LibvirtConnection(
        uri="test:///default", call_timeout=0.05, max_workers=4, circuit=breaker, hub=LifecycleHub()
    )
    calls: list[str] = []

    def blocking_call(_conn: object) -> None:
        calls.append("called")
        release.wait()

    for _ in range(3):
        with pytest.raises(RuntimeTimeout):
            await connection.call("list", blocking_call)
    with pytest.raises(CircuitOpen):
        await connection.call("list", blocking_call)

    assert calls == ["called"] * 3
    assert breaker.open
    connection.close()


async def test_connection_probe_closes_circuit(release: threading.Event) -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=1)
    connection = LibvirtConnection(
        uri="test:///default", call_timeout=0.05, max_workers=4, circuit=breaker, hub=LifecycleHub()
    )

    with pytest.raises(RuntimeTimeout):
        await connection.call("list", lambda _conn: release.wait())
    clock.now += 30
    version = await connection.call("version", lambda conn: conn.getLibVersion())

    assert version > 0
    assert not breaker.open
    connection.close()


async def test_runtime_exposes_circuit_state(tmp_path: Path, release: threading.Event) -> None:
    clock = FakeClock()
    runtime = LibvirtRuntime(
        uri="test:///default",
        vm_dir=tmp_path,
        call_timeout=0.05,
        circuit_threshold=1,
        circuit_cool_down=45,
        clock=clock,
    )
    assert not runtime.circuit_open

    with pytest.raises(RuntimeTimeout):
        await runtime._conn.call("list", lambda _conn: release.wait())

    assert runtime.circuit_open
    assert runtime.retry_after == 45
    with pytest.raises(CircuitOpen):
        await runtime.ping()
    await runtime.close()
