"""Counters an agent replica keeps about its own tasks (served by the Metrics RPC)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class MetricsSnapshot:
    """Counters at one moment."""

    requests_total: int
    """Tasks received."""
    errors_total: int
    """Tasks that failed (failed result, deadline, cancellation)."""
    in_flight: int
    """Tasks running now."""
    uptime: timedelta
    """Time since the counters started."""
    latency_p50: timedelta
    """Median latency over the window (zero without samples)."""
    latency_p99: timedelta
    """99th percentile latency over the window (zero without samples)."""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile `q` (0..100) of ascending values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class TaskMetrics:
    """Request, error and in-flight counts plus latency percentiles over a
    sliding window (the last `window` of time, at most `max_samples` samples).

    `clock` returns seconds (monotonic); tests pass their own.
    """

    def __init__(
        self,
        *,
        window: timedelta = timedelta(seconds=60),
        max_samples: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window.total_seconds()
        self._clock = clock
        self._started = clock()
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self.requests_total = 0
        self.errors_total = 0
        self.in_flight = 0

    def begin(self) -> None:
        """A task started."""
        self.requests_total += 1
        self.in_flight += 1

    def end(self, latency: timedelta, *, ok: bool) -> None:
        """A task ended after `latency`; `ok` False counts an error."""
        self.in_flight -= 1
        if not ok:
            self.errors_total += 1
        self._samples.append((self._clock(), latency.total_seconds()))

    def snapshot(self) -> MetricsSnapshot:
        """The counters now; drops samples older than the window."""
        now = self._clock()
        while self._samples and self._samples[0][0] < now - self._window:
            self._samples.popleft()
        latencies = sorted(s for _, s in self._samples)
        return MetricsSnapshot(
            requests_total=self.requests_total,
            errors_total=self.errors_total,
            in_flight=self.in_flight,
            uptime=timedelta(seconds=now - self._started),
            latency_p50=timedelta(seconds=percentile(latencies, 50)),
            latency_p99=timedelta(seconds=percentile(latencies, 99)),
        )
