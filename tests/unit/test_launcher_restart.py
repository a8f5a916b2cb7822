"""`sutradhar up`'s restart back-off for a child that died (cli/_launcher.py)."""

from __future__ import annotations

from sutradhar._backoff import DEFAULT_JITTER
from sutradhar.cli._launcher import RESTART_BACKOFF, RESTART_MAX, _Restart


def test_restart_back_off_doubles_from_one_second_and_caps_at_thirty() -> None:
    state = _Restart(rand=lambda: 0.0)  # no jitter taken off: the nominal delays
    delays = []
    for _ in range(8):
        state.count += 1
        delays.append(state.delay())
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, RESTART_MAX, RESTART_MAX, RESTART_MAX]


def test_restart_back_off_is_the_shared_backoff_with_its_default_jitter() -> None:
    assert RESTART_BACKOFF.jitter == DEFAULT_JITTER
    nearly_one = 1.0 - 1e-9
    state = _Restart(rand=lambda: nearly_one)  # the most jitter takes off
    for count, nominal in enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0], start=1):
        state.count = count
        delay = state.delay()
        assert delay == RESTART_BACKOFF.seconds(count, lambda: nearly_one)
        assert nominal * (1 - DEFAULT_JITTER) <= delay < nominal  # jittered downwards, never above the nominal
