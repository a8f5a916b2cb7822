"""sutradhar._strategy_names: one list of routing strategies, which the
registry validates against and the router builds from."""

from __future__ import annotations

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar._routing.policy import policy_from_proto
from sutradhar._routing.strategies import make_strategy
from sutradhar._strategy_names import STRATEGIES, check_strategy
from sutradhar.services.common.validation import validate_routing
from sutradhar.v1 import routing_pb2


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_is_valid_everywhere(name: str) -> None:
    assert check_strategy(name, field_name="options.strategy") == name
    validate_routing(routing_pb2.RoutingPolicy(strategy=name), "agent.routing")
    assert policy_from_proto(routing_pb2.RoutingPolicy(strategy=name)).strategy == name
    assert make_strategy(name) is not None


def test_an_unknown_strategy_is_refused_by_the_registry_with_the_list() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_routing(routing_pb2.RoutingPolicy(strategy="fastest"), "agent.routing")
    assert err.value.field == "agent.routing.strategy"
    assert str(err.value) == (
        'agent.routing.strategy: "fastest" is not a routing strategy '
        '(valid: "round-robin", "random", "least-loaded", "latency", "weighted")'
    )
