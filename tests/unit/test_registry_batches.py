"""Registry response sizes: Watch batches bounded by count and bytes; an
oversized List answer is a clear RESOURCE_EXHAUSTED."""

from __future__ import annotations

import pytest

from sutradhar._errors import ResourceExhausted
from sutradhar.services.registry.servicer import check_list_size
from sutradhar.services.registry.watch import batches, event_size
from sutradhar.v1 import registry_pb2 as pb


def _event(i: int, size: int) -> pb.WatchEvent:
    return pb.WatchEvent(
        type=pb.WATCH_EVENT_TYPE_PUT, kind=pb.RESOURCE_KIND_AGENT, revision=i,
        agent=pb.Agent(id=f"a{i}", description="d" * size),
    )


def test_batches_are_bounded_by_bytes_and_count_and_keep_order() -> None:
    events = [_event(i, 1000) for i in range(50)]
    out = batches(events, max_count=500, max_bytes=10_000)
    assert [e for b in out for e in b] == events
    assert len(out) > 1
    assert all(sum(event_size(e) for e in b) <= 10_000 for b in out)
    assert all(pb.WatchResponse(events=b, revision=1).ByteSize() <= 10_000 for b in out)
    assert [len(b) for b in batches(events, max_count=7, max_bytes=10**9)] == [7] * 7 + [1]


def test_an_event_larger_than_the_budget_goes_alone() -> None:
    events = [_event(0, 10), _event(1, 5000), _event(2, 10)]
    assert [[e.revision for e in b] for b in batches(events, max_count=500, max_bytes=1000)] == [[0], [1], [2]]
    assert batches([], max_count=500, max_bytes=1000) == []


def test_list_size_check_names_size_limit_and_a_narrower_filter() -> None:
    agents = pb.ListAgentsResponse(agents=[pb.Agent(id=f"a{i}", description="d" * 1000) for i in range(10)])
    check_list_size(agents, limit=agents.ByteSize())  # exactly fits
    with pytest.raises(ResourceExhausted) as err:
        check_list_size(agents, limit=5000)
    text = str(err.value)
    assert err.value.code.name == "RESOURCE_EXHAUSTED"
    assert f"{agents.ByteSize()} bytes" in text and "5000 bytes" in text and "10 matching agents" in text
    assert 'one namespace instead of "*"' in text and "label_selector" in text
    instances = pb.ListInstancesResponse(instances=[pb.Instance(id=f"i{i}", endpoint="e" * 500) for i in range(10)])
    with pytest.raises(ResourceExhausted, match=r"ListInstances: the 10 matching instances .* agent_id"):
        check_list_size(instances, limit=1000)
