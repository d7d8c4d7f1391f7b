"""The Store protocol: Kubernetes object semantics over any backend.

Guarantees every backend keeps, so that sqlite and etcd are interchangeable:

- ``create`` assigns ``uid``, ``resourceVersion``, ``generation=1`` and ``creationTimestamp``;
  it raises AlreadyExists when the key is taken.
- ``resourceVersion`` is a decimal string taken from one store-wide counter that only grows.
  Every write (create, update, status update, delete) gets a new, larger value.
- ``update`` writes metadata (labels, annotations, finalizers) and spec. When the object passed
  in carries a ``resourceVersion`` it must equal the stored one, otherwise Conflict is raised.
  ``generation`` increases by one only when ``spec`` changed. Status in the argument is ignored.
- ``update_status`` writes only status, with the same precondition rule, and never changes
  ``generation``.
- ``delete`` removes the object when it has no finalizers. Otherwise it sets
  ``deletionTimestamp`` (once) and keeps the object; the object disappears from the store on
  the ``update`` that removes the last finalizer.
- ``watch(kind, since)`` yields every change with a resourceVersion greater than ``since``, in
  order, then waits for new ones. It raises Expired when changes after ``since`` were compacted
  away, so the caller relists.
- A write that returned has been committed durably: a crash right after loses nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from agentic_sandbox.crds.meta import Resource


class WatchEventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class WatchEvent:
    type: WatchEventType
    object: Resource
    resource_version: int


@dataclass(frozen=True)
class ListResult:
    items: list[Resource]
    resource_version: int


class Store(Protocol):
    async def create(self, obj: Resource) -> Resource: ...

    async def get(self, kind: str, namespace: str, name: str) -> Resource: ...

    async def list(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> ListResult: ...

    async def list_json(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        phase: str | None = None,
    ) -> tuple[Sequence[str], int]:
        """Like ``list``, but return each object as its stored wire JSON text, unparsed.

        Serves read paths that only pass objects on (the API's list), which would otherwise
        parse, validate and re-serialise every object. ``phase`` filters on ``status.phase``.
        """
        ...

    async def update(self, obj: Resource) -> Resource: ...

    async def update_status(self, obj: Resource) -> Resource: ...

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> Resource | None: ...

    def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]: ...

    async def close(self) -> None: ...
