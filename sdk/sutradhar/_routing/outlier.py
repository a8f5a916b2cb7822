"""Passive outlier ejection with Envoy semantics, driven by an explicit clock.

An instance that fails `consecutive_failures` times in a row is ejected for
``min(base_ejection_time x times_ejected, max_ejection_time)``; it comes back
by itself when that time has passed (or when the health service reports a
passing probe after the ejection). The ejection multiplier decays by one for
every `base_ejection_time` the instance stays in. A pool never has more than
`max_ejection_percent` of its instances ejected, except that one instance of
a pool of two or more always may be.
"""

from __future__ import annotations

import math

from sutradhar._routing.policy import OutlierSettings


def max_ejected(pool_size: int, percent: int) -> int:
    """How many instances of a pool of `pool_size` may be ejected at once."""
    allowed = math.floor(pool_size * percent / 100)
    if pool_size >= 2:
        allowed = max(1, allowed)
    return min(allowed, pool_size)


class OutlierDetector:
    """One instance's ejection record."""

    __slots__ = (
        "_consecutive", "_returned_at", "ejected_at", "ejected_until", "ejections", "settings", "times_ejected",
    )

    def __init__(self, settings: OutlierSettings) -> None:
        self.settings = settings
        self.ejected_until = 0.0
        self.ejected_at = 0.0
        self.times_ejected = 0
        self.ejections = 0
        """Ejections since this router started (never decays)."""
        self._consecutive = 0
        self._returned_at = 0.0

    def ejected(self, now: float) -> bool:
        """Is the instance ejected now? Returns it to the pool once its time is up."""
        if self.ejected_until == 0.0:
            return False
        if now >= self.ejected_until:
            self._return(self.ejected_until)
            return False
        return True

    def remaining(self, now: float) -> float:
        """Seconds of ejection left (0 when not ejected)."""
        return max(0.0, self.ejected_until - now) if self.ejected_until else 0.0

    def success(self) -> None:
        """A call succeeded: the run of failures is broken."""
        self._consecutive = 0

    def failure(self, now: float, *, may_eject: bool) -> bool:
        """A call failed. Returns True when this failure ejected the instance;
        `may_eject` is False when the pool's ejection cap is reached."""
        if self.settings.disabled:
            return False
        self._consecutive += 1
        if self._consecutive < self.settings.consecutive_failures or not may_eject:
            return False
        if self.ejected_until and now < self.ejected_until:
            return False
        base = self.settings.base_ejection_s
        if self.times_ejected and self._returned_at and base > 0:
            decay = int((now - self._returned_at) / base)
            self.times_ejected = max(0, self.times_ejected - decay)
        self.times_ejected += 1
        self.ejections += 1
        self.ejected_at = now
        self.ejected_until = now + min(base * self.times_ejected, self.settings.max_ejection_s)
        self._consecutive = 0
        return True

    def probe_passed(self, probe_time: float) -> None:
        """The health service saw a passing probe at `probe_time` (same clock):
        an ejection older than that probe ends."""
        if self.ejected_until and probe_time > self.ejected_at:
            self._return(probe_time)

    def _return(self, at: float) -> None:
        self.ejected_until = 0.0
        self._returned_at = at
        self._consecutive = 0
