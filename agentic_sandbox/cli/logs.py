"""``sandboxctl logs [-f] [--tail N] NAME``: print an instance's sandbox output.

The output is copied to standard output byte for byte, as the server streams it, and flushed
after each chunk so that ``-f`` shows lines as they are written. ``-f`` ends when the sandbox
stops, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

from agentic_sandbox.cli.client import ApiClient


def _tail_lines(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tail {text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--tail is {value}; give 0 or more lines")
    return value


def add_logs_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    logs = subparsers.add_parser(
        "logs",
        parents=[parent],
        help="print the output of an instance's sandbox",
        description="Print the stdout and stderr of an instance's sandbox.",
        epilog="examples:\n  sandboxctl logs web\n  sandboxctl logs -f --tail 20 web",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    logs.add_argument("name", metavar="NAME", help="instance name")
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new output until the sandbox stops",
    )
    logs.add_argument(
        "--tail",
        metavar="N",
        type=_tail_lines,
        help="start with the last N lines (default: all of the output)",
    )
    logs.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    logs.set_defaults(command="logs")


def run_logs(args: argparse.Namespace, client: ApiClient) -> int:
    out = sys.stdout.buffer
    chunks = client.stream_logs(args.namespace, args.name, tail=args.tail, follow=args.follow)
    for chunk in chunks:
        out.write(chunk)
        out.flush()
    return 0
