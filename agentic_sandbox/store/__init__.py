"""Stores with Kubernetes object semantics: the Store protocol and its backends."""

from agentic_sandbox.store.apply import ApplyOutcome, apply, delete_if_owned, list_by_source
from agentic_sandbox.store.base import ListResult, Store, WatchEvent, WatchEventType
from agentic_sandbox.store.events import SqliteEventLog
from agentic_sandbox.store.sqlite import SqliteStore

__all__ = [
    "ApplyOutcome",
    "ListResult",
    "SqliteEventLog",
    "SqliteStore",
    "Store",
    "WatchEvent",
    "WatchEventType",
    "apply",
    "delete_if_owned",
    "list_by_source",
]
