"""Counters of the directory source: plain attributes until a metrics endpoint reads them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentic_sandbox.store.apply import ApplyOutcome


@dataclass
class SourceCounters:
    # Reads of non-empty manifest files: after a stat signature change, or for a recheck.
    files_read: int = 0
    # Files whose documents were all applied (including files that changed nothing).
    files_applied: int = 0
    objects_created: int = 0
    objects_updated: int = 0
    objects_deleted: int = 0
    # Distinct invalid file contents seen; an unchanged invalid file counts once.
    invalid_files: int = 0
    # Times a missing or empty file kept its objects to wait for an editor to finish a save.
    deferrals: int = 0
    # Store failures while syncing a file; each one schedules a retry.
    store_errors: int = 0
    # Full walks of the directory tree.
    rescans: int = 0

    def count(self, outcomes: Iterable[ApplyOutcome]) -> None:
        for outcome in outcomes:
            if outcome is ApplyOutcome.CREATED:
                self.objects_created += 1
            elif outcome is ApplyOutcome.UPDATED:
                self.objects_updated += 1
