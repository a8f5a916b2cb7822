"""The autoscaling policy: Kubernetes HPA arithmetic as a pure function.

``desired = ceil(current * metric / target)``; no change while the ratio is
within the tolerance; the result is stabilized like the HPA's behavior
fields: a scale-up uses the *lowest* recommendation seen within the scale-up
window and a scale-down the *highest* within the scale-down window, so a
short spike or dip moves nothing and the count never flaps. Time is passed
in (`now`, seconds on any monotonic clock), so tests drive it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class AutoscaleParams:
    """One deployment's autoscale policy."""

    min_replicas: int
    """Fewest replicas."""
    max_replicas: int
    """Most replicas."""
    target: float
    """Target metric per replica (in-flight tasks)."""
    tolerance: float = 0.1
    """Relative deviation from the target that causes no scaling."""
    scale_up_window: timedelta = timedelta(0)
    """Scale-up stabilization: the lowest recommendation within it wins."""
    scale_down_window: timedelta = timedelta(seconds=300)
    """Scale-down stabilization: the highest recommendation within it wins."""


@dataclass(frozen=True)
class AutoscaleState:
    """Recommendations seen so far, (time, replicas), oldest first."""

    recommendations: tuple[tuple[float, int], ...] = field(default=())


def clamp(value: int, params: AutoscaleParams) -> int:
    """`value` within [min_replicas, max_replicas]."""
    return max(params.min_replicas, min(params.max_replicas, value))


def raw_recommendation(current: int, metric: float, params: AutoscaleParams) -> int:
    """The HPA formula with tolerance, before stabilization, within min/max."""
    if current <= 0:
        return clamp(params.min_replicas, params)
    ratio = metric / params.target
    if abs(ratio - 1.0) <= params.tolerance:
        return clamp(current, params)
    return clamp(math.ceil(current * ratio - 1e-9), params)


def autoscale(
    params: AutoscaleParams,
    state: AutoscaleState,
    *,
    now: float,
    current: int,
    metric: float,
) -> tuple[int, AutoscaleState]:
    """The replica count to run now and the new state.

    `current` is the replica count in force, `metric` the average metric per
    ready replica.
    """
    raw = raw_recommendation(current, metric, params)
    keep = max(params.scale_up_window, params.scale_down_window).total_seconds()
    history = (*((t, r) for t, r in state.recommendations if now - t <= keep), (now, raw))
    up_window = params.scale_up_window.total_seconds()
    down_window = params.scale_down_window.total_seconds()
    up_limit = min(r for t, r in history if now - t <= up_window)
    down_limit = max(r for t, r in history if now - t <= down_window)
    desired = current
    if desired < up_limit:
        desired = up_limit
    if desired > down_limit:
        desired = down_limit
    return clamp(desired, params), AutoscaleState(history)
