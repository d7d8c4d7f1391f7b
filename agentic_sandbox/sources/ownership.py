"""Which manifest file owns which object, and what happens when two files declare one object.

Every object applied from the directory belongs to exactly one file. A file that declares an
object owned by another file is rejected as a whole (it changes nothing), with an error naming
both files, so two files never take turns overwriting one object.

Claims are resolved for a whole batch of changed files at once. An object moved from one file
to another in a single change is released by its old file and claimed by its new file in the
same batch, so it is handed over instead of deleted and created again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# (kind, namespace, name)
ObjectKey = tuple[str, str, str]


def describe_key(key: ObjectKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}"


@dataclass(frozen=True)
class Duplicate:
    """An object that a rejected file declares at ``line`` but ``owner`` declares too."""

    key: ObjectKey
    line: int
    owner: str


@dataclass(frozen=True)
class Claim:
    """The objects a changed, valid file declares now, with the line of each."""

    path: str
    declared: Mapping[ObjectKey, int]


def resolve_claims(
    owners: Mapping[ObjectKey, str],
    claims: list[Claim],
    released: Mapping[str, set[ObjectKey]],
) -> dict[str, list[Duplicate]]:
    """Return the rejected claims, each with the objects it may not take.

    ``owners`` maps each applied object to its file. ``released`` lists objects that files of
    the batch give up without claiming anything (the file is gone or empty). A claiming file
    gives up what it owned and no longer declares, unless it is rejected, in which case it
    keeps everything it owned.

    Starting with every claim accepted, rejections are found until none is added. Rejecting a
    file only takes objects back out of the free pool, so the loop ends. Claims are taken in
    path order, so of two new files declaring one new object the first path wins. The work is
    proportional to the objects the claims declare, not to all objects.
    """
    by_path = {claim.path: claim for claim in claims}
    rejected: dict[str, list[Duplicate]] = {}
    while True:
        found = _find_duplicates(owners, by_path, rejected, released)
        if not found:
            return rejected
        rejected.update(found)


def _find_duplicates(
    owners: Mapping[ObjectKey, str],
    by_path: Mapping[str, Claim],
    rejected: Mapping[str, list[Duplicate]],
    released: Mapping[str, set[ObjectKey]],
) -> dict[str, list[Duplicate]]:
    """Take the accepted claims in path order and return those that declare an object owned
    by another file, either before the batch or through an earlier claim in it."""
    claimed: dict[ObjectKey, str] = {}
    found: dict[str, list[Duplicate]] = {}
    for path in sorted(by_path):
        if path in rejected:
            continue
        duplicates = []
        for key, line in by_path[path].declared.items():
            owner = claimed.get(key) or _holder(key, owners, by_path, rejected, released)
            if owner is not None and owner != path:
                duplicates.append(Duplicate(key=key, line=line, owner=owner))
        if duplicates:
            found[path] = duplicates
        else:
            claimed.update(dict.fromkeys(by_path[path].declared, path))
    return found


def _holder(
    key: ObjectKey,
    owners: Mapping[ObjectKey, str],
    by_path: Mapping[str, Claim],
    rejected: Mapping[str, list[Duplicate]],
    released: Mapping[str, set[ObjectKey]],
) -> str | None:
    """Return the file that keeps ``key`` through the batch, before new claims are taken."""
    owner = owners.get(key)
    if owner is None:
        return None
    if key in released.get(owner, ()):
        return None
    claim = by_path.get(owner)
    if claim is not None and owner not in rejected and key not in claim.declared:
        return None
    return owner
