"""Plan one sync of a GitSource: which objects to apply, which to keep, and which to prune.

Parsing uses the directory source's rules and code: the same file discovery (``scan``), the
same manifest loader and validator, and the same resolution of two files declaring one object
(``ownership``), where the file that owned the object keeps it.

The plan follows these rules:

- A file that fails to parse or validate applies nothing and keeps every object applied from
  it before (found by the file recorded in each object's source annotation).
- A file that declares an object another file of the repository owns is rejected the same way.
- When the path is missing or contains no manifest, and ``spec.allowEmpty`` is false, the plan
  prunes nothing (``guard`` gives the reason). An unreachable repository never gets this far.
- Otherwise, with ``spec.prune``, the objects this source owns that no accepted or kept file
  declares are pruned.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from agentic_sandbox.crds.gitsource import GitSource
from agentic_sandbox.crds.manifest import ParsedDocument, load_manifest_file
from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.crds.registry import KINDS
from agentic_sandbox.errors import ManifestError
from agentic_sandbox.sources.ownership import Claim, ObjectKey, resolve_claims
from agentic_sandbox.sources.report import duplicate_error
from agentic_sandbox.sources.scan import scan_tree
from agentic_sandbox.sources.sync import object_key
from agentic_sandbox.store.apply import owner_of, source_owner
from agentic_sandbox.store.base import Store

GIT_SOURCE_SCHEME = "gitsource"


def git_writer(namespace: str, name: str) -> str:
    """Return the writer id of a GitSource, shared by the source ids of all its files."""
    return f"{GIT_SOURCE_SCHEME}:{namespace}/{name}"


def git_source_id(namespace: str, name: str, file: str) -> str:
    """Return the source annotation of an object applied from ``file`` of a GitSource."""
    return f"{git_writer(namespace, name)}:{file}"


def file_of(source: str) -> str:
    """Return the repository file named in a GitSource's source id."""
    return source.split(":", 2)[2] if source.count(":") >= 2 else ""


@dataclass
class ParsedTree:
    """The manifests of one path at one commit, parsed and validated."""

    commit: str
    # Valid files by path inside the repository, with their documents.
    documents: dict[str, list[ParsedDocument]] = field(default_factory=dict)
    invalid: dict[str, ManifestError] = field(default_factory=dict)
    # The path does not exist at the commit.
    missing: bool = False

    @property
    def empty(self) -> bool:
        """True when the path declares nothing and no file failed to parse."""
        if self.invalid:
            return False
        return not any(self.documents.values())


def parse_tree(commit: str, root: Path | None, path: str) -> ParsedTree:
    """Parse every manifest under ``root`` (the export of ``path``); runs in a worker thread."""
    parsed = ParsedTree(commit=commit, missing=root is None)
    if root is None:
        return parsed
    top = str(root)
    for file in scan_tree(top).files:
        relative = os.path.relpath(file, top).replace(os.sep, "/")
        name = posixpath.join(path, relative) if path else relative
        try:
            parsed.documents[name] = load_manifest_file(file, source=name)
        except ManifestError as error:
            parsed.invalid[name] = error
        except OSError as error:
            reason = error.strerror or type(error).__name__
            parsed.invalid[name] = ManifestError(f"file cannot be read: {reason}", file=name)
    return parsed


@dataclass(frozen=True)
class Desired:
    """One object to apply, with the file and line that declare it."""

    key: ObjectKey
    file: str
    line: int
    resource: Resource


@dataclass
class SyncPlan:
    commit: str
    desired: dict[ObjectKey, Desired] = field(default_factory=dict)
    # Files not applied (invalid, or declaring another file's object), with their errors.
    issues: dict[str, ManifestError] = field(default_factory=dict)
    # Objects this source owns now, as stored.
    owned: dict[ObjectKey, Resource] = field(default_factory=dict)
    # Owned objects kept because their file was not applied.
    kept: set[ObjectKey] = field(default_factory=set)
    prune: list[ObjectKey] = field(default_factory=list)
    # Why nothing is pruned although the spec requests it; None when pruning may go ahead.
    guard: str | None = None


async def list_owned(store: Store, writer: str) -> dict[ObjectKey, Resource]:
    """Return every stored object that a source id of ``writer`` owns."""
    owned: dict[ObjectKey, Resource] = {}
    for kind in KINDS:
        listing = await store.list(kind)
        for item in listing.items:
            owner = owner_of(item)
            if owner is not None and source_owner(owner) == writer:
                owned[object_key(item)] = item
    return owned


def plan_sync(source: GitSource, tree: ParsedTree, owned: dict[ObjectKey, Resource]) -> SyncPlan:
    """Decide what a sync of ``tree`` applies, keeps and prunes, given what the source owns."""
    plan = SyncPlan(commit=tree.commit, owned=owned)
    plan.issues.update(tree.invalid)
    owners = {key: file_of(owner_of(item) or "") for key, item in owned.items()}

    # Files gone from the commit release their objects; files present claim theirs.
    present = set(tree.documents) | set(tree.invalid)
    released: dict[str, set[ObjectKey]] = {}
    for key, file in owners.items():
        if file not in present:
            released.setdefault(file, set()).add(key)
    claims = [
        Claim(file, {object_key(doc.resource): doc.line for doc in documents})
        for file, documents in tree.documents.items()
    ]
    rejected = resolve_claims(owners, claims, released)
    for file, duplicates in rejected.items():
        plan.issues[file] = duplicate_error(file, duplicates)

    for file in sorted(tree.documents):
        if file in rejected:
            continue
        for document in tree.documents[file]:
            key = object_key(document.resource)
            plan.desired[key] = Desired(key, file, document.line, document.resource)

    plan.kept = {key for key, file in owners.items() if file in plan.issues}
    plan.guard = _prune_guard(source, tree)
    if source.spec.prune and plan.guard is None:
        plan.prune = sorted(set(owned) - set(plan.desired) - plan.kept)
    return plan


def _prune_guard(source: GitSource, tree: ParsedTree) -> str | None:
    if not tree.empty or source.spec.allow_empty:
        return None
    where = f"path {source.spec.path!r}" if source.spec.path else "the repository root"
    state = "does not exist" if tree.missing else "contains no manifest"
    return (
        f"{where} {state} at commit {tree.commit[:12]}, so nothing was pruned; "
        "set spec.allowEmpty to true if this source should delete everything it applied"
    )
