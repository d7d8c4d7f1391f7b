"""DockerRuntime against the real Docker Engine."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import docker
import pytest

from agentic_sandbox.errors import (
    ImageNotFound,
    InvalidRuntimeSpec,
    NameConflict,
    RuntimeObjectNotFound,
    RuntimeTimeout,
    RuntimeUnavailable,
)
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_MANAGED,
    LABEL_UID,
    STREAM_CONNECTED,
    MountSpec,
    RuntimeEvent,
    SandboxSpec,
    SandboxStatus,
)
from agentic_sandbox.runtimes.docker import DockerRuntime
from tests.runtimes.support import (
    RUN_ID,
    RUN_LABEL,
    SocketProxy,
    ownership_labels,
    unique_name,
)

pytestmark = pytest.mark.docker

EventStream = AsyncGenerator[RuntimeEvent, None]

# Bound in seconds on each wait for the daemon in these tests. A healthy daemon is far faster.
DEADLINE = 20.0


def make_spec(
    image: str, controller: str, *, name: str | None = None, uid: str | None = None, **fields: Any
) -> SandboxSpec:
    name = name or unique_name("rt")
    return SandboxSpec(
        name=name, image=image, labels=ownership_labels(controller, name, uid), **fields
    )


async def wait_exit(api: docker.APIClient, container_id: str) -> int:
    """Block (on a thread) until the container has exited; return its exit code."""
    result = await asyncio.to_thread(api.wait, container_id, timeout=int(DEADLINE))
    return int(result["StatusCode"])


async def run_to_exit(
    runtime: DockerRuntime, api: docker.APIClient, spec: SandboxSpec
) -> tuple[str, int]:
    state = await runtime.create(spec)
    await runtime.start(state.id)
    return state.id, await wait_exit(api, state.id)


def output_of(api: docker.APIClient, container_id: str) -> str:
    return api.logs(container_id, stdout=True, stderr=True).decode()


async def test_create_start_inspect(
    runtime: DockerRuntime, busybox_image: str, controller_id: str
) -> None:
    spec = make_spec(busybox_image, controller_id, command=["sleep", "60"])

    created = await runtime.create(spec)
    assert created.status is SandboxStatus.CREATED
    assert created.name == spec.name
    assert created.image == busybox_image
    assert created.created_at is not None
    assert created.started_at is None
    assert created.exit_code is None

    await runtime.start(created.id)
    running = await runtime.inspect(created.id)
    assert running is not None
    assert running.status is SandboxStatus.RUNNING
    assert running.running
    assert running.started_at is not None
    assert running.finished_at is None
    assert running.exit_code is None
    assert running.ip is not None
    assert running.labels == {**spec.labels, LABEL_MANAGED: "true"}


async def test_create_applies_limits_and_security(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, docker_api: docker.APIClient
) -> None:
    spec = make_spec(
        busybox_image,
        controller_id,
        command=["sleep", "60"],
        cpus=0.5,
        memory_bytes=64 << 20,
        pids=100,
        stop_timeout=7,
        env={"GREETING": "hello", "EMPTY": ""},
    )
    state = await runtime.create(spec)

    data = docker_api.inspect_container(state.id)
    host = data["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 << 20
    assert host["MemorySwap"] == 64 << 20
    assert host["PidsLimit"] == 100
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Init"] is True
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "bridge"
    assert data["Config"]["StopTimeout"] == 7
    assert "GREETING=hello" in data["Config"]["Env"]
    assert "EMPTY=" in data["Config"]["Env"]


async def test_env_and_add_host_inside_sandbox(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, docker_api: docker.APIClient
) -> None:
    spec = make_spec(
        busybox_image,
        controller_id,
        command=["sh", "-c", 'echo "greeting=$GREETING"; grep host.docker.internal /etc/hosts'],
        env={"GREETING": "no"},
    )
    container_id, code = await run_to_exit(runtime, docker_api, spec)

    assert code == 0
    output = output_of(docker_api, container_id)
    assert "greeting=no" in output
    assert "host.docker.internal" in output


async def test_bind_mounts_read_only_and_read_write(
    runtime: DockerRuntime,
    busybox_image: str,
    controller_id: str,
    docker_api: docker.APIClient,
    tmp_path: Path,
) -> None:
    writable = tmp_path / "rw"
    readonly = tmp_path / "ro"
    writable.mkdir()
    readonly.mkdir()
    (readonly / "seed").write_text("seeded\n")
    script = "cat /ro/seed > /rw/copy && if touch /ro/new; then exit 9; fi"
    spec = make_spec(
        busybox_image,
        controller_id,
        command=["sh", "-c", script],
        mounts=[MountSpec(str(writable), "/rw"), MountSpec(str(readonly), "/ro", read_only=True)],
    )

    container_id, code = await run_to_exit(runtime, docker_api, spec)

    assert code == 0, output_of(docker_api, container_id)
    assert (writable / "copy").read_text() == "seeded\n"
    assert not (readonly / "new").exists()
    mounts = {
        m["Destination"]: m["RW"] for m in docker_api.inspect_container(container_id)["Mounts"]
    }
    assert mounts == {"/rw": True, "/ro": False}


async def test_missing_host_path_is_invalid_spec(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, tmp_path: Path
) -> None:
    missing = tmp_path / "absent" / "dir"
    spec = make_spec(busybox_image, controller_id, mounts=[MountSpec(str(missing), "/data")])

    with pytest.raises(InvalidRuntimeSpec) as caught:
        await runtime.create(spec)

    assert str(missing) in str(caught.value)
    assert "does not exist" in str(caught.value)
    assert not missing.exists()
    assert await runtime.inspect(spec.name) is None


@pytest.mark.parametrize("host_path", ["/var/run/docker.sock", "/run", "/"])
async def test_docker_socket_bind_rejected(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, host_path: str
) -> None:
    spec = make_spec(busybox_image, controller_id, mounts=[MountSpec(host_path, "/sock")])

    with pytest.raises(InvalidRuntimeSpec, match="Docker socket"):
        await runtime.create(spec)

    assert await runtime.inspect(spec.name) is None


async def test_missing_image_is_image_not_found(runtime: DockerRuntime, controller_id: str) -> None:
    image = f"agentic-test/absent:{RUN_ID}"
    spec = make_spec(image, controller_id)

    with pytest.raises(ImageNotFound) as caught:
        await runtime.create(spec)

    assert image in str(caught.value)
    assert "build" in str(caught.value)


async def test_missing_network_is_invalid_spec(
    runtime: DockerRuntime, busybox_image: str, controller_id: str
) -> None:
    network = unique_name("absent-net")
    spec = make_spec(busybox_image, controller_id, network=network)

    with pytest.raises(InvalidRuntimeSpec) as caught:
        await runtime.create(spec)

    assert network in str(caught.value)
    assert await runtime.inspect(spec.name) is None


async def test_named_and_none_networks(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, docker_api: docker.APIClient
) -> None:
    network = unique_name("rt-net")
    docker_api.create_network(network, labels={RUN_LABEL: RUN_ID})
    try:
        on_named = await runtime.create(
            make_spec(busybox_image, controller_id, network=network, command=["sleep", "60"])
        )
        isolated = await runtime.create(
            make_spec(busybox_image, controller_id, network="none", command=["sleep", "60"])
        )
        await runtime.start(on_named.id)
        await runtime.start(isolated.id)
        named_state = await runtime.inspect(on_named.id)
        isolated_state = await runtime.inspect(isolated.id)
    finally:
        # The network can go only after its containers.
        for state in await runtime.list_owned({LABEL_CONTROLLER: controller_id}):
            await runtime.remove(state.id)
        docker_api.remove_network(network)

    assert named_state is not None
    assert isolated_state is not None
    assert named_state.ip is not None
    assert isolated_state.ip is None
    assert isolated_state.running


async def test_name_conflict_with_unowned_container(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, docker_api: docker.APIClient
) -> None:
    spec = make_spec(busybox_image, controller_id)
    docker_api.create_container(
        busybox_image, name=spec.name, labels={RUN_LABEL: RUN_ID, LABEL_CONTROLLER: controller_id}
    )

    with pytest.raises(NameConflict) as caught:
        await runtime.create(spec)

    assert spec.name in str(caught.value)
    assert "does not own" in str(caught.value)


async def test_create_adopts_own_container(
    runtime: DockerRuntime, busybox_image: str, controller_id: str
) -> None:
    spec = make_spec(busybox_image, controller_id, command=["sleep", "60"])
    first = await runtime.create(spec)

    again = await runtime.create(spec)
    other_uid = make_spec(busybox_image, controller_id, name=spec.name)

    assert again.id == first.id
    assert len(await runtime.list_owned({LABEL_UID: spec.labels[LABEL_UID]})) == 1
    with pytest.raises(NameConflict):
        await runtime.create(other_uid)


async def test_stop_and_remove_are_idempotent(
    runtime: DockerRuntime, busybox_image: str, controller_id: str
) -> None:
    state = await runtime.create(make_spec(busybox_image, controller_id, command=["sleep", "60"]))
    await runtime.start(state.id)
    await runtime.start(state.id)

    await runtime.stop(state.id, timeout=1)
    await runtime.stop(state.id, timeout=1)
    stopped = await runtime.inspect(state.id)
    assert stopped is not None
    assert stopped.status is SandboxStatus.EXITED
    assert stopped.exit_code == 143
    assert stopped.finished_at is not None

    await runtime.remove(state.id)
    await runtime.remove(state.id)
    await runtime.stop(state.id, timeout=1)
    assert await runtime.inspect(state.id) is None
    with pytest.raises(RuntimeObjectNotFound):
        await runtime.start(state.id)


async def test_command_not_found_reported(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, docker_api: docker.APIClient
) -> None:
    spec = make_spec(busybox_image, controller_id, command=["no-such-command", "--flag"])

    container_id, code = await run_to_exit(runtime, docker_api, spec)
    state = await runtime.inspect(container_id)

    assert code == 127
    assert state is not None
    assert state.exit_code == 127
    assert "no-such-command" in state.error
    assert "No such file or directory" in state.error


async def test_start_failure_is_invalid_spec(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, tmp_path: Path
) -> None:
    host_file = tmp_path / "file"
    host_file.write_text("not a directory\n")
    spec = make_spec(
        busybox_image,
        controller_id,
        command=["true"],
        mounts=[MountSpec(str(host_file), "/bin")],
    )
    state = await runtime.create(spec)

    with pytest.raises(InvalidRuntimeSpec) as caught:
        await runtime.start(state.id)

    assert spec.name in str(caught.value)
    assert "not a directory" in str(caught.value)


async def test_exit_code_and_oom(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, docker_api: docker.APIClient
) -> None:
    plain = make_spec(busybox_image, controller_id, command=["sh", "-c", "exit 3"])
    greedy = make_spec(
        busybox_image,
        controller_id,
        command=["sh", "-c", "x=a; while :; do x=$x$x; done"],
        memory_bytes=16 << 20,
    )

    plain_id, _ = await run_to_exit(runtime, docker_api, plain)
    greedy_id, _ = await run_to_exit(runtime, docker_api, greedy)
    plain_state = await runtime.inspect(plain_id)
    # Docker records the OOM kill from the kernel's cgroup event, which can arrive just after the
    # exit, so the flag is awaited with a deadline rather than read once.
    greedy_state = await runtime.inspect(greedy_id)
    async with asyncio.timeout(DEADLINE):
        while greedy_state is not None and not greedy_state.oom_killed:
            await asyncio.sleep(0.05)
            greedy_state = await runtime.inspect(greedy_id)

    assert plain_state is not None
    assert plain_state.exit_code == 3
    assert plain_state.oom_killed is False
    assert greedy_state is not None
    assert greedy_state.status is SandboxStatus.EXITED
    assert greedy_state.oom_killed is True
    assert greedy_state.exit_code == 137


async def test_list_owned_filters_by_labels(
    runtime: DockerRuntime, busybox_image: str, controller_id: str
) -> None:
    other_controller = f"{controller_id}-other"
    mine = await runtime.create(make_spec(busybox_image, controller_id))
    theirs = await runtime.create(make_spec(busybox_image, other_controller))
    try:
        own_list = await runtime.list_owned({LABEL_CONTROLLER: controller_id})
        other_list = await runtime.list_owned({LABEL_CONTROLLER: other_controller})
        by_uid = await runtime.list_owned(
            {LABEL_CONTROLLER: controller_id, LABEL_UID: mine.labels[LABEL_UID]}
        )
        no_match = await runtime.list_owned(
            {LABEL_CONTROLLER: controller_id, LABEL_UID: theirs.labels[LABEL_UID]}
        )
    finally:
        await runtime.remove(theirs.id)

    assert [state.id for state in own_list] == [mine.id]
    assert [state.id for state in other_list] == [theirs.id]
    assert [state.id for state in by_uid] == [mine.id]
    assert no_match == []
    assert own_list[0].status is SandboxStatus.CREATED


async def open_stream(
    runtime: DockerRuntime, stream: EventStream, *, image: str, controller: str
) -> RuntimeEvent:
    """Start ``stream`` and return its first event, the marker that the daemon has subscribed."""
    first = await asyncio.wait_for(anext(stream), DEADLINE)
    assert first.action == STREAM_CONNECTED
    return first


async def collect_until(
    stream: EventStream, *, sandbox_id: str, action: str, seen: list[RuntimeEvent]
) -> None:
    async with asyncio.timeout(DEADLINE):
        async for event in stream:
            seen.append(event)
            if event.sandbox_id == sandbox_id and event.action == action:
                return


async def test_events_stream_start_and_die(
    runtime: DockerRuntime, busybox_image: str, controller_id: str, docker_api: docker.APIClient
) -> None:
    stream = runtime.events({LABEL_CONTROLLER: controller_id})
    await open_stream(runtime, stream, image=busybox_image, controller=controller_id)

    other = await runtime.create(make_spec(busybox_image, f"{controller_id}-other"))
    try:
        spec = make_spec(busybox_image, controller_id, command=["sh", "-c", "exit 4"])
        container_id, _ = await run_to_exit(runtime, docker_api, spec)
        seen: list[RuntimeEvent] = []
        await collect_until(stream, sandbox_id=container_id, action="die", seen=seen)
        await stream.aclose()
    finally:
        # Labelled with another controller id, so the controller_id fixture does not remove it.
        await runtime.remove(other.id)

    actions = [event.action for event in seen if event.sandbox_id == container_id]
    assert actions == ["create", "start", "die"]
    assert {event.labels[LABEL_CONTROLLER] for event in seen} == {controller_id}
    assert seen[-1].labels[LABEL_UID] == spec.labels[LABEL_UID]
    assert seen[-1].time is not None


def event_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("docker-events")]


async def test_events_cancel_stops_thread(runtime: DockerRuntime, controller_id: str) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        stream = runtime.events({LABEL_CONTROLLER: controller_id})
        started.set()
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    # The consumer sets the event and, in the same step, enters the stream and starts its thread.
    await started.wait()
    assert event_threads()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert event_threads() == []


async def test_events_raise_when_connection_cut(
    socket_proxy: SocketProxy, busybox_image: str, controller_id: str
) -> None:
    runtime = DockerRuntime(base_url=socket_proxy.url, call_timeout=DEADLINE)
    try:
        stream = runtime.events({LABEL_CONTROLLER: controller_id})
        await open_stream(runtime, stream, image=busybox_image, controller=controller_id)

        socket_proxy.cut_connections()

        with pytest.raises(RuntimeUnavailable):
            await asyncio.wait_for(anext(stream), DEADLINE)
    finally:
        await runtime.close()
    assert event_threads() == []


async def test_events_raise_when_runtime_closed(runtime: DockerRuntime, controller_id: str) -> None:
    stream = runtime.events({LABEL_CONTROLLER: controller_id})
    connected = await asyncio.wait_for(anext(stream), DEADLINE)
    assert connected.action == STREAM_CONNECTED
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # one loop step, so the consumer waits before the close

    await runtime.close()

    with pytest.raises(RuntimeUnavailable, match="closed"):
        await asyncio.wait_for(pending, DEADLINE)


async def test_unreachable_daemon_is_unavailable(tmp_path: Path) -> None:
    runtime = DockerRuntime(base_url=f"unix://{tmp_path}/absent.sock", call_timeout=5.0)
    try:
        with pytest.raises(RuntimeUnavailable):
            await runtime.ping()
        with pytest.raises(RuntimeUnavailable):
            await runtime.list_owned({LABEL_CONTROLLER: "nobody"})
        with pytest.raises(RuntimeUnavailable):
            await anext(runtime.events({LABEL_CONTROLLER: "nobody"}))
    finally:
        await runtime.close()


# docker-py 7.2 does not close its socket when a unix connect fails. The driver avoids that
# while reconnecting, but the first call on a client whose daemon vanished still leaks one,
# which CPython closes at collection with a ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_recovers_when_daemon_returns(socket_proxy: SocketProxy) -> None:
    runtime = DockerRuntime(base_url=socket_proxy.url, call_timeout=DEADLINE)
    try:
        await runtime.ping()

        await socket_proxy.stop()
        with pytest.raises(RuntimeUnavailable):
            await runtime.ping()
        with pytest.raises(RuntimeUnavailable):
            await runtime.ping()

        await socket_proxy.start()
        await runtime.ping()
    finally:
        await runtime.close()
        gc.collect()  # finalize the leaked socket inside this test


async def test_silent_daemon_times_out(tmp_path: Path) -> None:
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # hold the connection open without a response

    path = tmp_path / "silent.sock"
    server = await asyncio.start_unix_server(never_answer, path=str(path))
    runtime = DockerRuntime(base_url=f"unix://{path}", call_timeout=0.5)
    try:
        with pytest.raises(RuntimeTimeout):
            await runtime.ping()
    finally:
        await runtime.close()
        server.close()
        for writer in connections:
            writer.close()
        await server.wait_closed()


async def test_list_owned_cheap_listing(
    runtime: DockerRuntime, busybox_image: str, controller_id: str
) -> None:
    created = await runtime.create(make_spec(busybox_image, controller_id))

    (listed,) = await runtime.list_owned({LABEL_CONTROLLER: controller_id}, detailed=False)

    assert listed.id == created.id
    assert listed.name == created.name
    assert listed.status == SandboxStatus.CREATED
    assert listed.labels[LABEL_CONTROLLER] == controller_id
    assert listed.created_at is not None
    assert abs((listed.created_at - created.created_at).total_seconds()) < 2  # type: ignore[operator]
