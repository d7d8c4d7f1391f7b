"""Turning an Instance into the driver-neutral SandboxSpec, with the host's safety policy applied.

Host policy lives here, not in ``crds``, because it depends on this machine: which host paths a
mount may use, whether the Docker socket may be mounted, where per-instance workspaces go.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentic_sandbox.controller.agent_identity import (
    LABEL_AGENT_SECRET_SHA256,
    LABEL_IMAGE_CARRIES_AGENT,
    secret_digest,
)
from agentic_sandbox.crds.instance import DEFAULT_CPUS, DEFAULT_MEMORY, Instance
from agentic_sandbox.crds.loadout import LoadoutSpec, NetworkMode
from agentic_sandbox.crds.loadout_merge import ResolvedLoadout
from agentic_sandbox.crds.quantity import parse_memory
from agentic_sandbox.crds.spechash import HASH_SCHEMA_VERSION, spec_hash
from agentic_sandbox.errors import InvalidRuntimeSpec
from agentic_sandbox.runtimes.base import (
    LABEL_CONTROLLER,
    LABEL_HASH_SCHEMA,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_SPEC_HASH,
    LABEL_UID,
    MountSpec,
    SandboxSpec,
    VmSpec,
)

DOCKER_SOCKETS = frozenset({"/var/run/docker.sock", "/run/docker.sock"})
WORKSPACE_PATH = "/workspace"
# File in each workspace naming the controller and instance uid it was created for. The
# garbage collector removes a workspace only when this file proves the controller made it.
WORKSPACE_OWNER_FILE = ".agentic-sandbox-owner"
# Where a sandbox without a network finds the agent server's Unix socket. The socket's host
# directory is mounted read-only: connecting to a socket needs no write access to its mount.
AGENT_SOCKET_MOUNT = "/run/agentic-sandbox"
AGENT_SOCKET_NAME = "agent.sock"
# QEMU's user-mode network (slirp) maps this guest address to the host's loopback, so a virtual
# machine reaches an agent server on 127.0.0.1 without a listener on any other host address.
USER_NETWORK_HOST_ADDRESS = "10.0.2.2"


@dataclass(frozen=True)
class HostPolicy:
    controller_id: str
    mount_roots: list[Path]
    workspace_root: Path
    management_server: str
    allow_docker_socket: bool = False
    # Host directory of the agent server's Unix socket, for sandboxes with network none. None
    # leaves those sandboxes without a way to reach the agent server.
    agent_socket_dir: Path | None = None
    # Address that virtual machines on QEMU's user-mode network dial for the agent server
    # (USER_NETWORK_HOST_ADDRESS and the agent port). None when the server does not listen on
    # loopback, so those machines cannot reach it.
    vm_management_server: str | None = None


def sandbox_name(instance: Instance) -> str:
    """Runtime object name: the instance name, prefixed with its namespace outside ``default``.

    DNS-1123 labels contain no '.', so ``namespace.name`` can never collide with a plain name.
    """
    meta = instance.metadata
    return meta.name if meta.namespace == "default" else f"{meta.namespace}.{meta.name}"


def ownership_labels(instance: Instance, controller_id: str) -> dict[str, str]:
    """Return the labels that prove this controller created a runtime object for this instance."""
    return {
        LABEL_MANAGED: "true",
        LABEL_CONTROLLER: controller_id,
        LABEL_INSTANCE: instance.key,
        LABEL_UID: str(instance.metadata.uid),
    }


def workspace_dir(instance: Instance, policy: HostPolicy) -> Path:
    return policy.workspace_root / instance.metadata.namespace / instance.metadata.name


def write_workspace_owner(workspace: Path, instance: Instance, controller_id: str) -> None:
    """Write the owner file of ``workspace`` as JSON: controller id, instance uid and key.

    The sandbox can write to its workspace, so the file is written to a fresh temporary name and
    renamed over the old one: a symlink planted at the owner file's name is replaced, never
    followed.
    """
    owner = {
        "controller": controller_id,
        "uid": str(instance.metadata.uid),
        "instance": instance.key,
    }
    descriptor, temporary = tempfile.mkstemp(dir=workspace, prefix=f"{WORKSPACE_OWNER_FILE}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(owner, file)
        os.replace(temporary, workspace / WORKSPACE_OWNER_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _inside(path: Path, roots: list[Path]) -> bool:
    for root in roots:
        resolved_root = Path(os.path.realpath(root))
        if path == resolved_root or resolved_root in path.parents:
            return True
    return False


def check_mounts(instance: Instance, policy: HostPolicy) -> list[MountSpec]:
    """Validate every mount against the host policy; raise InvalidRuntimeSpec naming the field."""
    mounts: list[MountSpec] = []
    for index, mount in enumerate(instance.spec.mounts):
        field = f"spec.mounts[{index}].hostPath"
        # realpath resolves symlinks, so a link inside an allowed root cannot point outside it.
        resolved = Path(os.path.realpath(mount.host_path))
        if str(resolved) in DOCKER_SOCKETS or mount.host_path in DOCKER_SOCKETS:
            if not policy.allow_docker_socket:
                _reject(
                    instance,
                    field,
                    mount.host_path,
                    "mounting the Docker socket gives the sandbox control of the host; start "
                    "the controller with --allow-docker-socket to permit it",
                )
        elif not _inside(resolved, policy.mount_roots):
            roots = ", ".join(str(root) for root in policy.mount_roots)
            _reject(
                instance,
                field,
                mount.host_path,
                f"is outside the allowed mount roots ({roots}); move the data under one of them "
                "or add a root with --allowed-mount-root",
            )
        if not resolved.exists():
            _reject(
                instance,
                field,
                mount.host_path,
                "does not exist on the host; create it first (the controller never creates "
                "host paths for mounts)",
            )
        mounts.append(MountSpec(str(resolved), mount.path, mount.read_only))
    return mounts


def _reject(instance: Instance, field: str, value: str, problem: str) -> None:
    message = f"{field} of instance {instance.key} is {value!r}: {problem}"
    raise InvalidRuntimeSpec(message, field=field, value=value)


def desired_hashes(instance: Instance) -> dict[str, str]:
    """Compute the instance's spec hash under every hash schema this controller supports."""
    return {
        str(version): spec_hash(instance.spec, schema_version=version)
        for version in range(1, HASH_SCHEMA_VERSION + 1)
    }


