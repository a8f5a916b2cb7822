"""The router's retry back-off is the shared `Backoff` with full jitter (gRPC A6),
and gives the very pauses the router's own arithmetic gave before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sutradhar._backoff import Backoff
from sutradhar._route_watch import WATCH_BACKOFF
from sutradhar._routing.policy import RetrySettings
from sutradhar._routing.retry import backoff, retry_backoff


def a6_pause(retry: int, s: RetrySettings, draw: float) -> float:
    """gRPC A6: uniform in [0, min(initial * multiplier^(n-1), max)], here for one draw."""
    base = s.initial_backoff.total_seconds() * s.backoff_multiplier ** max(0, retry - 1)
    return min(base, s.max_backoff.total_seconds()) * draw


@pytest.mark.parametrize(
    "settings",
    [
        RetrySettings(),
        RetrySettings(initial_backoff=timedelta(milliseconds=10), max_backoff=timedelta(milliseconds=50)),
        RetrySettings(initial_backoff=timedelta(milliseconds=5), max_backoff=timedelta(seconds=3),
                      backoff_multiplier=1.5),
        RetrySettings(initial_backoff=timedelta(seconds=2), max_backoff=timedelta(seconds=1)),  # initial above the cap
        RetrySettings(backoff_multiplier=1.0),
    ],
)
def test_retry_pauses_are_what_they_were(settings: RetrySettings) -> None:
    for retry in range(1, 12):
        for draw in (0.0, 0.1, 0.5, 0.999):
            assert backoff(retry, settings, draw) == pytest.approx(a6_pause(retry, settings, draw))


def test_the_retry_back_off_is_the_shared_one_with_full_jitter() -> None:
    b = retry_backoff(RetrySettings(initial_backoff=timedelta(milliseconds=10), max_backoff=timedelta(seconds=1)))
    assert isinstance(b, Backoff) and b.jitter == 1.0
    assert b.nominal(1) == pytest.approx(0.010) and b.nominal(20) == pytest.approx(1.0)


def test_the_registry_watch_backs_off_with_the_shared_one() -> None:
    assert WATCH_BACKOFF.nominal(1) == pytest.approx(0.2)
    assert WATCH_BACKOFF.nominal(2) == pytest.approx(0.4)
    assert WATCH_BACKOFF.nominal(10) == pytest.approx(2.0)
    assert 0 < WATCH_BACKOFF.jitter < 1
