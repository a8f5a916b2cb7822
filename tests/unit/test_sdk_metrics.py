"""The replica's own counters: requests, errors, in-flight, latency window."""

from __future__ import annotations

from datetime import timedelta

from sutradhar._metrics import TaskMetrics, percentile


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 99) == 7.0


def test_counters_and_window() -> None:
    clock = Clock()
    m = TaskMetrics(window=timedelta(seconds=10), clock=clock)
    m.begin()
    m.begin()
    assert m.snapshot().in_flight == 2
    m.end(timedelta(milliseconds=10), ok=True)
    m.end(timedelta(milliseconds=30), ok=False)
    clock.now += 5
    snap = m.snapshot()
    assert (snap.requests_total, snap.errors_total, snap.in_flight) == (2, 1, 0)
    assert snap.latency_p50 == timedelta(milliseconds=10)
    assert snap.latency_p99 == timedelta(milliseconds=30)
    assert snap.uptime == timedelta(seconds=5)
    clock.now += 20  # both samples fall out of the window; counters stay
    snap = m.snapshot()
    assert snap.latency_p50 == timedelta(0)
    assert snap.requests_total == 2


def test_sample_cap() -> None:
    m = TaskMetrics(max_samples=3, clock=Clock())
    for ms in (100, 1, 2, 3):
        m.begin()
        m.end(timedelta(milliseconds=ms), ok=True)
    assert m.snapshot().latency_p99 == timedelta(milliseconds=3)
