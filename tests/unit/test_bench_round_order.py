"""bench/router.py's throughput rounds: every target once per round, in a seeded shuffled order,
each --baseline-sdk companion right after its target."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "router.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_router", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_router", module)
    spec.loader.exec_module(module)
    return module


def test_each_round_holds_every_target_once_with_companions_right_after() -> None:
    bench = _bench()
    targets = ["direct", "sdk-agent", "sdk-agent-base", "sdk-direct", "sdk-direct-base", "envoy"]
    companions = {"sdk-agent-base", "sdk-direct-base"}
    rng = random.Random(bench.ROUND_SEED)
    orders = [bench.round_order(targets, companions, rng) for _ in range(12)]
    for order in orders:
        assert sorted(order) == sorted(targets)
        for companion in companions:
            assert order[order.index(companion) - 1] == companion.removesuffix("-base")
    assert len({order[0] for order in orders}) > 1  # the first place moves from round to round
    again = random.Random(bench.ROUND_SEED)
    assert orders == [bench.round_order(targets, companions, again) for _ in range(12)]  # seeded
