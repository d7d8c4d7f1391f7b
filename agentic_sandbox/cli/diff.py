"""``sandboxctl diff -f PATH``: what an apply of the manifests would change, as unified diffs.

``diff --gitsource NAME`` compares the next sync of a GitSource instead (``cli.gitsources``).

For each object, the live labels, annotations and spec on the server are compared with those of
the manifest, both in normalized wire form (defaults filled in, quantities normalized), so only
real changes show. The source annotation is left out: the server sets it on every write.
An object that does not exist yet diffs against nothing.

Exit codes, as ``kubectl diff`` has them: 0 when nothing would change, 1 when something would,
2 when a manifest or a request failed.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any

from agentic_sandbox.cli.client import ApiClient, ApiError, CliError, print_error
from agentic_sandbox.cli.manifests import load_documents
from agentic_sandbox.cli.output import dump_yaml
from agentic_sandbox.crds.meta import SOURCE_ANNOTATION

EXIT_SAME = 0
EXIT_CHANGED = 1
EXIT_ERROR = 2


def add_diff_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    diff = subparsers.add_parser(
        "diff",
        parents=[parent],
        help="show what applying manifests, or the next sync of a GitSource, would change",
        description="Compare the labels, annotations and spec of each object in the manifests "
        "(or in a GitSource's repository at the commit its next sync would fetch) with the "
        "live object on the server and print unified diffs. Exit code: 0 when nothing would "
        "change, 1 when something would, 2 on an error.",
    )
    what = diff.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "-f",
        "--filename",
        metavar="PATH",
        action="append",
        help="manifest file, directory (searched recursively) or - for standard input; "
        "repeat for several",
    )
    what.add_argument(
        "--gitsource",
        metavar="NAME",
        help="the GitSource whose next sync to compare; objects it would prune diff against "
        "nothing",
    )
    diff.add_argument("-n", "--namespace", metavar="NS", help="--gitsource: its namespace")
    diff.set_defaults(command="diff")


def comparable(document: dict[str, Any] | None) -> dict[str, Any]:
    """Return the parts of a wire object that an apply writes: labels, annotations and spec."""
    if document is None:
        return {}
    metadata = document.get("metadata") or {}
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(SOURCE_ANNOTATION, None)
    return {
        "metadata": {"labels": metadata.get("labels") or {}, "annotations": annotations},
        "spec": document.get("spec"),
    }


def unified_diff(
    live: dict[str, Any] | None, desired: dict[str, Any] | None, *, reference: str
) -> list[str]:
    """Return unified diff lines from ``live`` to ``desired`` (empty when they are equal)."""
    before = comparable(live)
    after = comparable(desired)
    if before == after:
        return []
    return list(
        difflib.unified_diff(
            dump_yaml(before).splitlines() if before else [],
            dump_yaml(after).splitlines() if after else [],
            fromfile=f"live/{reference}",
            tofile=f"desired/{reference}",
            lineterm="",
        )
    )


def _live(client: ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.get_instance(namespace, name)
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def run_diff(args: argparse.Namespace, client: ApiClient) -> int:
    try:
        documents = load_documents(args.filename)
    except CliError as error:
        print_error(error)
        return EXIT_ERROR

    changed = failed = False
    for document in documents:
        resource = document.resource
        reference = f"{resource.kind.lower()}/{resource.metadata.name}"
        try:
            live = _live(client, resource.metadata.namespace, resource.metadata.name)
        except ApiError as error:
            failed = True
            print_error(CliError(f"{reference}: {error.message}", details=error.details))
            continue
        except CliError as error:
            print_error(error)
            return EXIT_ERROR
        lines = unified_diff(live, resource.to_wire(), reference=reference)
        if lines:
            changed = True
            sys.stdout.write("\n".join(lines) + "\n")
    if failed:
        return EXIT_ERROR
    return EXIT_CHANGED if changed else EXIT_SAME
