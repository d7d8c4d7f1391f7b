"""The ``sandboxctl`` command line: subcommands, options and their help text.

Every option that has an environment variable names it in its help, with its default and unit.
Options default to None here, so that ``serve`` can tell a given option from an absent one and
overlay only what was given on the settings read from the environment.
"""

from __future__ import annotations

import argparse

from agentic_sandbox.cli.argtypes import positive_int
from agentic_sandbox.cli.diff import add_diff_command
from agentic_sandbox.cli.dispatch import add_dispatch_command
from agentic_sandbox.cli.events import add_events_command
from agentic_sandbox.cli.exec import add_exec_command
from agentic_sandbox.cli.gitsources import add_sync_command
from agentic_sandbox.cli.logs import add_logs_command
from agentic_sandbox.cli.verbs import add_verb_commands
from agentic_sandbox.cli.wait import add_wait_command
from agentic_sandbox.controller.config import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_LIBVIRT_URI,
    DEFAULT_LOADOUT_DIR,
    DEFAULT_STATE_DIR,
    DEFAULT_VM_DIR,
    Settings,
)

PROGRAM = "sandboxctl"
ENV_SERVER = "SANDBOXCTL_SERVER"
ENV_TOKEN = "SANDBOXCTL_TOKEN"
ENV_STATE_DIR = "AGENTIC_SANDBOX_STATE_DIR"
DEFAULT_SERVER = f"http://127.0.0.1:{DEFAULT_HTTP_PORT}"

INSTANCE_WORDS = ("instances", "instance", "inst")
EVENT_WORDS = ("events", "event", "ev")
LOADOUT_WORDS = ("loadouts", "loadout", "lo")
GITSOURCE_WORDS = ("gitsources", "gitsource", "gs")
MISSION_WORDS = ("missions", "mission", "mi")
OUTPUT_FORMATS = ("wide", "yaml", "json", "name")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_DEFAULTS = Settings()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def _add_serve_listen_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--state-dir",
        metavar="DIR",
        help="directory of the database, the API token and the controller id "
        f"(env {ENV_STATE_DIR}; default {DEFAULT_STATE_DIR})",
    )
    group.add_argument(
        "--manifests",
        metavar="DIR",
        help="watch DIR recursively and apply its *.yaml, *.yml and *.json manifests "
        "(env AGENTIC_SANDBOX_MANIFESTS; default: no directory watched)",
    )
    group.add_argument(
        "--loadout-dir",
        metavar="DIR",
        help="read VM loadouts from the *.yaml and *.yml files of DIR, besides the Loadout "
        "resources in the store (env AGENTIC_SANDBOX_LOADOUT_DIR; default "
        f"{DEFAULT_LOADOUT_DIR})",
    )
    group.add_argument(
        "--libvirt-uri",
        metavar="URI",
        help="libvirt connection for runtime: libvirt instances, or 'none' to run only Docker "
        f"(env AGENTIC_SANDBOX_LIBVIRT_URI; default {DEFAULT_LIBVIRT_URI})",
    )
    group.add_argument(
        "--vm-dir",
        metavar="DIR",
        help="directory for each VM's disk overlay, cloud-init seed and serial log; QEMU's "
        f"user must be able to reach it (env AGENTIC_SANDBOX_VM_DIR; default {DEFAULT_VM_DIR})",
    )
    group.add_argument(
        "--host",
        metavar="ADDRESS",
        help=f"address the HTTP API listens on (env AGENTIC_SANDBOX_HOST; "
        f"default {_DEFAULTS.host}); a non-loopback address needs --token-file",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the API token (mode 600, at least 32 characters) instead of the one "
        "generated into DIR/api-token (env AGENTIC_SANDBOX_TOKEN_FILE)",
    )
    group.add_argument(
        "--port",
        metavar="PORT",
        type=_port,
        help=f"TCP port of the HTTP API (env AGENTIC_SANDBOX_PORT; default {DEFAULT_HTTP_PORT})",
    )
    group.add_argument(
        "--grpc-port",
        metavar="PORT",
        type=_port,
        help="TCP port of the agent gRPC server "
        f"(env AGENTIC_SANDBOX_GRPC_PORT; default {DEFAULT_GRPC_PORT})",
    )


