"""Replica planning: how many replicas of the current revision to start and
which to stop, for steady-state scaling and for rolling updates.

Kubernetes Deployment semantics: during an update there are never more than
``desired + max_surge`` replicas, and never fewer than ``desired -
max_unavailable`` ready ones (unless fewer were ready to begin with); old
replicas that are not ready go first. A pure function over a snapshot, so the
reconcile loop can call it on every pass (level-triggered).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sutradhar._errors import InvalidArgument

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


@dataclass(frozen=True)
class Slot:
    """One replica as the planner sees it."""

    id: str
    revision: str
    ready: bool
    order: float = 0.0
    """Start order (e.g. creation time): the newest go first on scale-down."""
    failed: bool = False
    """Crashed or failed to start (in back-off)."""


@dataclass(frozen=True)
class Plan:
    """What to do now."""

    start: int = 0
    """Replicas of the current revision to create."""
    stop: tuple[str, ...] = ()
    """Replica ids to stop."""

    @property
    def idle(self) -> bool:
        return self.start == 0 and not self.stop


def parse_int_or_percent(text: str, *, field: str) -> tuple[int, bool]:
    """("25%" -> (25, True)), ("2" -> (2, False)); InvalidArgument naming `field`."""
    raw = text.strip()
    percent = raw.endswith("%")
    number = raw[:-1] if percent else raw
    if not number.isdigit():
        raise InvalidArgument(f"{field} {text!r} must be a whole number or a percentage like 25%", field=field)
    value = int(number)
    if percent and value > 100:
        raise InvalidArgument(f"{field} {text!r} must be at most 100%", field=field)
    return value, percent


def resolve_strategy(max_surge: str, max_unavailable: str, desired: int) -> tuple[int, int]:
    """Absolute (surge, unavailable) for `desired` replicas (surge rounds up,
    unavailable down; both zero would deadlock, so unavailable becomes 1)."""
    surge_v, surge_pct = parse_int_or_percent(max_surge or DEFAULT_MAX_SURGE, field="spec.strategy.max_surge")
    unav_v, unav_pct = parse_int_or_percent(
        max_unavailable or DEFAULT_MAX_UNAVAILABLE, field="spec.strategy.max_unavailable"
    )
    surge = math.ceil(desired * surge_v / 100) if surge_pct else surge_v
    unavailable = math.floor(desired * unav_v / 100) if unav_pct else unav_v
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, desired)


def _victims(slots: Sequence[Slot], count: int) -> list[str]:
    """Which `count` slots to stop: failed first, then not ready, then newest."""
    ranked = sorted(slots, key=lambda s: (not s.failed, s.ready, -s.order))
    return [s.id for s in ranked[: max(0, count)]]


def plan(
    slots: Sequence[Slot],
    *,
    desired: int,
    revision: str,
    max_surge: str = DEFAULT_MAX_SURGE,
    max_unavailable: str = DEFAULT_MAX_UNAVAILABLE,
    paused: bool = False,
) -> Plan:
    """The next step towards `desired` ready replicas of `revision`."""
    new = [s for s in slots if s.revision == revision]
    old = [s for s in slots if s.revision != revision]
    if not old:
        if len(new) < desired:
            return Plan(start=desired - len(new))
        return Plan(stop=tuple(_victims(new, len(new) - desired)))
    if paused:
        # A paused rollout holds its place; only a new set above `desired` shrinks.
        return Plan(stop=tuple(_victims(new, len(new) - desired))) if len(new) > desired else Plan()
    surge, unavailable = resolve_strategy(max_surge, max_unavailable, desired)
    total = len(old) + len(new)
    stop: list[str] = []
    if len(new) > desired:
        stop.extend(_victims(new, len(new) - desired))
    start = max(0, min(desired - len(new), desired + surge - total))
    min_available = desired - unavailable
    new_unready = sum(1 for s in new if not s.ready)
    max_scaled_down = total - min_available - new_unready
    if max_scaled_down > 0:
        unhealthy_old = [s for s in old if not s.ready]
        cleaned = _victims(unhealthy_old, min(len(unhealthy_old), max_scaled_down))
        stop.extend(cleaned)
        ready_old = [s for s in old if s.ready]
        ready_total = sum(1 for s in new if s.ready) + len(ready_old)
        can_remove = min(len(ready_old), ready_total - min_available, max_scaled_down - len(cleaned))
        if can_remove > 0:
            # oldest first among the old: sort by order ascending
            stop.extend(s.id for s in sorted(ready_old, key=lambda s: s.order)[:can_remove])
    return Plan(start=start, stop=tuple(stop))
