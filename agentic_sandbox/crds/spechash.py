"""The canonical spec hash: decides when a sandbox must be recreated.

The controller stores the hash, and the hash-schema version it was computed with, on every
runtime object. When the spec's hash differs from the stored one, the object no longer matches
its spec and is recreated. So the hash covers exactly the fields whose change needs a recreate:
every field of ``InstanceSpec`` except ``runStrategy`` and ``terminationGracePeriodSeconds``,
which the controller applies to a running sandbox as it is. Metadata (labels, annotations, name)
never enters the hash.

The canonical form applies defaults and normalizes values that mean the same thing, so that
writing a default out, reordering keys, reordering mounts or writing ``1Gi`` as ``1024Mi`` does
not change the hash. It is compact JSON with sorted keys; the hash is the first 16 hex digits of
its SHA-256.

Versions. A controller upgrade must not recreate sandboxes whose spec did not change, so the
canonical form of a released version never changes. Each version's form is spelled out
field by field in its own function, and ``HASH_VERSIONS`` keeps every released one. To change
what the hash covers (for example for a new spec field):

1. write ``_canonical_v2`` and register it in ``HASH_VERSIONS``; keep ``_canonical_v1`` as is;
2. set ``HASH_SCHEMA_VERSION = 2``;
3. update the field coverage test in ``tests/crds/test_spechash.py``, which fails whenever
   ``InstanceSpec`` gains a field that no version covers.

A controller that finds an object labelled with an older version k should recompute
``spec_hash(spec, schema_version=k)``. When that equals the stored hash and the spec leaves the
newer fields at their defaults, the object is current, so relabelling it with the new version
is enough and a recreate is not needed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from agentic_sandbox.crds.instance import InstanceSpec
from agentic_sandbox.crds.quantity import parse_memory

HASH_SCHEMA_VERSION = 1
# Hex digits of the SHA-256 kept in the hash: 64 bits, short enough for a label value.
HASH_LENGTH = 16
# The InstanceSpec fields (wire names) that a running sandbox absorbs without a recreate.
NOT_HASHED_FIELDS = frozenset({"runStrategy", "terminationGracePeriodSeconds"})


def _canonical_v1(spec: InstanceSpec) -> dict[str, object]:
    resources = spec.resources
    mounts = [
        {"hostPath": mount.host_path, "path": mount.path, "readOnly": mount.read_only}
        for mount in spec.mounts
    ]
    return {
        "runtime": spec.runtime,
        "image": spec.image,
        "loadout": spec.loadout,
        "command": list(spec.command) if spec.command is not None else None,
        "env": dict(spec.env),
        # The Docker daemon sorts mounts by the depth of their target path before mounting
        # (sortMounts in moby's daemon package), so the written order carries no meaning.
        # Validation guarantees that targets are unique, so this order is total.
        "mounts": sorted(mounts, key=lambda mount: str(mount["path"])),
        "network": spec.network,
        "resources": {
            "cpus": resources.cpus,
            "memoryBytes": resources.memory_bytes,
            "diskBytes": parse_memory(resources.disk) if resources.disk is not None else None,
            "pids": resources.pids,
        },
        "agentshare": spec.agentshare,
    }


HASH_VERSIONS: dict[int, Callable[[InstanceSpec], dict[str, object]]] = {
    1: _canonical_v1,
}


def canonical_spec(spec: InstanceSpec, *, schema_version: int = HASH_SCHEMA_VERSION) -> str:
    """Return the canonical JSON text that ``spec_hash`` hashes, for tests and debugging."""
    try:
        canonical = HASH_VERSIONS[schema_version]
    except KeyError:
        known = ", ".join(str(version) for version in sorted(HASH_VERSIONS))
        raise ValueError(
            f"hash schema version {schema_version} is unknown; known versions: {known}"
        ) from None
    return json.dumps(
        canonical(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def spec_hash(spec: InstanceSpec, *, schema_version: int = HASH_SCHEMA_VERSION) -> str:
    """Hash the fields of ``spec`` whose change needs a recreate, by the given schema version."""
    text = canonical_spec(spec, schema_version=schema_version)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:HASH_LENGTH]
