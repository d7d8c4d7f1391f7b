"""``sandboxctl apply`` and ``sandboxctl delete``: the commands that change desired state.

Both keep going after a server error on one object, report each failure, and exit 1 when any
object failed. A connection failure stops at once, since every later request would fail too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agentic_sandbox.cli.client import ApiClient, ApiError, CliError, print_error
from agentic_sandbox.cli.diff import unified_diff
from agentic_sandbox.cli.manifests import load_documents
from agentic_sandbox.crds.meta import object_key

DEFAULT_NAMESPACE = "default"
# The verb printed for each apply outcome, as kubectl prints it.
APPLY_VERBS = {"created": "created", "updated": "configured", "unchanged": "unchanged"}


def _reference(kind: str, name: str) -> str:
    return f"{kind.lower()}/{name}"


def _print_server_dry_run(
    client: ApiClient, reference: str, result: dict[str, Any], outcome: str
) -> None:
    """Print what an apply would change (a diff against the live object) and the plan."""
    print(f"{reference} {APPLY_VERBS.get(outcome, outcome)} (server dry run)")
    would_be = result.get("object")
    if outcome == "updated" and isinstance(would_be, dict):
        metadata = would_be.get("metadata") or {}
        live = client.get_instance(metadata.get("namespace", DEFAULT_NAMESPACE), metadata["name"])
        for line in unified_diff(live, would_be, reference=reference):
            print(f"  {line}")
    operations = result.get("plannedOperations")
    if operations:
        print("  planned operations:")
        for operation in operations:
            target = f" {str(operation['sandboxId'])[:12]}" if operation.get("sandboxId") else ""
            print(f"    {operation['kind']}{target}: {operation['cause']}")
    elif operations is not None:
        print("  planned operations: none")
    for warning in result.get("warnings") or []:
        print(f"  warning: {warning}")


def run_apply(args: argparse.Namespace, client: ApiClient) -> int:
    documents = load_documents(args.filename)
    # Both options may be absent from arguments built without them.
    dry_run = getattr(args, "dry_run", "none")
    takeover = getattr(args, "takeover", False)
    failures = 0
    for document in documents:
        resource = document.resource
        manifest = resource.to_wire()
        # Status belongs to the controller; the server drops it anyway.
        manifest.pop("status", None)
        reference = _reference(resource.kind, resource.metadata.name)
        if dry_run == "client":
            print(f"{reference} valid (client dry run)")
            continue
        try:
            result, outcome = client.apply_resource(
                manifest, takeover=takeover, dry_run=dry_run == "server"
            )
            if dry_run == "server":
                _print_server_dry_run(client, reference, result, outcome)
                continue
        except ApiError as error:
            failures += 1
            print_error(CliError(f"{reference}: {error.message}", details=error.details))
            continue
        print(f"{reference} {APPLY_VERBS.get(outcome, outcome)}")
    if dry_run != "none":
        print("Dry run: nothing was changed.", file=sys.stderr)
    return 1 if failures else 0


def _delete_one(
    client: ApiClient,
    *,
    kind: str,
    namespace: str,
    name: str,
    force: bool = False,
    takeover: bool = False,
) -> bool:
    reference = _reference(kind, name)
    try:
        client.delete_instance(namespace, name, force=force, takeover=takeover, kind=kind)
    except ApiError as error:
        if error.status == 404:
            message = f"{reference}: not found in namespace {namespace}"
            print_error(CliError(message))
        else:
            print_error(CliError(f"{reference}: {error.message}", details=error.details))
        return False
    print(f"{reference} deleted")
    return True


def _targets(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Return (kind, namespace, name) of every object the command line names."""
    if args.filename:
        if args.resource or args.names:
            raise CliError("give either -f PATH or instance NAME..., not both")
        documents = load_documents(args.filename)
        return [
            (doc.resource.kind, doc.resource.metadata.namespace, doc.resource.metadata.name)
            for doc in documents
        ]
    if not args.resource or not args.names:
        raise CliError(
            "nothing to delete; name instances ('delete instance NAME...') or manifests "
            "('delete -f PATH')"
        )
    namespace = args.namespace or DEFAULT_NAMESPACE
    return [("Instance", namespace, name) for name in args.names]


def run_delete(args: argparse.Namespace, client: ApiClient) -> int:
    targets = _targets(args)
    seen: set[str] = set()
    failures = 0
    for kind, namespace, name in targets:
        key = object_key(namespace, name)
        if key in seen:
            continue
        seen.add(key)
        deleted = _delete_one(
            client,
            kind=kind,
            namespace=namespace,
            name=name,
            force=args.force,
        )
        if not deleted:
            failures += 1
    return 1 if failures else 0
