"""Probe semantics, as pure functions and a small state machine.

Nothing here does I/O or reads a clock: every function takes `now`, so tests
drive time instead of sleeping.

- `ProbeSettings` (the one definition, shared with the scheduler, in
  `services.common.probing`) turns an agent's `ProbeSpec` into concrete
  settings with the Kubernetes defaults.
- `ProbeTracker` counts consecutive outcomes and flips its verdict after
  `failure_threshold` failures or `success_threshold` successes.
- `first_due` / `next_due` are the probe schedule.
- `derive_state` is the rule that turns a drain flag and a readiness verdict
  into the routable `InstanceState`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sutradhar.v1 import registry_pb2

from ..common.probing import IN_PROCESS_ENDPOINT, ProbeName, ProbeSettings

__all__ = [
    "DRAINING",
    "FAILURE",
    "IN_PROCESS_ENDPOINT",
    "NOT_SERVING",
    "NO_RESULT",
    "SERVING",
    "STARTING",
    "SUCCESS",
    "Observation",
    "ProbeName",
    "ProbeSettings",
    "ProbeTracker",
    "derive_state",
    "enabled_state",
    "first_due",
    "next_due",
]

SERVING = registry_pb2.INSTANCE_STATE_SERVING
NOT_SERVING = registry_pb2.INSTANCE_STATE_NOT_SERVING
DRAINING = registry_pb2.INSTANCE_STATE_DRAINING
STARTING = registry_pb2.INSTANCE_STATE_STARTING

SUCCESS = registry_pb2.PROBE_RESULT_SUCCESS
FAILURE = registry_pb2.PROBE_RESULT_FAILURE
NO_RESULT = registry_pb2.PROBE_RESULT_UNSPECIFIED


@dataclass(frozen=True)
class Observation:
    """What one probe attempt changed in its tracker."""

    verdict_changed: bool
    """The verdict (after thresholds) flipped."""
    outcome_changed: bool
    """The raw outcome differs from the previous probe's (pass <-> fail)."""


@dataclass
class ProbeTracker:
    """The running record of one probe of one instance (thresholds applied).

    The verdict starts unknown; it becomes SUCCESS after `success_threshold`
    consecutive successes and FAILURE after `failure_threshold` consecutive
    failures, and only flips again after the opposite threshold is met.
    """

    result: int = NO_RESULT
    last_result: int = NO_RESULT
    last_message: str = ""
    last_probe_time: datetime | None = None
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    last_latency: timedelta = field(default_factory=timedelta)

    def observe(
        self, ok: bool, settings: ProbeSettings, *, now: datetime, message: str = "",
        latency: timedelta = timedelta(0),
    ) -> Observation:
        """Record one probe outcome at `now`; say what changed."""
        previous_result, previous_outcome = self.result, self.last_result
        if ok:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            self.last_result = SUCCESS
            self.last_message = ""
            if self.result != SUCCESS and self.consecutive_successes >= settings.success_threshold:
                self.result = SUCCESS
        else:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            self.last_result = FAILURE
            self.last_message = message
            if self.result != FAILURE and self.consecutive_failures >= settings.failure_threshold:
                self.result = FAILURE
        self.last_probe_time = now
        self.last_latency = latency
        return Observation(
            verdict_changed=self.result != previous_result,
            outcome_changed=self.last_result != previous_outcome,
        )

    def to_proto(self) -> registry_pb2.ProbeStatus:
        """The record as stored in `Instance.health`."""
        status = registry_pb2.ProbeStatus(
            result=self.result,  # type: ignore[arg-type]
            last_result=self.last_result,  # type: ignore[arg-type]
            last_message=self.last_message,
            consecutive_successes=self.consecutive_successes,
            consecutive_failures=self.consecutive_failures,
        )
        if self.last_probe_time is not None:
            status.last_probe_time.FromDatetime(self.last_probe_time)
            status.last_latency.FromTimedelta(self.last_latency)
        return status

    @classmethod
    def from_proto(cls, status: registry_pb2.ProbeStatus) -> ProbeTracker:
        """Continue a record another member persisted (takeover, restart)."""
        return cls(
            result=status.result,
            last_result=status.last_result,
            last_message=status.last_message,
            last_probe_time=(
                status.last_probe_time.ToDatetime(tzinfo=UTC) if status.HasField("last_probe_time") else None
            ),
            consecutive_successes=status.consecutive_successes,
            consecutive_failures=status.consecutive_failures,
            last_latency=status.last_latency.ToTimedelta(),
        )


# -- schedule -----------------------------------------------------------------


def first_due(
    settings: ProbeSettings, *, registered: float | None, now: float, jitter: float
) -> float:
    """When to run the first probe of an instance this member just took on.

    Times are seconds on one monotonic-like clock. A fresh instance is first
    probed `initial_delay` after it registered; one that registered long ago
    (this member started or took it over) is probed within `jitter` seconds
    (a fraction of the period, spread so that a thousand adopted instances do
    not fire at once).
    """
    if registered is not None:
        ready_at = registered + settings.initial_delay.total_seconds()
        if ready_at > now:
            return ready_at
        if now - registered < settings.period.total_seconds():
            return now
    return now + max(0.0, jitter)


def next_due(scheduled: float, period: timedelta, now: float) -> float:
    """The first tick of the fixed-rate schedule `scheduled + k * period`
    (k >= 1) that is not in the past: a probe that overran its period skips
    the ticks it missed rather than running them late in a burst."""
    step = period.total_seconds()
    if now <= scheduled + step:
        return scheduled + step
    return scheduled + step * math.ceil((now - scheduled) / step)


# -- state rule -----------------------------------------------------------------


def derive_state(
    current: int, *, drained: bool, readiness: int, readiness_enabled: bool = True
) -> int:
    """The routable state of an instance.

    - drained by an operator -> DRAINING;
    - DRAINING set by the instance itself (shutting down) stays DRAINING;
    - readiness verdict SUCCESS -> SERVING, FAILURE -> NOT_SERVING;
    - no verdict yet (or readiness disabled) -> the state the instance
      registered with (SERVING stays SERVING, STARTING stays STARTING).
    """
    if drained or current == DRAINING:
        return DRAINING
    if not readiness_enabled or readiness == NO_RESULT:
        return current
    return SERVING if readiness == SUCCESS else NOT_SERVING


def enabled_state(readiness: int) -> int:
    """The state of an instance an operator just enabled: NOT_SERVING when its
    readiness is failing, else SERVING (the next probes correct it)."""
    return NOT_SERVING if readiness == FAILURE else SERVING
