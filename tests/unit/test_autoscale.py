"""The HPA arithmetic with explicit time: formula, tolerance, min/max, windows, no flapping."""

from __future__ import annotations

from datetime import timedelta

from sutradhar.services.scheduler.autoscale import AutoscaleParams, AutoscaleState, autoscale, raw_recommendation

P = AutoscaleParams(min_replicas=1, max_replicas=10, target=4.0,
                    scale_up_window=timedelta(0), scale_down_window=timedelta(seconds=60))


def test_formula_ceil_current_times_ratio():
    assert raw_recommendation(2, 8.0, P) == 4
    assert raw_recommendation(3, 5.0, P) == 4  # ceil(3.75)
    assert raw_recommendation(4, 1.0, P) == 1


def test_tolerance_keeps_the_count():
    assert raw_recommendation(5, 4.3, P) == 5  # within 10%
    assert raw_recommendation(5, 3.7, P) == 5
    assert raw_recommendation(5, 4.5, P) == 6  # 12.5% off


def test_min_and_max_bound_the_result():
    assert raw_recommendation(8, 40.0, P) == 10
    assert raw_recommendation(3, 0.0, P) == 1
    assert raw_recommendation(0, 9.0, P) == 1


def test_scale_up_is_immediate_without_a_window():
    n, _ = autoscale(P, AutoscaleState(), now=0.0, current=2, metric=8.0)
    assert n == 4


def test_scale_down_waits_for_the_window():
    state = AutoscaleState()
    n, state = autoscale(P, state, now=0.0, current=4, metric=4.0)
    assert n == 4
    # load drops: the high recommendation from t=0 is still inside the 60 s window
    for t in (1.0, 10.0, 30.0, 59.0):
        n, state = autoscale(P, state, now=t, current=4, metric=1.0)
        assert n == 4, t
    n, state = autoscale(P, state, now=61.0, current=4, metric=1.0)
    assert n == 1


def test_no_flapping_on_an_oscillating_load():
    state = AutoscaleState()
    counts = []
    current = 2
    for i in range(40):
        total = 16.0 if i % 2 == 0 else 4.0  # total in-flight swings every 5 s
        metric = total / current
        current, state = autoscale(P, state, now=i * 5.0, current=current, metric=metric)
        counts.append(current)
    # it goes up once and stays: the high recommendations keep every scale-down inside the window
    assert counts[0] == 4
    assert len(set(counts[1:])) == 1


def test_scale_up_window_takes_the_lowest_recent_recommendation():
    params = AutoscaleParams(min_replicas=1, max_replicas=10, target=4.0,
                             scale_up_window=timedelta(seconds=30), scale_down_window=timedelta(seconds=60))
    state = AutoscaleState()
    n, state = autoscale(params, state, now=0.0, current=2, metric=4.0)
    assert n == 2
    n, state = autoscale(params, state, now=5.0, current=2, metric=16.0)  # a spike
    assert n == 2
    n, state = autoscale(params, state, now=31.0, current=2, metric=16.0)  # sustained past the window
    assert n == 8


def test_history_is_bounded_by_the_longest_window():
    state = AutoscaleState()
    for i in range(1000):
        _, state = autoscale(P, state, now=float(i), current=2, metric=4.0)
    assert len(state.recommendations) <= 62
