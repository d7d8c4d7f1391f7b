"""``sandboxctl dispatch SESSION -- CMD...`` and ``sandboxctl get missions``.

``dispatch`` posts a mission to ``/api/v1/sessions/SESSION/dispatch``. The server runs the
objective as ``/bin/sh -c OBJECTIVE`` on the least busy Ready instance that matches the filter.
One word after ``--`` is the objective as written, so shell syntax works when quoted
(``-- 'make test && make lint'``); several words are joined with shell quoting, so each stays
one argument. With ``--follow`` the mission's output is copied to stdout until the mission
ends, and ``sandboxctl`` exits with the mission's exit code (1 when it has none: Lost, or
Failed before it ran).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from agentic_sandbox.cli.argtypes import key_value, timeout_seconds
from agentic_sandbox.cli.client import ApiClient, CliError
from agentic_sandbox.cli.output import dump_json, dump_yaml, render_table

MISSIONS_PATH = "/api/v1/missions"
MISSION_HEADERS = ("MISSION", "SESSION", "STATE", "EXIT", "INSTANCE", "AGENT", "AGE")


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mission-id", metavar="ID", help="mission id (default: mission- and a random suffix)"
    )
    parser.add_argument("--agent-id", metavar="ID", help="run only on the agent with this id")
    parser.add_argument(
        "--capability",
        metavar="NAME",
        action="append",
        default=[],
        help="run only where the agent or an instance label offers NAME (repeatable)",
    )
    parser.add_argument(
        "--metadata",
        metavar="KEY=VALUE",
        action="append",
        type=key_value("--metadata", "KEY"),
        default=[],
        help="record KEY=VALUE in the mission's metadata (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=timeout_seconds,
        default=0,
        help="stop the command (SIGTERM, then SIGKILL) after SECONDS (default: 0, no limit)",
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="print the output and exit with the exit code"
    )
    parser.add_argument("-o", "--output", choices=("json", "yaml"), help="print the record")
    parser.add_argument(
        "-n", "--namespace", default="default", help="namespace of the instances (default: default)"
    )


def _options_parser() -> argparse.ArgumentParser:
    """Parse the options written between SESSION and '--', which REMAINDER would swallow."""
    parser = argparse.ArgumentParser(
        prog="sandboxctl dispatch", add_help=False, exit_on_error=False
    )
    _add_options(parser)
    return parser


def add_dispatch_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "dispatch",
        parents=[parent],
        help="run a mission on a Ready agent chosen by the controller",
        description="Dispatch a mission: the controller runs the command line with /bin/sh -c "
        "on the least busy Ready instance that matches the filter, and records its output, "
        "exit code and mission.* events.",
        epilog="examples:\n  sandboxctl dispatch s1 --mission-id build-1 -- 'make test'\n"
        "  sandboxctl dispatch s1 --capability python --follow -- python3 -c 'print(1)'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("session", metavar="SESSION", help="session id the mission belongs to")
    parser.add_argument("argv", metavar="CMD", nargs=argparse.REMAINDER, help="command line")
    _add_options(parser)
    parser.set_defaults(command="dispatch")


def _split_options(args: argparse.Namespace) -> list[str]:
    """Apply the options found before '--' in the command part; return the command's words."""
    argv = list(args.argv)
    if "--" not in argv:
        return argv
    separator = argv.index("--")
    options, argv = argv[:separator], argv[separator + 1 :]
    if options:
        try:
            _, unknown = _options_parser().parse_known_args(options, namespace=args)
        except argparse.ArgumentError as error:
            raise CliError(str(error)) from None
        if unknown:
            raise CliError(
                f"unexpected arguments before '--': {' '.join(unknown)}; write the command "
                "line after '--'"
            )
    return argv


