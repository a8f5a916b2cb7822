"""Per-instance circuit breaker with Dapr semantics, as a small state machine
driven by an explicit clock (`now`, monotonic seconds).

::

    CLOSED --(consecutive_failures failures in a row)--> OPEN
    OPEN   --(timeout elapsed, checked on selection)---> HALF_OPEN
    HALF_OPEN: at most max_requests trial calls at once;
        max_requests successes -> CLOSED, any failure -> OPEN (timer restarts)

Outcomes that say nothing about the instance (the caller cancelled, the task
was rejected as invalid) are `release`d: they free a trial slot without
moving the breaker.
"""

from __future__ import annotations

from enum import Enum

from sutradhar._routing.policy import BreakerSettings


class BreakerState(Enum):
    """Where a breaker is; values match the BreakerState proto enum."""

    CLOSED = 1
    OPEN = 2
    HALF_OPEN = 3


class CircuitBreaker:
    """One instance's breaker. Call `selectable(now)` when choosing, `start()`
    when a call is sent, then exactly one of `success`, `failure`, `release`."""

    __slots__ = ("_failures", "_successes", "_trials", "opened_at", "settings", "state")

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self.state = BreakerState.CLOSED
        self.opened_at = 0.0
        self._failures = 0
        self._trials = 0
        self._successes = 0

    def selectable(self, now: float) -> bool:
        """May a call be sent now? Moves OPEN to HALF_OPEN once the timeout passed."""
        if self.state is BreakerState.CLOSED or self.settings.disabled:
            return True
        if self.state is BreakerState.OPEN:
            if now < self.opened_at + self.settings.timeout_s:
                return False
            self.state = BreakerState.HALF_OPEN
            self._trials = 0
            self._successes = 0
        return self._trials < self.settings.max_requests

    def open_for(self, now: float) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.settings.timeout_s - now)

    def start(self) -> None:
        """A call was sent to the instance."""
        if self.state is BreakerState.HALF_OPEN:
            self._trials += 1

    def success(self) -> None:
        """The call succeeded."""
        if self.state is BreakerState.HALF_OPEN:
            self._trials = max(0, self._trials - 1)
            self._successes += 1
            if self._successes >= self.settings.max_requests:
                self.state = BreakerState.CLOSED
                self._failures = 0
        else:
            self._failures = 0

    def failure(self, now: float) -> None:
        """The call failed in a way that counts against the instance."""
        if self.settings.disabled:
            return
        if self.state is BreakerState.HALF_OPEN:
            self._trials = max(0, self._trials - 1)
            self._trip(now)
            return
        if self.state is BreakerState.OPEN:
            return
        self._failures += 1
        if self._failures >= self.settings.consecutive_failures:
            self._trip(now)

    def release(self) -> None:
        """The call ended without telling anything about the instance."""
        if self.state is BreakerState.HALF_OPEN:
            self._trials = max(0, self._trials - 1)

    def _trip(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = now
        self._failures = 0
        self._successes = 0
