"""``sandboxctl start|stop|restart NAME...``: lifecycle verbs over the API.

The verbs change desired state; the controller then starts or stops the sandboxes. Stop keeps
the container and its data; it never deletes.
"""

from __future__ import annotations

import argparse
from typing import Any

from agentic_sandbox.cli.client import INSTANCES_PATH, ApiClient, ApiError, CliError, print_error

VERBS = {
    "start": "start stopped instances (restores the run strategy a stop replaced)",
    "stop": "stop instances gracefully; the containers, VMs and their data are kept",
    "restart": "stop and start the sandboxes of instances, without recreating them",
}


def add_verb_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    for verb, summary in VERBS.items():
        command = subparsers.add_parser(
            verb, parents=[parent], help=summary, description=summary[0].upper() + summary[1:] + "."
        )
        command.add_argument("names", nargs="+", metavar="NAME", help="instance names")
        command.add_argument(
            "-n",
            "--namespace",
            default="default",
            help="namespace of the instances (default: default)",
        )
        if verb != "start":
            command.add_argument(
                "--timeout",
                type=int,
                metavar="SECONDS",
                help="seconds the sandbox gets to exit after SIGTERM before it is killed "
                "(default: the instance's spec.terminationGracePeriodSeconds)",
            )
            command.add_argument(
                "--force",
                action="store_true",
                help="kill at once, with no grace period (the same as --timeout 0)",
            )
        command.set_defaults(command=verb)


def run_verb(args: argparse.Namespace, client: ApiClient) -> int:
    params: dict[str, Any] = {"namespace": args.namespace}
    if getattr(args, "force", False):
        params["force"] = "true"
    elif getattr(args, "timeout", None) is not None:
        if args.timeout < 0:
            raise CliError(f"--timeout is {args.timeout}; give 0 or more seconds")
        params["timeout"] = args.timeout
    failures = 0
    for name in args.names:
        try:
            client.post(f"{INSTANCES_PATH}/{name}/{args.command}", params=params)
        except ApiError as error:
            failures += 1
            print_error(CliError(f"instance/{name}: {error.message}", details=error.details))
            continue
        print(f"instance/{name} {args.command} requested")
    return 1 if failures else 0
