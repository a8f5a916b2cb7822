"""The routing strategies' names: the vocabulary of a RoutingPolicy's and a
request's `strategy`, shared by the registry (which validates policies), the
router (which selects by them) and callers that route themselves."""

from __future__ import annotations

from typing import Final

from sutradhar._errors import InvalidArgument

__all__ = [
    "LATENCY",
    "LEAST_LOADED",
    "RANDOM",
    "ROUND_ROBIN",
    "STRATEGIES",
    "WEIGHTED",
    "check_strategy",
]

ROUND_ROBIN: Final = "round-robin"
RANDOM: Final = "random"
LEAST_LOADED: Final = "least-loaded"
LATENCY: Final = "latency"
WEIGHTED: Final = "weighted"
#: Every strategy name a policy or a request may use.
STRATEGIES: Final = (ROUND_ROBIN, RANDOM, LEAST_LOADED, LATENCY, WEIGHTED)


def check_strategy(name: str, *, field_name: str) -> str:
    """`name` when it is a known strategy; InvalidArgument naming the field otherwise."""
    if name not in STRATEGIES:
        raise InvalidArgument(
            f"{field_name}: unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}",
            field=field_name,
        )
    return name