def build_sandbox_spec(
    instance: Instance,
    policy: HostPolicy,
    loadout: ResolvedLoadout | None = None,
    *,
    agent_secret: str | None = None,
) -> SandboxSpec:
    """Build what the driver creates. Creates the per-instance workspace when requested.

    ``loadout`` is the instance's loadout, resolved; only libvirt instances use it.
    ``agent_secret`` is the new sandbox's agent secret: it goes into ``AGENT_SECRET`` and only
    its digest into the labels.
    """
    if instance.spec.runtime == "libvirt":
        return _build_vm_spec(instance, policy, loadout, agent_secret)
    spec = instance.spec
    if spec.image is None:
        # NOTE: a loadout that supplies an image for Docker instances is not resolved yet.
        raise InvalidRuntimeSpec(
            f"spec.image of instance {instance.key} is not set; loadouts cannot supply an "
            "image for Docker instances yet, so set spec.image",
            field="spec.image",
        )
    mounts = check_mounts(instance, policy)
    if spec.agentshare:
        workspace = workspace_dir(instance, policy)
        workspace.mkdir(parents=True, exist_ok=True)
        write_workspace_owner(workspace, instance, policy.controller_id)
        mounts.append(MountSpec(str(workspace), WORKSPACE_PATH, False))
    if _uses_agent_socket(instance, policy):
        assert policy.agent_socket_dir is not None
        mounts.append(MountSpec(str(policy.agent_socket_dir), AGENT_SOCKET_MOUNT, True))

    return SandboxSpec(
        name=sandbox_name(instance),
        image=spec.image,
        labels=_labels(instance, policy, agent_secret),
        command=list(spec.command) if spec.command is not None else None,
        env=_env(instance, policy, agent_secret),
        mounts=mounts,
        network=spec.network,
        cpus=spec.resources.cpus,
        memory_bytes=spec.resources.memory_bytes,
        pids=spec.resources.pids,
        stop_timeout=spec.termination_grace_period_seconds,
    )


def _labels(instance: Instance, policy: HostPolicy, agent_secret: str | None) -> dict[str, str]:
    labels = ownership_labels(instance, policy.controller_id)
    labels[LABEL_SPEC_HASH] = spec_hash(instance.spec)
    labels[LABEL_HASH_SCHEMA] = str(HASH_SCHEMA_VERSION)
    if agent_secret is not None:
        labels[LABEL_AGENT_SECRET_SHA256] = secret_digest(agent_secret)
    return labels


def _uses_agent_socket(instance: Instance, policy: HostPolicy) -> bool:
    return instance.spec.network == "none" and policy.agent_socket_dir is not None


def _env(instance: Instance, policy: HostPolicy, agent_secret: str | None) -> dict[str, str]:
    env = dict(instance.spec.env)
    # The agent id is the sandbox name, which is unique across namespaces.
    env["AGENT_ID"] = sandbox_name(instance)
    if agent_secret is not None:
        env["AGENT_SECRET"] = agent_secret
    if instance.spec.runtime == "docker" and _uses_agent_socket(instance, policy):
        env["MANAGEMENT_SERVER"] = f"unix://{AGENT_SOCKET_MOUNT}/{AGENT_SOCKET_NAME}"
    else:
        env["MANAGEMENT_SERVER"] = policy.management_server
    return env


