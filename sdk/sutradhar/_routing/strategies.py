"""Load-balancing strategies. A strategy only *chooses* among the instances
it is given (all of them available); the engine decides which are given.

- ``round-robin``  each in turn
- ``random``       uniform
- ``least-loaded`` power of two choices on in-flight requests (Envoy, Ray Serve)
- ``latency``      power of two choices on peak-EWMA cost (Finagle, Linkerd)
- ``weighted``     split across agents (versions) by `RoutingPolicy.weight`
                   with smooth weighted round-robin (nginx), then round-robin
                   among the chosen agent's instances (canaries: 90 / 10)

One strategy object lives per pool (selector), so its state (a counter, the
smooth weights) persists across calls. `rng` is injectable for tests.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from sutradhar._routing.backend import Backend
from sutradhar._strategy_names import LATENCY, LEAST_LOADED, RANDOM, ROUND_ROBIN, WEIGHTED


class Strategy(Protocol):
    """Chooses one of `candidates` (never empty)."""

    def pick(self, candidates: Sequence[Backend]) -> Backend: ...


class RoundRobin:
    """Each candidate in turn."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._next = 0

    def pick(self, candidates: Sequence[Backend]) -> Backend:
        i = self._next
        self._next = i + 1
        return candidates[i % len(candidates)]


class Random:
    """A uniformly random candidate."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[Backend]) -> Backend:
        return candidates[self._rng.randrange(len(candidates))]


def _two_choices(rng: random.Random, candidates: Sequence[Backend]) -> tuple[Backend, Backend]:
    n = len(candidates)
    i = rng.randrange(n)
    j = rng.randrange(n - 1)
    if j >= i:
        j += 1
    return candidates[i], candidates[j]


class LeastLoaded:
    """Power of two choices: the less busy of two random candidates."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[Backend]) -> Backend:
        if len(candidates) == 1:
            return candidates[0]
        a, b = _two_choices(self._rng, candidates)
        return b if b.in_flight < a.in_flight else a


class Latency:
    """Power of two choices on peak-EWMA cost (latency x (in-flight + 1)).
    Instances not measured yet cost 0, so new ones are tried at once."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, candidates: Sequence[Backend]) -> Backend:
        if len(candidates) == 1:
            return candidates[0]
        a, b = _two_choices(self._rng, candidates)
        return b if b.cost() < a.cost() else a


class Weighted:
    """Smooth weighted round-robin over agents, then round-robin within one."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._current: dict[str, int] = {}
        self._rr: dict[str, int] = {}

    def pick(self, candidates: Sequence[Backend]) -> Backend:
        groups: dict[str, list[Backend]] = {}
        weights: dict[str, int] = {}
        for backend in candidates:
            groups.setdefault(backend.agent_id, []).append(backend)
            weights[backend.agent_id] = max(0, backend.weight)
        if len(groups) == 1:
            chosen = next(iter(groups))
        else:
            total = sum(weights.values())
            if total == 0:
                weights = dict.fromkeys(weights, 1)
                total = len(weights)
            current = self._current
            best = ""
            best_weight = -(1 << 62)
            for agent_id in sorted(groups):
                value = current.get(agent_id, 0) + weights[agent_id]
                current[agent_id] = value
                if value > best_weight:
                    best, best_weight = agent_id, value
            current[best] -= total
            chosen = best
        members = groups[chosen]
        i = self._rr.get(chosen, 0)
        self._rr[chosen] = i + 1
        return members[i % len(members)]


_BY_NAME: dict[str, type] = {
    ROUND_ROBIN: RoundRobin,
    RANDOM: Random,
    LEAST_LOADED: LeastLoaded,
    LATENCY: Latency,
    WEIGHTED: Weighted,
}


def make_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    """A fresh strategy object for a known strategy name (see sutradhar._strategy_names.STRATEGIES)."""
    cls: type = _BY_NAME[name]
    strategy: Strategy = cls(rng)
    return strategy