def _add_serve_controller_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--docker-host",
        metavar="URL",
        help="Docker Engine address, such as unix:///var/run/docker.sock or "
        "tcp://127.0.0.1:2375 (env DOCKER_HOST; default: the Docker client's default, "
        "unix:///var/run/docker.sock)",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.lower,
        choices=LOG_LEVELS,
        help=f"minimum log level printed: {', '.join(LOG_LEVELS)} "
        f"(env AGENTIC_SANDBOX_LOG_LEVEL; default {_DEFAULTS.log_level})",
    )
    group.add_argument(
        "--controller-id",
        metavar="ID",
        help="id written on every container this controller creates, so it removes only its "
        "own (env AGENTIC_SANDBOX_CONTROLLER_ID; default: generated on first start and kept "
        "in DIR/controller-id)",
    )
    group.add_argument(
        "--allowed-mount-root",
        metavar="PATH",
        action="append",
        dest="allowed_mount_roots",
        help="host directory that spec.mounts may bind from; repeat for several "
        "(env AGENTIC_SANDBOX_ALLOWED_MOUNT_ROOTS, colon-separated; default: DIR/workspaces "
        "and /srv/agentshare)",
    )
    group.add_argument(
        "--allow-docker-socket",
        action="store_true",
        default=None,
        help="let spec.mounts bind the Docker socket, which gives that sandbox root on the host "
        "(env AGENTIC_SANDBOX_ALLOW_DOCKER_SOCKET; default: refused)",
    )
    group.add_argument(
        "--workers",
        metavar="N",
        type=positive_int,
        help=f"instances reconciled at once (env AGENTIC_SANDBOX_WORKERS; "
        f"default {_DEFAULTS.workers})",
    )


def _add_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the controller, the HTTP API and the manifest directory watcher",
        description=(
            "Run the controller, the HTTP API and, with --manifests, the directory watcher.\n"
            "Every option can also be set by the environment variable named in its help.\n"
            "An option given on the command line wins over the environment."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_serve_listen_options(serve.add_argument_group("state and listening options"))
    _add_serve_controller_options(serve.add_argument_group("controller options"))
    serve.set_defaults(command="serve")


def _client_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server options")
    group.add_argument(
        "--server",
        metavar="URL",
        help=f"URL of the sandboxctl API (env {ENV_SERVER}; default {DEFAULT_SERVER})",
    )
    group.add_argument(
        "--token",
        metavar="TOKEN",
        help="API bearer token (env "
        f"{ENV_TOKEN}; default: read from DIR/api-token). Prefer the variable: a token on the "
        "command line is visible to other users in the process list",
    )
    group.add_argument(
        "--state-dir",
        metavar="DIR",
        help="state directory of a local "
        f"controller, read for its api-token file (env {ENV_STATE_DIR}; default "
        f"{DEFAULT_STATE_DIR})",
    )
    return parent


def _add_namespace(parser: argparse.ArgumentParser, *, all_namespaces: bool) -> None:
    scope = parser.add_mutually_exclusive_group() if all_namespaces else parser
    scope.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: default)")
    if all_namespaces:
        scope.add_argument(
            "-A", "--all-namespaces", action="store_true", help="list instances of every namespace"
        )


def _add_get(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    get = subparsers.add_parser(
        "get",
        parents=[parent],
        help="list instances, loadouts, git sources, missions or events",
        description="List instances, loadouts, git sources or missions, or show one, as a table "
        "or as YAML or JSON; or list events.",
        epilog="examples:\n  sandboxctl get instances -A -o wide\n"
        "  sandboxctl get inst web -o yaml\n  sandboxctl get loadouts\n"
        "  sandboxctl get events --instance web\n"
        "to watch new events as they happen: sandboxctl events --watch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get.add_argument(
        "resource",
        choices=INSTANCE_WORDS + LOADOUT_WORDS + GITSOURCE_WORDS + EVENT_WORDS + MISSION_WORDS,
        metavar="RESOURCE",
        help="instances (or instance, inst), loadouts (or loadout, lo), gitsources (or "
        "gitsource, gs), events or missions (or mission, mi)",
    )
    get.add_argument("name", nargs="?", metavar="NAME", help="show only the object of this name")
    _add_namespace(get, all_namespaces=True)
    get.add_argument(
        "-l", "--selector", metavar="SELECTOR", help="label selector such as app=web,tier=agents"
    )
    get.add_argument("--phase", metavar="PHASE", help="list only instances in this phase")
    get.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        metavar="FORMAT",
        help=f"output format: {', '.join(OUTPUT_FORMATS)} (default: a table)",
    )
    get.add_argument("--instance", metavar="NAME", help="events: only those of this instance")
    get.add_argument("--session", metavar="ID", help="missions: only those of this session")
    get.add_argument("--since", metavar="ID", type=int, help="events: only those after this id")
    get.add_argument(
        "--limit",
        metavar="N",
        type=positive_int,
        help="events: at most N; without --since, the newest N (default 100)",
    )
    get.set_defaults(command="get")