def host_memory_bytes() -> int:
    """Return this machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_host_memory(instance: Instance, memory: int, field: str) -> None:
    """Refuse a VM bigger than this machine's memory, which QEMU could never allocate."""
    host = host_memory_bytes()
    if memory > host:
        raise InvalidRuntimeSpec(
            f"{field} of instance {instance.key} asks for {memory >> 20} MiB, but this machine "
            f"has {host >> 20} MiB; ask for less, such as '1Gi'",
            field="spec.resources.memory",
            value=memory,
        )


def _build_vm_spec(
    instance: Instance,
    policy: HostPolicy,
    loadout: ResolvedLoadout | None,
    agent_secret: str | None,
) -> SandboxSpec:
    """Build a virtual machine's spec: the Instance's own settings win over its loadout's."""
    spec = instance.spec
    if spec.mounts or spec.agentshare:
        field = "spec.mounts" if spec.mounts else "spec.agentshare"
        raise InvalidRuntimeSpec(
            f"{field} of instance {instance.key} is set, but libvirt instances cannot mount "
            "host directories yet; remove it, or use runtime docker",
            field=field,
        )
    resolved = loadout or ResolvedLoadout(name="", chain=(), spec=LoadoutSpec())
    base_image = spec.image or resolved.spec.base_image
    if base_image is None:
        where = f"loadout {resolved.name!r}" if resolved.name else "spec.loadout"
        raise InvalidRuntimeSpec(
            f"instance {instance.key} has no base disk image: neither spec.image nor "
            f"{where} sets one; set spec.image to the path of a qcow2 or raw image, or name a "
            "loadout with baseImage",
            field="spec.image",
        )
    # Stored records carry the defaults, so a value equal to the default counts as unset and
    # the loadout's value applies.
    resources = spec.resources
    cpus = resources.cpus if resources.cpus != DEFAULT_CPUS else resolved.cpus
    memory = resources.memory_bytes
    memory_field = "spec.resources.memory"
    if memory == parse_memory(DEFAULT_MEMORY):
        memory = resolved.memory_bytes
        memory_field = f"resources.memory of loadout {resolved.name!r}"
    _check_host_memory(instance, memory, memory_field)
    loadout_disk = resolved.spec.resources.disk if resolved.spec.resources else None
    disk = spec.resources.disk or loadout_disk

    labels = _labels(instance, policy, agent_secret)
    if resolved.spec.agent:
        # The label a container inherits from an agent image, so Ready waits for the agent.
        labels[LABEL_IMAGE_CARRIES_AGENT] = "true"
    env = _env(instance, policy, agent_secret)
    server = _vm_management_server(instance, policy, resolved)
    if server is None:
        del env["MANAGEMENT_SERVER"]
    else:
        env["MANAGEMENT_SERVER"] = server
    return SandboxSpec(
        name=sandbox_name(instance),
        image=base_image,
        labels=labels,
        command=list(spec.command) if spec.command is not None else None,
        env=env,
        network=resolved.network_mode.value,
        cpus=cpus,
        memory_bytes=memory,
        pids=spec.resources.pids,
        stop_timeout=spec.termination_grace_period_seconds,
        runtime="libvirt",
        vm=VmSpec(
            base_image=base_image,
            loadout=resolved,
            disk_bytes=parse_memory(disk) if disk else None,
        ),
    )


def _vm_management_server(
    instance: Instance, policy: HostPolicy, loadout: ResolvedLoadout
) -> str | None:
    """Return the agent server address a virtual machine dials, or None when it has none.

    Only QEMU's user-mode network reaches the server, through the host's loopback. Raises
    InvalidRuntimeSpec when the loadout's guest runs the agent and cannot reach the server,
    because that instance would never become Ready.
    """
    mode = loadout.network_mode
    if mode == NetworkMode.USER and policy.vm_management_server is not None:
        return policy.vm_management_server
    if not loadout.spec.agent:
        return None
    if mode == NetworkMode.USER:
        problem = (
            "the agent server does not listen on 127.0.0.1, which the guest reaches as "
            f"{USER_NETWORK_HOST_ADDRESS}; add 127.0.0.1 to AGENTIC_SANDBOX_AGENT_HOSTS"
        )
    else:
        # NOTE: the libvirt network's host address (virbr0) would work only when the agent
        # server listens there, and the controller does not know that address.
        problem = (
            f"its network mode {mode.value!r} cannot reach the agent server; only mode "
            "'user' can, so set network.mode to user in the loadout"
        )
    raise InvalidRuntimeSpec(
        f"loadout {loadout.name!r} of instance {instance.key} runs the agent, but {problem}",
        field="spec.loadout",
        value=loadout.name,
    )
