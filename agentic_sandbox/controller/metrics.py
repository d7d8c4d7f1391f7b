"""Controller counters and histograms: reconciles, their duration, errors by reason, GC work.

Counting replaces chatter: repeated failures are counted here and logged once where handled.
These are plain in-memory values owned by the controller. The API's ``/metrics`` route reads them
at scrape time and renders them in the Prometheus text format, so this layer needs no metrics
library.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

# Upper bounds, in seconds, of the duration buckets: 1, 2.5 and 5 per decade from 1 ms to 10 s,
# then 30 s and 60 s. As an estimate, a reconcile against a running Docker daemon takes
# milliseconds, while an image pull or a VM boot takes tens of seconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# The results a reconcile is counted under: it returned, or it raised (and was requeued).
RECONCILE_RESULTS: tuple[str, ...] = ("success", "error")


class Histogram:
    """A histogram: a count of observations per bucket, plus their sum and total count.

    ``counts[i]`` counts observations in ``(bounds[i-1], bounds[i]]``; the last slot counts those
    above every bound. Exporters turn them into cumulative Prometheus buckets.
    """

    def __init__(self, bounds: Sequence[float] = DURATION_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(
                f"histogram bounds {list(bounds)} are not strictly increasing; "
                "list each bound once, smallest first"
            )
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """Return ``(upper bound, observations at or below it)`` pairs, ending with +Inf."""
        pairs: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


def _histograms_by_result() -> dict[str, Histogram]:
    return {result: Histogram() for result in RECONCILE_RESULTS}


@dataclass
class ControllerMetrics:
    reconciles: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # Reconcile durations in seconds, by result (see RECONCILE_RESULTS).
    reconcile_duration: dict[str, Histogram] = field(default_factory=_histograms_by_result)
    runtime_event_streams: int = 0
    store_relists: int = 0
    # Garbage collection: objects removed by type (container, workspace), and sweeps by result.
    gc_removals: Counter[str] = field(default_factory=Counter)
    gc_sweeps: Counter[str] = field(default_factory=Counter)

    def observe_reconcile(self, result: str, seconds: float) -> None:
        self.reconciles[result] += 1
        histogram = self.reconcile_duration.get(result)
        if histogram is None:
            histogram = self.reconcile_duration[result] = Histogram()
        histogram.observe(seconds)