def dispatch_body(args: argparse.Namespace) -> dict[str, Any]:
    """Build the dispatch request body; options between SESSION and '--' are applied first."""
    argv = _split_options(args)
    if not argv:
        raise CliError(
            "no command line given; write it after '--', as in: sandboxctl dispatch s1 -- make"
        )
    objective = argv[0] if len(argv) == 1 else shlex.join(argv)
    body: dict[str, Any] = {
        "mission_id": args.mission_id or f"mission-{uuid.uuid4().hex[:12]}",
        "objective": objective,
        "timeout_seconds": args.timeout,
    }
    executor_filter: dict[str, Any] = {}
    if args.agent_id:
        executor_filter["agent_id"] = args.agent_id
    if args.capability:
        executor_filter["capabilities"] = list(args.capability)
    if executor_filter:
        body["executor_filter"] = executor_filter
    if args.metadata:
        body["metadata"] = dict(args.metadata)
    return body


def run_dispatch(args: argparse.Namespace, client: ApiClient) -> int:
    # The body first: it applies the options written between SESSION and '--'.
    body = dispatch_body(args)
    path = f"/api/v1/sessions/{args.session}/dispatch"
    mission = client.post_json(path, body, params={"namespace": args.namespace})
    if not args.follow:
        _print_record(mission, args.output)
        return 1 if mission.get("state") in ("Failed", "Lost") else 0

    print(
        f"mission {mission.get('id')} runs on {mission.get('instance')} "
        f"(agent {mission.get('agentId')})",
        file=sys.stderr,
    )
    output_path = f"{MISSIONS_PATH}/{mission['id']}/output"
    for data in client.stream_bytes(output_path, params={"follow": "true"}):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    final = client.get(f"{MISSIONS_PATH}/{mission['id']}")
    if final.get("outputTruncated"):
        print(
            f"sandboxctl: the output was cut: the mission wrote {final.get('outputBytes')} "
            "bytes and the server keeps the first 1 MiB of each mission",
            file=sys.stderr,
        )
    if args.output:
        _print_record(final, args.output)
    return _exit_status(final)


def _print_record(mission: dict[str, Any], output: str | None) -> None:
    if output == "json":
        print(dump_json(mission))
    elif output == "yaml":
        print(dump_yaml(mission), end="")
    else:
        print(
            f"mission {mission.get('id')} {str(mission.get('state', '')).lower()} on "
            f"{mission.get('instance')} (agent {mission.get('agentId')})"
        )


def _exit_status(mission: dict[str, Any]) -> int:
    code = mission.get("exitCode")
    state = mission.get("state")
    if state != "Succeeded" and mission.get("message"):
        print(f"sandboxctl: mission {str(state).lower()}: {mission['message']}", file=sys.stderr)
    if isinstance(code, int):
        return code
    return 0 if state == "Succeeded" else 1


def _age(timestamp: str, now: datetime) -> str:
    try:
        seconds = int((now - datetime.fromisoformat(timestamp)).total_seconds())
    except ValueError:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def get_missions(args: argparse.Namespace, client: ApiClient) -> int:
    """List missions (``--session`` narrows them) or show the one named."""
    if args.name:
        document = client.get(f"{MISSIONS_PATH}/{args.name}")
        items = [document]
    else:
        document = client.get(MISSIONS_PATH, params={"session": args.session})
        items = [item for item in document.get("items") or [] if isinstance(item, dict)]
    if args.output in ("json", "yaml"):
        _print_record(document, args.output)
        return 0
    if not items:
        print("No missions found.", file=sys.stderr)
        return 0
    if args.output == "name":
        for item in items:
            print(f"mission/{item.get('id')}")
        return 0
    now = datetime.now(UTC)
    rows = [
        [
            str(item.get("id", "")),
            str(item.get("sessionId", "")),
            str(item.get("state", "")),
            "" if item.get("exitCode") is None else str(item["exitCode"]),
            str(item.get("instance", "")),
            str(item.get("agentId", "")),
            _age(str(item.get("dispatchedAt", "")), now),
        ]
        for item in items
    ]
    print(render_table(MISSION_HEADERS, rows))
    return 0
