"""``sandboxctl apply`` and ``sandboxctl delete``: the commands that change desired state.

Both keep going after a server error on one object, report each failure, and exit 1 when any
object failed. A connection failure stops at once, since every later request would fail too.
"""

from __future__ import annotations

import argparse
import sys

from agentic_sandbox.cli.client import ApiClient, ApiError, CliError
from agentic_sandbox.cli.manifests import load_documents
from agentic_sandbox.crds.meta import object_key

DEFAULT_NAMESPACE = "default"
# The verb printed for each apply outcome, as kubectl prints it.
APPLY_VERBS = {"created": "created", "updated": "configured", "unchanged": "unchanged"}


def print_error(error: CliError) -> None:
    print(f"error: {error.message}", file=sys.stderr)
    for detail in error.details:
        print(f"  {detail}", file=sys.stderr)


def _reference(kind: str, name: str) -> str:
    return f"{kind.lower()}/{name}"


def run_apply(args: argparse.Namespace, client: ApiClient) -> int:
    documents = load_documents(args.filename)
    failures = 0
    for document in documents:
        resource = document.resource
        manifest = resource.to_wire()
        # Status belongs to the controller; the server drops it anyway.
        manifest.pop("status", None)
        reference = _reference(resource.kind, resource.metadata.name)
        try:
            _, outcome = client.apply_instance(manifest, takeover=getattr(args, "takeover", False))
        except ApiError as error:
            failures += 1
            print_error(CliError(f"{reference}: {error.message}", details=error.details))
            continue
        print(f"{reference} {APPLY_VERBS.get(outcome, outcome)}")
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
        client.delete_instance(namespace, name, force=force, takeover=takeover)
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
