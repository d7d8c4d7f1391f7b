"""``sandboxctl exec NAME -- CMD...``: run a command in an instance's sandbox through its agent.

The command's stdout and stderr are copied to this process's stdout and stderr as they arrive,
and ``sandboxctl`` exits with the command's exit code (128 + N after signal N). A command that
could not be started (not found, not executable) prints the agent's reason on stderr and exits
127 or 126, as a shell would.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from typing import Any

from agentic_sandbox.cli.argtypes import key_value, timeout_seconds
from agentic_sandbox.cli.client import ApiClient, CliError


def add_exec_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "exec",
        parents=[parent],
        help="run a command in an instance's sandbox through its agent",
        description="Run a command in an instance's sandbox through the agent inside it, "
        "stream its output and exit with its exit code. The command runs without a shell; "
        "write 'sh -c \"...\"' for shell syntax.",
        epilog="examples:\n  sandboxctl exec web -- uname -a\n"
        "  sandboxctl exec -e DEBUG=1 -w /workspace web -- make test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="instance name")
    parser.add_argument("argv", metavar="CMD", nargs=argparse.REMAINDER, help="command to run")
    parser.add_argument(
        "-e",
        "--env",
        metavar="NAME=VALUE",
        action="append",
        type=key_value("--env", "NAME"),
        default=[],
        help="set an environment variable for the command (repeatable)",
    )
    parser.add_argument("-w", "--workdir", metavar="DIR", help="absolute working directory")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=timeout_seconds,
        default=0,
        help="stop the command (SIGTERM, then SIGKILL) after SECONDS (default: 0, no limit)",
    )
    parser.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    parser.set_defaults(command="exec")


def exec_body(args: argparse.Namespace) -> dict[str, Any]:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise CliError("no command given; write it after '--', as in: sandboxctl exec web -- ls")
    body: dict[str, Any] = {"command": argv, "timeoutSeconds": args.timeout}
    if args.env:
        body["env"] = dict(args.env)
    if args.workdir:
        body["workingDir"] = args.workdir
    return body


def run_exec(args: argparse.Namespace, client: ApiClient) -> int:
    for line in client.stream_exec(args.namespace, args.name, exec_body(args)):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise CliError("the server sent an exec line that is not JSON") from None
        if "exitCode" in item:
            return _report_exit(item)
        out = sys.stderr.buffer if item.get("stream") == "stderr" else sys.stdout.buffer
        try:
            out.write(base64.b64decode(item.get("data", ""), validate=True))
        except binascii.Error:
            raise CliError("the server sent exec output that is not valid base64") from None
        out.flush()
    raise CliError(
        "the exec stream ended before the command's exit status arrived; the command may "
        "still be running in the sandbox"
    )


def _report_exit(item: dict[str, Any]) -> int:
    code = int(item.get("exitCode", 1))
    if item.get("error"):
        print(f"sandboxctl: {item['error']}", file=sys.stderr)
    return code
