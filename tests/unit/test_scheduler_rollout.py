"""Replica planning: steady-state scaling and rolling updates within max surge/unavailable."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar.services.scheduler.rollout import Slot, plan, resolve_strategy


def slots(revision: str, n: int, *, ready: bool = True, start: int = 0) -> list[Slot]:
    return [Slot(f"{revision}-{i}", revision, ready, order=float(start + i)) for i in range(n)]


def test_resolve_strategy_rounds_like_kubernetes():
    assert resolve_strategy("25%", "25%", 4) == (1, 1)
    assert resolve_strategy("25%", "25%", 3) == (1, 0)
    assert resolve_strategy("0", "0", 3) == (0, 1)  # both zero would deadlock
    assert resolve_strategy("2", "50%", 5) == (2, 2)
    with pytest.raises(InvalidArgument) as err:
        resolve_strategy("x", "1", 3)
    assert err.value.field == "spec.strategy.max_surge"
    with pytest.raises(InvalidArgument):
        resolve_strategy("1", "101%", 3)


def test_steady_scale_up_and_down():
    assert plan(slots("a", 1), desired=3, revision="a").start == 2
    p = plan([*slots("a", 3), Slot("a-x", "a", False, order=9.0, failed=True)], desired=2, revision="a")
    assert p.start == 0
    assert p.stop[0] == "a-x"  # failed first
    assert len(p.stop) == 2
    assert plan(slots("a", 2), desired=2, revision="a").idle


def test_rolling_update_respects_surge_and_unavailable():
    # 4 old ready, surge 1, unavailable 1: start 1 new, stop 1 old
    p = plan(slots("old", 4), desired=4, revision="new")
    assert p.start == 1
    assert len(p.stop) == 1 and p.stop[0] == "old-0"  # oldest first
    # the new one is not ready yet: no more may go
    state = [*slots("old", 3, start=1), Slot("new-0", "new", False, order=10.0)]
    p = plan(state, desired=4, revision="new")
    assert p.start == 1
    assert p.stop == ()
    # new ones ready: continue
    state = [*slots("old", 3, start=1), *slots("new", 1, start=10)]
    p = plan(state, desired=4, revision="new")
    assert p.start == 1 and len(p.stop) == 1


def test_rolling_update_never_drops_below_min_available():
    for desired in range(1, 8):
        state = slots("old", desired)
        for _ in range(50):
            p = plan(state, desired=desired, revision="new", max_surge="1", max_unavailable="0")
            state = [s for s in state if s.id not in p.stop]
            ready = sum(1 for s in state if s.ready)
            assert ready >= desired, (desired, state)
            state += [Slot(f"new-{len(state)}-{i}", "new", False, order=100.0 + len(state)) for i in range(p.start)]
            assert len(state) <= desired + 1
            # everything started becomes ready before the next step
            state = [Slot(s.id, s.revision, True, s.order) for s in state]
            if all(s.revision == "new" for s in state) and len(state) == desired:
                break
        assert sorted(s.revision for s in state) == ["new"] * desired


def test_unready_old_replicas_go_first():
    state = [Slot("old-bad", "old", False, order=5.0), *slots("old", 3)]
    p = plan(state, desired=4, revision="new", max_surge="0", max_unavailable="1")
    assert "old-bad" in p.stop


def test_paused_rollout_holds():
    state = [*slots("old", 3), *slots("new", 1, start=5)]
    assert plan(state, desired=4, revision="new", paused=True).idle


def test_scale_to_zero_stops_everything():
    state = [*slots("old", 2), *slots("new", 2, start=5)]
    p = plan(state, desired=0, revision="new")
    assert p.start == 0 and len(p.stop) == 4
