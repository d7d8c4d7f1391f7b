"""An in-memory Runtime for unit tests of planning and queue logic.

It follows the Docker driver's contract. Create adopts a sandbox with the same
``agentic-sandbox.uid`` label and raises NameConflict for any other holder of the name. Stop and
remove are idempotent, and start of a missing sandbox raises RuntimeObjectNotFound. Event
streams raise RuntimeUnavailable when they break. Tests drive it with helpers that simulate what
a real daemon does on its own: a process exit or OOM kill, an out-of-band removal, an outage.

It is deterministic: time comes from an injectable clock, ids and IP addresses from counters,
and nothing sleeps. Every protocol call is recorded in ``calls``, failed ones included.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agentic_sandbox.errors import (
    ImageNotFound,
    InvalidRuntimeSpec,
    NameConflict,
    RuntimeFailure,
    RuntimeObjectNotFound,
    RuntimeUnavailable,
)
from agentic_sandbox.runtimes.base import (
    LABEL_MANAGED,
    LABEL_UID,
    STREAM_CONNECTED,
    RuntimeEvent,
    SandboxSpec,
    SandboxState,
    SandboxStatus,
)

BUILTIN_NETWORKS = frozenset({"bridge", "none", "host"})

# A process stopped with SIGTERM through docker-init exits with 128 + 15.
STOP_EXIT_CODE = 143


class FakeClock:
    """A wall clock that moves only when a test advances it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Call:
    """One protocol call: the method and its main argument (a name, an id or a label selector)."""

    method: str
    target: str


@dataclass
class FakeSandbox:
    """The mutable record behind one fake sandbox."""

    id: str
    spec: SandboxSpec
    labels: dict[str, str]
    status: SandboxStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    ip: str | None = None

    def state(self) -> SandboxState:
        return SandboxState(
            id=self.id,
            name=self.spec.name,
            labels=dict(self.labels),
            status=self.status,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            oom_killed=self.oom_killed,
            ip=self.ip,
            image=self.spec.image,
        )


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


