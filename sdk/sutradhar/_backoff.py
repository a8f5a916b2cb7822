"""Exponential back-off with jitter: the one definition the SDK and every service use.

A `Backoff` says how long to wait before retry number `attempt` (1-based):
``initial * multiplier ** (attempt - 1)``, capped at `maximum`, then jittered
downwards by up to `jitter` of itself::

    delay(attempt) = min(initial * multiplier**(attempt-1), maximum) * (1 - jitter * r),  r in [0, 1)

``jitter=0.2`` (the default) spreads clients that failed together over the
last fifth of the interval, so they do not come back in lock-step; ``jitter=1``
is gRPC A6's "full jitter" (uniform in ``[0, capped]``), which the router's
retries use. The random source is injectable (`rand`), so tests can pin it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

#: The jitter every back-off uses unless it says otherwise.
DEFAULT_JITTER = 0.2


@dataclass(frozen=True)
class Backoff:
    """Delays that grow from `initial` by `multiplier` per attempt, capped at `maximum`, jittered."""

    initial: timedelta = timedelta(milliseconds=200)
    """Delay before the first retry (before jitter)."""
    maximum: timedelta = timedelta(seconds=30)
    """Longest delay (before jitter)."""
    multiplier: float = 2.0
    """Growth per attempt; 1 keeps the delay constant."""
    jitter: float = DEFAULT_JITTER
    """Fraction of each delay taken off at random: 0 none, 1 full jitter."""

    def __post_init__(self) -> None:
        if self.initial < timedelta(0):
            raise ValueError(f"Backoff.initial must not be negative, got {self.initial}")
        if self.maximum < self.initial:
            raise ValueError(f"Backoff.maximum ({self.maximum}) must not be shorter than initial ({self.initial})")
        if not self.multiplier >= 1:
            raise ValueError(f"Backoff.multiplier must be at least 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff.jitter must be within [0, 1], got {self.jitter}")

    def nominal(self, attempt: int) -> float:
        """Seconds before retry `attempt` (1-based) without jitter: the upper bound of `seconds`."""
        initial = self.initial.total_seconds()
        maximum = self.maximum.total_seconds()
        exponent = max(0, attempt - 1)
        if initial == 0:
            return 0.0
        # Compare in logarithms: multiplier ** exponent overflows a float after ~1000 doublings.
        if self.multiplier > 1 and exponent * math.log(self.multiplier) >= math.log(maximum / initial):
            return maximum
        return min(initial * self.multiplier**exponent, maximum)

    def seconds(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry `attempt` (1-based), jittered with `rand()` in [0, 1)."""
        nominal = self.nominal(attempt)
        if self.jitter == 0:
            return nominal
        return nominal * (1.0 - self.jitter * rand())

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> timedelta:
        """`seconds` as a timedelta."""
        return timedelta(seconds=self.seconds(attempt, rand))
