"""`sutradhar up`'s restart back-off for a child that died (cli/_launcher.py)."""

from __future__ import annotations

from sutradhar.cli._launcher import RESTART_MAX, _Restart


def test_restart_back_off_doubles_from_one_second_and_caps_at_thirty() -> None:
    state = _Restart()
    delays = []
    for _ in range(8):
        state.count += 1
        delays.append(state.delay())
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, RESTART_MAX, RESTART_MAX, RESTART_MAX]
