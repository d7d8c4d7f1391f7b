"""``sandboxctl``: parse the command line, run one command, return its exit code.

Exit codes: 0 on success, 1 when a command failed (``error: ...`` on standard error), 2 for a
command-line usage error. ``diff`` follows kubectl instead: 1 means the manifests differ from the
live objects and 2 means it failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from agentic_sandbox.cli.changes import run_apply, run_delete
from agentic_sandbox.cli.client import ApiClient, CliError, print_error
from agentic_sandbox.cli.describe import run_describe
from agentic_sandbox.cli.dispatch import run_dispatch
from agentic_sandbox.cli.events import run_events
from agentic_sandbox.cli.exec import run_exec
from agentic_sandbox.cli.gc import run_gc
from agentic_sandbox.cli.get import run_get
from agentic_sandbox.cli.gitsources import run_diff_command, run_sync
from agentic_sandbox.cli.logs import run_logs
from agentic_sandbox.cli.options import (
    DEFAULT_SERVER,
    ENV_SERVER,
    ENV_STATE_DIR,
    ENV_TOKEN,
    build_parser,
)
from agentic_sandbox.cli.serve import ServeFunction, run_serve
from agentic_sandbox.cli.verbs import run_verb
from agentic_sandbox.cli.wait import run_wait
from agentic_sandbox.controller.config import DEFAULT_STATE_DIR, Settings
from agentic_sandbox.controller.credentials import read_token

CLIENT_COMMANDS = {
    "apply": run_apply,
    "get": run_get,
    "describe": run_describe,
    "delete": run_delete,
    "start": run_verb,
    "stop": run_verb,
    "restart": run_verb,
    "gc": run_gc,
    "logs": run_logs,
    "exec": run_exec,
    "dispatch": run_dispatch,
    "wait": run_wait,
    "diff": run_diff_command,
    "sync": run_sync,
}


def resolve_token(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str | None, str]:
    """Find the API token: ``--token``, else SANDBOXCTL_TOKEN, else the state directory's file.

    Returns the token (None when there is none) and a hint to print when the server rejects it.
    The hint names where the token came from, never the token itself.
    """
    if args.token:
        return args.token, "the server rejected the token given with --token"
    if env.get(ENV_TOKEN):
        return env[ENV_TOKEN], f"the server rejected the token in {ENV_TOKEN}"

    state_dir = Path(args.state_dir or env.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR)
    path = Settings(state_dir=state_dir).token_path
    try:
        token = read_token(path)
    except OSError as error:
        reason = error.strerror or str(error)
        return None, f"no token was sent because {path} cannot be read ({reason}); " + (
            f"pass --token or set {ENV_TOKEN}"
        )
    if token is None:
        return None, (
            f"no token was sent because {path} does not exist; pass --token, set {ENV_TOKEN}, "
            f"or point --state-dir at the controller's state directory"
        )
    return token, f"the server rejected the token read from {path}; is --server its controller?"


def _run_client_command(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    server = args.server or env.get(ENV_SERVER) or DEFAULT_SERVER
    token, hint = resolve_token(args, env)
    if args.command == "events":
        # Its own HTTP client has a read timeout sized for the stream's keep-alive comments.
        return run_events(args, server=server, token=token, token_hint=hint)
    with ApiClient(server, token, token_hint=hint) as client:
        return CLIENT_COMMANDS[args.command](args, client)


def run_cli(argv: list[str] | None = None, *, serve: ServeFunction | None = None) -> int:
    """Run ``sandboxctl`` with ``argv`` (default: the process arguments); returns the exit code.

    ``serve`` runs the controller for ``sandboxctl serve``; the program's entry point passes it
    so that this package does not import the composition root.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        # argparse exits after --help (0) and after a usage error (2).
        return exit_.code if isinstance(exit_.code, int) else 2

    try:
        if args.command == "serve":
            return run_serve(args, serve)
        return _run_client_command(args, os.environ)
    except CliError as error:
        print_error(error)
        return 1
    except KeyboardInterrupt:
        return 130
