"""Load records read back (`parse_record`, `LoadSum`) and their latency fields (`keys.load_value`)."""

from __future__ import annotations

import json

import pytest

from sutradhar.services.common import keys
from sutradhar.services.common.load_records import LoadRecord, LoadSum, parse_record


def test_latency_is_written_only_when_measured_so_old_and_new_records_read_alike() -> None:
    plain = json.loads(keys.load_value("echo", 1.5, 10, 100.0))
    assert plain == {"agent_id": "echo", "in_flight": 1.5, "rps": 10, "updated": 100.0}
    timed = json.loads(keys.load_value("echo", 1.5, 10, 100.0, p50=0.0012345, p99=0.25))
    assert (timed["p50_ms"], timed["p99_ms"]) == (1.234, 250.0)
    key = keys.load_key("ns", "echo-0", "client-host-1")
    record = parse_record(key, keys.load_value("echo", 1.5, 10, 100.0, p50=0.002, p99=0.25))
    assert record == LoadRecord("ns", "echo-0", "client-host-1", 1.5, 10.0, 0.002, 0.25) and record.direct
    old = parse_record(keys.load_key("ns", "echo-0", "router-a"), keys.load_value("echo", 1, 2, 100.0))
    assert old is not None and (old.p50, old.p99, old.direct) == (0.0, 0.0, False)


@pytest.mark.parametrize("value", [b"not json", b"[]", b'{"rps": -1}', b'{"in_flight": "2"}', b'{"rps": true}',
                                   b'{"p99_ms": NaN}'])
def test_a_malformed_record_is_skipped_not_fatal(value: bytes) -> None:
    assert parse_record(keys.load_key("ns", "echo-0", "router-a"), value) is None


def test_a_key_without_its_parts_is_skipped() -> None:
    assert parse_record("/sutradhar/v1/load/ns/echo-0/", b"{}") is None
    assert parse_record("load", b"{}") is None


def test_sums_add_load_and_weigh_medians_by_rps() -> None:
    total = LoadSum()
    total.add(LoadRecord("ns", "a", "client-1", in_flight=1.0, rps=10.0, p50=0.001, p99=0.004))
    total.add(LoadRecord("ns", "a", "client-2", in_flight=3.0, rps=30.0, p50=0.003, p99=0.009))
    total.add(LoadRecord("ns", "a", "client-3", in_flight=0.5, rps=5.0))  # an older client: no latency
    assert (total.reporters, total.in_flight, total.rps, total.p99) == (3, 4.5, 45.0, 0.009)
    assert total.p50 == pytest.approx((10 * 0.001 + 30 * 0.003) / 40)
    assert LoadSum().p50 == 0.0


def test_breakers_and_ejections_are_written_only_when_true_and_counted_per_reporter() -> None:
    healthy = json.loads(keys.load_value("echo", 0, 0, 100.0))
    assert "breaker_open" not in healthy and "ejected" not in healthy  # old readers see the same record
    key = keys.load_key("ns", "echo-0", "client-host-1")
    held = parse_record(key, keys.load_value("echo", 0, 0, 100.0, breaker_open=True, ejected=True))
    assert held is not None and held.breaker_open and held.ejected
    assert parse_record(key, b'{"ejected": 1}') is None  # a flag is true or false, nothing else
    total = LoadSum()
    for record in (held, LoadRecord("ns", "echo-0", "client-2", 1.0, 2.0, breaker_open=True),
                   LoadRecord("ns", "echo-0", "client-3", 1.0, 2.0)):
        total.add(record)
    assert (total.reporters, total.breakers_open, total.ejecting) == (3, 2, 1)
