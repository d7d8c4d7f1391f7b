"""AgentTracker: authentication, connections, and the heartbeat timer."""

from __future__ import annotations

import asyncio

from agentic_sandbox.controller.agent_identity import (
    carries_agent,
    mint_secret,
    secret_digest,
    verify_secret,
)
from agentic_sandbox.controller.agent_tracker import AgentTracker, ExpectedAgent

KEY = "default/web"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def expected(secret: str, *, sandbox_id: str = "c1") -> ExpectedAgent:
    return ExpectedAgent(
        key=KEY,
        uid="u1",
        agent_id="web",
        sandbox_id=sandbox_id,
        secret_digest=secret_digest(secret),
    )


def test_secret_is_256_bits() -> None:
    secret = mint_secret()
    assert len(bytes.fromhex(secret)) == 32
    assert mint_secret() != secret


def test_verify_secret_cases() -> None:
    secret = mint_secret()
    assert verify_secret(secret, secret_digest(secret))
    assert not verify_secret(secret + "0", secret_digest(secret))
    assert not verify_secret(secret, None)


def test_carries_agent_reads_image_label() -> None:
    assert carries_agent({"dev.agentic.agent": "true"})
    assert not carries_agent({"dev.agentic.agent": "false"})
    assert not carries_agent({})


def test_authenticate_needs_matching_secret() -> None:
    tracker = AgentTracker(enqueue=lambda key: None)
    secret = mint_secret()
    tracker.expect(expected(secret))
    assert tracker.authenticate("web", secret) == expected(secret)
    assert tracker.authenticate("web", mint_secret()) is None
    assert tracker.authenticate("db", secret) is None


def test_new_sandbox_rotates_secret() -> None:
    tracker = AgentTracker(enqueue=lambda key: None)
    old, new = mint_secret(), mint_secret()
    tracker.expect(expected(old, sandbox_id="c1"))
    tracker.expect(expected(new, sandbox_id="c2"))
    assert tracker.authenticate("web", old) is None
    assert tracker.authenticate("web", new) is not None


def test_observe_without_expectation_is_none() -> None:
    tracker = AgentTracker(enqueue=lambda key: None)
    assert tracker.observe(KEY) is None


async def test_connect_and_disconnect_enqueue() -> None:
    keys: list[str] = []
    closed: list[str] = []
    tracker = AgentTracker(enqueue=keys.append)
    secret = mint_secret()
    tracker.expect(expected(secret))
    assert tracker.observe(KEY).reason == "NotConnected"  # type: ignore[union-attr]

    assert tracker.connect(expected(secret), connection_id="a", close=closed.append)
    observation = tracker.observe(KEY)
    assert observation is not None
    assert observation.connected
    assert observation.fresh
    assert keys == [KEY]

    assert tracker.disconnect(KEY, "a", "the agent closed the stream")
    observation = tracker.observe(KEY)
    assert observation is not None
    assert observation.reason == "Disconnected"
    assert "closed the stream" in observation.message
    assert keys == [KEY, KEY]
    assert closed == []


async def test_newer_connection_replaces_older() -> None:
    closed: list[str] = []
    tracker = AgentTracker(enqueue=lambda key: None)
    secret = mint_secret()
    tracker.expect(expected(secret))
    tracker.connect(expected(secret), connection_id="a", close=closed.append)
    tracker.connect(expected(secret), connection_id="b", close=closed.append)
    assert closed == ["the agent opened a new connection"]
    assert not tracker.disconnect(KEY, "a", "late end of the old stream")
    assert tracker.observe(KEY).connected  # type: ignore[union-attr]


async def test_outdated_expectation_rejected() -> None:
    tracker = AgentTracker(enqueue=lambda key: None)
    old, new = mint_secret(), mint_secret()
    tracker.expect(expected(new, sandbox_id="c2"))
    assert not tracker.connect(expected(old), connection_id="a", close=lambda reason: None)


async def test_silent_agent_goes_stale_by_timer() -> None:
    clock = ManualClock()
    stale = asyncio.Event()
    keys: list[str] = []

    def enqueue(key: str) -> None:
        keys.append(key)
        if len(keys) == 2:
            stale.set()

    tracker = AgentTracker(enqueue=enqueue, heartbeat_interval=0.01, monotonic=clock)
    secret = mint_secret()
    tracker.expect(expected(secret))
    tracker.connect(expected(secret), connection_id="a", close=lambda reason: None)
    clock.now += 1.0  # far past three intervals with no heartbeat
    async with asyncio.timeout(10):
        await stale.wait()
    observation = tracker.observe(KEY)
    assert observation is not None
    assert observation.connected
    assert not observation.fresh
    assert observation.reason == "HeartbeatTimeout"

    tracker.heartbeat(KEY, "a")
    assert tracker.observe(KEY).fresh  # type: ignore[union-attr]
    assert keys == [KEY, KEY, KEY]


def test_forget_closes_connection() -> None:
    closed: list[str] = []

    async def scenario() -> None:
        tracker = AgentTracker(enqueue=lambda key: None)
        secret = mint_secret()
        tracker.expect(expected(secret))
        tracker.connect(expected(secret), connection_id="a", close=closed.append)
        tracker.forget(KEY)
        assert tracker.observe(KEY) is None
        assert tracker.authenticate("web", secret) is None

    asyncio.run(scenario())
    assert closed == ["the sandbox is gone"]
