"""The registration's retry delay is the shared back-off (sutradhar._backoff)
with its jitter, never longer than max_backoff nor than the renewal period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from examples.echo_agent import EchoAgent
from sutradhar._registration import Registration


def _registration(**options: Any) -> Registration:
    return Registration(client=None, agent=EchoAgent(), instance_id="i", endpoint="127.0.0.1:1", **options)  # type: ignore[arg-type]


def test_the_delay_doubles_from_200ms_up_to_max_backoff() -> None:
    reg = _registration(ttl=timedelta(seconds=30), max_backoff=timedelta(seconds=5))
    assert [reg.retry_delay(n, rand=lambda: 0.0) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_the_delay_never_exceeds_the_renewal_period() -> None:
    reg = _registration(ttl=timedelta(seconds=3), max_backoff=timedelta(seconds=5))
    assert reg.retry_delay(10, rand=lambda: 0.0) == 1.0
    short = _registration(ttl=timedelta(milliseconds=300))  # period 0.1 s, below the first step
    assert [short.retry_delay(n, rand=lambda: 0.0) for n in (1, 5)] == [0.1, 0.1]


def test_the_delay_is_jittered_downwards() -> None:
    reg = _registration(ttl=timedelta(seconds=30), max_backoff=timedelta(seconds=5))
    low = reg.retry_delay(3, rand=lambda: 0.999)
    assert 0.8 * 0.8 <= low < 0.8
    assert len({reg.retry_delay(6) for _ in range(20)}) > 1  # replicas that failed together spread out
