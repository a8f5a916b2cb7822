"""What one autoscaler step decided, as the scheduler's metric counts it."""

from __future__ import annotations

import pytest

from sutradhar.services.scheduler.reconciler import autoscale_decision


@pytest.mark.parametrize(("current", "recommended", "scaled", "decision"), [
    (2, 4, 4, "up"),
    (4, 2, 2, "down"),
    (3, 3, 3, "unchanged"),
    (2, 6, 4, "capped"),  # the quota left room for 2 of the 4 more
    (2, 6, 2, "capped"),  # no room at all
])
def test_each_step_is_one_decision(current: int, recommended: int, scaled: int, decision: str) -> None:
    assert autoscale_decision(current, recommended, scaled) == decision
