"""Controller counters: reconciles, their duration, errors by reason, retries.

Counting replaces chatter: repeated failures are counted here and logged once where handled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ControllerMetrics:
    reconciles: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    reconcile_seconds_sum: float = 0.0
    reconcile_seconds_count: int = 0
    runtime_event_streams: int = 0
    store_relists: int = 0
    # Garbage collection: objects removed by type (container, workspace), and sweeps by result.
    gc_removals: Counter[str] = field(default_factory=Counter)
    gc_sweeps: Counter[str] = field(default_factory=Counter)

    def observe_reconcile(self, result: str, seconds: float) -> None:
        self.reconciles[result] += 1
        self.reconcile_seconds_sum += seconds
        self.reconcile_seconds_count += 1