class FakeRuntime:
    """The Runtime protocol in memory. ``images`` None means every image exists."""

    name = "fake"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        images: Iterable[str] | None = None,
        networks: Iterable[str] = (),
        uuid_ids: bool = False,
    ) -> None:
        """``uuid_ids`` gives sandboxes UUID ids, as libvirt domains have, instead of
        ``fake-NNNN``; a RuntimeRouter routes such ids to its libvirt driver."""
        self.clock = clock or FakeClock().now
        self.images = None if images is None else set(images)
        self.networks = set(BUILTIN_NETWORKS) | set(networks)
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.calls: list[Call] = []
        self._available = True
        self._closed = False
        self._failures: dict[str, list[RuntimeFailure]] = {}
        self._subscribers: list[tuple[dict[str, str], asyncio.Queue[RuntimeEvent | None]]] = []
        self._ids = itertools.count(1)
        self._uuid_ids = uuid_ids
        self._addresses = itertools.count(2)
        # Output lines per sandbox id, and an event set (then replaced) whenever output is
        # written or a sandbox stops, so that following log streams wake up.
        self.output: dict[str, list[bytes]] = {}
        self._output_changed = asyncio.Event()

    def _next_id(self) -> str:
        number = next(self._ids)
        return str(uuid.UUID(int=number)) if self._uuid_ids else f"fake-{number:04d}"

    # Helpers for tests: simulate what the daemon does on its own.

    def set_available(self, available: bool) -> None:
        """Start or end an outage. During one every call and event stream raises."""
        self._available = available
        if not available:
            self.break_event_streams()
            self._wake_log_followers()

    def break_event_streams(self) -> None:
        """Make every open event stream raise RuntimeUnavailable, as a dropped connection does."""
        for _, queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()

    def fail_next(self, method: str, error: RuntimeFailure) -> None:
        """Make the next call of ``method`` (such as ``"start"``) raise ``error``."""
        self._failures.setdefault(method, []).append(error)

    def exit(self, sandbox_id: str, code: int, *, oom: bool = False) -> None:
        """End a running sandbox's process with ``code``, OOM-killed when ``oom``."""
        sandbox = self.sandboxes[sandbox_id]
        if sandbox.status is not SandboxStatus.RUNNING:
            raise ValueError(f"sandbox {sandbox_id} is {sandbox.status}, not running")
        if oom:
            self._emit("oom", sandbox)
        self._finish(sandbox, code, oom=oom)
        self._emit("die", sandbox)

    def remove_out_of_band(self, sandbox_id: str) -> None:
        """Remove a sandbox behind the controller's back, as ``docker rm -f`` does."""
        sandbox = self.sandboxes.pop(sandbox_id)
        self._wake_log_followers()
        if sandbox.status is SandboxStatus.RUNNING:
            self._finish(sandbox, 137)
            self._emit("kill", sandbox)
            self._emit("die", sandbox)
        self._emit("destroy", sandbox)

    def write_output(self, sandbox_id: str, data: bytes) -> None:
        """Append ``data`` to a sandbox's output, as its process writing to stdout does."""
        if sandbox_id not in self.sandboxes:
            raise KeyError(f"sandbox {sandbox_id} does not exist")
        self.output.setdefault(sandbox_id, []).extend(data.splitlines(keepends=True))
        self._wake_log_followers()

    def _wake_log_followers(self) -> None:
        self._output_changed.set()
        self._output_changed = asyncio.Event()

    def methods_called(self) -> list[str]:
        return [call.method for call in self.calls]

    def by_name(self, name: str) -> SandboxState | None:
        sandbox = self._find_name(name)
        return None if sandbox is None else sandbox.state()

    # The Runtime protocol.

    async def ping(self) -> None:
        await self._enter("ping", "")

    async def create(self, spec: SandboxSpec) -> SandboxState:
        await self._enter("create", spec.name)
        existing = self._find_name(spec.name)
        if existing is not None:
            return self._adopt(existing, spec)
        if self.images is not None and spec.image not in self.images:
            raise ImageNotFound(
                f"image {spec.image!r} of sandbox {spec.name!r} is not on the fake runtime"
            )
        if spec.network not in self.networks:
            raise InvalidRuntimeSpec(
                f"network {spec.network!r} of sandbox {spec.name!r} does not exist"
            )
        sandbox = FakeSandbox(
            id=self._next_id(),
            spec=spec,
            labels={**spec.labels, LABEL_MANAGED: "true"},
            status=SandboxStatus.CREATED,
            created_at=self.clock(),
        )
        self.sandboxes[sandbox.id] = sandbox
        self._emit("create", sandbox)
        return sandbox.state()

    def _adopt(self, existing: FakeSandbox, spec: SandboxSpec) -> SandboxState:
        uid = spec.labels.get(LABEL_UID)
        owner = existing.labels.get(LABEL_UID)
        if uid is not None and owner == uid:
            return existing.state()
        raise NameConflict(
            f"sandbox name {spec.name!r} is taken by {existing.id}, which this controller "
            f"does not own (its {LABEL_UID} label is {owner!r}, expected {uid!r})"
        )

    async def start(self, sandbox_id: str) -> None:
        await self._enter("start", sandbox_id)
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise RuntimeObjectNotFound(f"sandbox {sandbox_id} not found")
        if sandbox.status is SandboxStatus.RUNNING:
            return
        sandbox.status = SandboxStatus.RUNNING
        sandbox.started_at = self.clock()
        sandbox.exit_code = None
        sandbox.oom_killed = False
        if sandbox.spec.network not in ("none", "host"):
            sandbox.ip = f"10.88.0.{next(self._addresses)}"
        self._emit("start", sandbox)

    async def stop(self, sandbox_id: str, timeout: int) -> None:  # noqa: ASYNC109 (protocol)
        await self._enter("stop", sandbox_id)
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.status is not SandboxStatus.RUNNING:
            return
        self._finish(sandbox, STOP_EXIT_CODE)
        for action in ("kill", "die", "stop"):
            self._emit(action, sandbox)

    async def remove(self, sandbox_id: str) -> None:
        await self._enter("remove", sandbox_id)
        if sandbox_id in self.sandboxes:
            self.remove_out_of_band(sandbox_id)

    async def inspect(self, sandbox_id: str) -> SandboxState | None:
        """Return the sandbox by id or by name, like the Docker driver."""
        await self._enter("inspect", sandbox_id)
        sandbox = self.sandboxes.get(sandbox_id) or self._find_name(sandbox_id)
        return None if sandbox is None else sandbox.state()

    async def list_owned(
        self, labels: dict[str, str], *, detailed: bool = True
    ) -> list[SandboxState]:
        # The fake always has every detail at hand, so both forms return full states.
        await self._enter("list_owned", _selector(labels))
        return [s.state() for s in self.sandboxes.values() if _matches(s.labels, labels)]

    async def image_present(self, refs: list[str]) -> dict[str, bool]:
        """Report images by exact reference; ``images`` None means every image exists."""
        await self._enter("image_present", ",".join(refs))
        return {ref: self.images is None or ref in self.images for ref in refs}

    async def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        """Stream the lines given to ``write_output``; following ends when the sandbox stops."""
        await self._enter("logs", sandbox_id)
        if sandbox_id not in self.sandboxes:
            raise RuntimeObjectNotFound(f"sandbox {sandbox_id} not found")
        yield b""
        lines = self.output.get(sandbox_id, [])
        sent = 0 if tail is None else max(0, len(lines) - tail)
        while True:
            changed = self._output_changed
            lines = self.output.get(sandbox_id, [])
            for line in lines[sent:]:
                yield line
            sent = len(lines)
            sandbox = self.sandboxes.get(sandbox_id)
            if not follow or sandbox is None or sandbox.status is not SandboxStatus.RUNNING:
                return
            if self._closed or not self._available:
                raise RuntimeUnavailable("fake runtime log stream broke")
            await changed.wait()

    async def events(self, labels: dict[str, str]) -> AsyncGenerator[RuntimeEvent, None]:
        await self._enter("events", _selector(labels))
        queue: asyncio.Queue[RuntimeEvent | None] = asyncio.Queue()
        subscriber = (dict(labels), queue)
        self._subscribers.append(subscriber)
        try:
            yield RuntimeEvent(action=STREAM_CONNECTED, sandbox_id="", labels={})
            while True:
                event = await queue.get()
                if event is None:
                    raise RuntimeUnavailable("fake runtime event stream broke")
                yield event
        finally:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    async def close(self) -> None:
        self._closed = True
        self.break_event_streams()
        self._wake_log_followers()

    # Internals.

    async def _enter(self, method: str, target: str) -> None:
        self.calls.append(Call(method, target))
        # Yield once, as a real driver does, so tests see the interleavings they would get.
        await asyncio.sleep(0)
        if self._closed:
            raise RuntimeUnavailable("fake runtime is closed")
        if not self._available:
            raise RuntimeUnavailable("fake runtime is unavailable")
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    def _find_name(self, name: str) -> FakeSandbox | None:
        for sandbox in self.sandboxes.values():
            if sandbox.spec.name == name:
                return sandbox
        return None

    def _finish(self, sandbox: FakeSandbox, code: int, *, oom: bool = False) -> None:
        sandbox.status = SandboxStatus.EXITED
        sandbox.exit_code = code
        sandbox.oom_killed = oom
        sandbox.finished_at = self.clock()
        sandbox.ip = None
        self._wake_log_followers()

    def _emit(self, action: str, sandbox: FakeSandbox) -> None:
        event = RuntimeEvent(action, sandbox.id, dict(sandbox.labels), self.clock())
        for selector, queue in self._subscribers:
            if _matches(sandbox.labels, selector):
                queue.put_nowait(event)
