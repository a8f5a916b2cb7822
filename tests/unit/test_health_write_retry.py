"""The health writer's retry back-off: the shared Backoff, 0.5 s doubling to 5 s, jittered."""

from __future__ import annotations

from sutradhar._backoff import DEFAULT_JITTER
from sutradhar.services.health.manager import WRITE_RETRY


def test_the_writer_retries_after_half_a_second_doubling_up_to_five():
    assert [WRITE_RETRY.nominal(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert WRITE_RETRY.jitter == DEFAULT_JITTER
    assert WRITE_RETRY.seconds(1, rand=lambda: 0.0) == 0.5
    for n in range(1, 7):
        assert 0.8 * WRITE_RETRY.nominal(n) <= WRITE_RETRY.seconds(n) <= WRITE_RETRY.nominal(n)
