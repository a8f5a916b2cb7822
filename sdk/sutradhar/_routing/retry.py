"""Retry arithmetic (gRPC A6) and the retry budget (Finagle / Linkerd), pure
and driven by an explicit clock.

- `backoff(n)`: the pause before retry ``n`` (1-based) is uniform in
  ``[0, min(initial x multiplier^(n-1), max)]`` ("full jitter"), computed by
  the one `sutradhar._backoff.Backoff` with ``jitter=1``.
- `RetryBudget`: over a sliding window of 10 s, retries may not exceed
  ``max(min_retries_per_second x 10, budget_percent % of requests)``; so a
  failing pool cannot multiply its own load.
"""

from __future__ import annotations

from collections import deque

from sutradhar._backoff import Backoff
from sutradhar._routing.policy import RetrySettings

#: Length of the budget's sliding window, in seconds.
BUDGET_WINDOW_S = 10


def retry_backoff(settings: RetrySettings) -> Backoff:
    """The back-off of `settings` with full jitter (an initial back-off above
    the cap is the cap, as it always was)."""
    return Backoff(
        initial=min(settings.initial_backoff, settings.max_backoff),
        maximum=settings.max_backoff,
        multiplier=settings.backoff_multiplier,
        jitter=1.0,
    )


def backoff(retry: int, settings: RetrySettings, jitter: float) -> float:
    """Seconds to wait before retry number `retry` (1-based): the fraction
    `jitter` (a uniform draw in [0, 1)) of the capped exponential back-off."""
    # Backoff takes `rand()` off the delay; hand it 1 - jitter so that the
    # same draw gives the same pause as ever.
    return retry_backoff(settings).seconds(retry, rand=lambda: 1.0 - jitter)


class RetryBudget:
    """Counts requests and retries per second over the last `BUDGET_WINDOW_S` seconds."""

    __slots__ = ("_buckets", "settings")

    def __init__(self, settings: RetrySettings) -> None:
        self.settings = settings
        # Each bucket: [second, requests, retries]
        self._buckets: deque[list[int]] = deque()

    def _bucket(self, now: float) -> list[int]:
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            return buckets[-1]
        while buckets and buckets[0][0] <= second - BUDGET_WINDOW_S:
            buckets.popleft()
        bucket = [second, 0, 0]
        buckets.append(bucket)
        return bucket

    def _totals(self, now: float) -> tuple[int, int]:
        floor = int(now) - BUDGET_WINDOW_S
        requests = retries = 0
        for second, req, ret in self._buckets:
            if second > floor:
                requests += req
                retries += ret
        return requests, retries

    def record_request(self, now: float) -> None:
        """A first attempt was sent."""
        self._bucket(now)[1] += 1

    def allows_retry(self, now: float) -> bool:
        """Would one more retry stay inside the budget?"""
        requests, retries = self._totals(now)
        floor = self.settings.min_retries_per_second * BUDGET_WINDOW_S
        allowed = max(floor, requests * self.settings.budget_percent / 100.0)
        return retries < allowed

    def record_retry(self, now: float) -> None:
        """A retry was sent."""
        self._bucket(now)[2] += 1