def _add_describe(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    describe = subparsers.add_parser(
        "describe",
        parents=[parent],
        help="show an instance, a loadout or a git source in detail",
        description="Show an instance's metadata, spec, status, conditions and recent events; "
        "or a loadout as written and merged, with the loadout that set each value.",
    )
    describe.add_argument(
        "resource",
        choices=INSTANCE_WORDS + LOADOUT_WORDS + GITSOURCE_WORDS,
        metavar="RESOURCE",
        help="instance (or instances, inst), loadout (or loadouts, lo) or gitsource (or "
        "gitsources, gs)",
    )
    describe.add_argument("name", metavar="NAME")
    _add_namespace(describe, all_namespaces=False)
    describe.set_defaults(command="describe")


def _add_apply(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    apply = subparsers.add_parser(
        "apply",
        parents=[parent],
        help="create or update instances from manifests",
        description="Validate manifests locally, then create or update each object on the "
        "server. Nothing is sent when any manifest is invalid.",
    )
    apply.add_argument(
        "-f",
        "--filename",
        metavar="PATH",
        action="append",
        required=True,
        help="manifest file, directory (searched recursively for *.yaml, *.yml "
        "and *.json) or - for standard input; repeat for several",
    )
    apply.add_argument(
        "--takeover",
        action="store_true",
        help="manage instances through the API even when a manifest file in the watched "
        "directory owns them (the file stops managing them)",
    )
    apply.add_argument(
        "--dry-run",
        choices=("none", "client", "server"),
        default="none",
        metavar="MODE",
        help="none (default) applies; client only validates the manifests locally; server "
        "runs every server check and prints what would change and the operations the "
        "controller would run, changing nothing",
    )
    apply.set_defaults(command="apply")


def _add_delete(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    delete = subparsers.add_parser(
        "delete",
        parents=[parent],
        help="delete instances by name or by manifest",
        description="Delete instances named on the command line, or those that manifests "
        "describe. The controller removes each container before the record goes.",
        epilog="examples:\n  sandboxctl delete instance web api\n  sandboxctl delete -f manifests/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    delete.add_argument(
        "resource",
        nargs="?",
        choices=INSTANCE_WORDS,
        metavar="RESOURCE",
        help="instance (or instances, inst)",
    )
    delete.add_argument("names", nargs="*", metavar="NAME")
    delete.add_argument(
        "-f",
        "--filename",
        metavar="PATH",
        action="append",
        help="delete the objects of this manifest file or directory",
    )
    delete.add_argument(
        "--force",
        action="store_true",
        help="release the record even if its containers cannot be removed (for example when "
        "Docker is gone for good); leftover containers are removed later by the garbage "
        "collector, and the forced delete is recorded as an event",
    )
    _add_namespace(delete, all_namespaces=False)
    delete.set_defaults(command="delete")


def _add_gc(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    gc = subparsers.add_parser(
        "gc",
        parents=[parent],
        help="remove orphaned containers, VMs and workspaces now, or list them with --dry-run",
        description="Run one garbage collection pass on the controller and show each object it "
        "removed, or with --dry-run would remove, and why. The rules are those of the periodic "
        "pass: only this controller's objects whose instance is gone, and stopped unowned "
        "containers whose name has the opt-in prefix.",
    )
    gc.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; remove nothing"
    )
    gc.add_argument(
        "-o",
        "--output",
        choices=("yaml", "json"),
        metavar="FORMAT",
        help="output format: yaml or json (default: a table)",
    )
    gc.set_defaults(command="gc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Run and manage agentic-sandbox: agent sandboxes declared as Instance "
        "resources and converged to Docker containers and libvirt virtual machines.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    parent = _client_options()
    _add_serve(subparsers)
    _add_apply(subparsers, parent)
    _add_get(subparsers, parent)
    _add_describe(subparsers, parent)
    _add_delete(subparsers, parent)
    add_verb_commands(subparsers, parent)
    add_logs_command(subparsers, parent)
    add_exec_command(subparsers, parent)
    add_dispatch_command(subparsers, parent)
    add_wait_command(subparsers, parent)
    add_diff_command(subparsers, parent)
    add_sync_command(subparsers, parent)
    add_events_command(subparsers, parent)
    _add_gc(subparsers, parent)
    return parser
