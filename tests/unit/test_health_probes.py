"""The probe state machine, schedule and state rule, driven by explicit time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import duration_pb2

from sutradhar.services.health.probes import (
    DRAINING,
    FAILURE,
    NO_RESULT,
    NOT_SERVING,
    SERVING,
    STARTING,
    SUCCESS,
    ProbeName,
    ProbeSettings,
    ProbeTracker,
    derive_state,
    enabled_state,
    first_due,
    next_due,
)
from sutradhar.v1 import probe_pb2, registry_pb2

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_defaults_are_kubernetes_defaults():
    s = ProbeSettings.resolve(None)
    assert (s.period, s.timeout, s.failure_threshold, s.success_threshold, s.initial_delay) == (
        timedelta(seconds=10), timedelta(seconds=1), 3, 1, timedelta(0)
    )
    assert s.kind == "grpc" and s.http_path == "/health" and s.enabled


def test_kind_defaults_follow_runtime_and_endpoint():
    assert ProbeSettings.resolve(None, runtime="http").kind == "http"
    assert ProbeSettings.resolve(None, endpoint="http://127.0.0.1:8080").kind == "http"
    assert ProbeSettings.resolve(None, endpoint="127.0.0.1:50000").kind == "grpc"
    assert ProbeSettings.resolve(probe_pb2.ProbeSpec(kind="tcp"), runtime="http").kind == "tcp"


def test_spec_values_override_defaults():
    spec = probe_pb2.ProbeSpec(
        kind="http", http_path="/ready", period=duration_pb2.Duration(nanos=250_000_000),
        timeout=duration_pb2.Duration(nanos=100_000_000), failure_threshold=2, success_threshold=2,
        initial_delay=duration_pb2.Duration(seconds=3),
    )
    s = ProbeSettings.resolve(spec)
    assert s.kind == "http" and s.http_path == "/ready"
    assert s.period == timedelta(milliseconds=250) and s.timeout == timedelta(milliseconds=100)
    assert (s.failure_threshold, s.success_threshold, s.initial_delay) == (2, 2, timedelta(seconds=3))


def test_readiness_on_and_liveness_off_unless_declared():
    agent = registry_pb2.Agent(id="a", runtime="process")
    assert ProbeSettings.for_agent(agent, ProbeName.READINESS).enabled
    assert not ProbeSettings.for_agent(agent, ProbeName.LIVENESS).enabled
    agent.probes.liveness.SetInParent()
    assert ProbeSettings.for_agent(agent, ProbeName.LIVENESS).enabled
    agent.probes.readiness.disabled = True
    assert not ProbeSettings.for_agent(agent, ProbeName.READINESS).enabled
    assert not ProbeSettings.for_agent(None, ProbeName.LIVENESS).enabled


def test_liveness_success_threshold_is_one():
    agent = registry_pb2.Agent(id="a")
    agent.probes.liveness.success_threshold = 5
    assert ProbeSettings.for_agent(agent, ProbeName.LIVENESS).success_threshold == 1


def test_failure_threshold_flips_verdict_only_after_consecutive_failures():
    s = ProbeSettings(failure_threshold=3, success_threshold=1)
    t = ProbeTracker()
    assert t.observe(True, s, now=at(0)).verdict_changed
    assert t.result == SUCCESS
    for i in (1, 2):
        seen = t.observe(False, s, now=at(i), message="boom")
        assert t.result == SUCCESS and not seen.verdict_changed
        assert seen.outcome_changed == (i == 1)
    assert t.consecutive_failures == 2 and t.last_result == FAILURE and t.last_message == "boom"
    # A success in between resets the count.
    t.observe(True, s, now=at(3))
    assert t.consecutive_failures == 0 and t.consecutive_successes == 1
    for i in (4, 5):
        t.observe(False, s, now=at(i), message="x")
    seen = t.observe(False, s, now=at(6), message="x")
    assert seen.verdict_changed and t.result == FAILURE and t.consecutive_failures == 3
    assert t.last_probe_time == at(6)


def test_success_threshold_needed_to_recover():
    s = ProbeSettings(failure_threshold=1, success_threshold=3)
    t = ProbeTracker()
    t.observe(False, s, now=at(0), message="down")
    assert t.result == FAILURE
    t.observe(True, s, now=at(1))
    t.observe(True, s, now=at(2))
    assert t.result == FAILURE
    assert t.observe(True, s, now=at(3)).verdict_changed
    assert t.result == SUCCESS and t.last_message == ""


def test_no_verdict_until_a_threshold_is_met():
    s = ProbeSettings(failure_threshold=3, success_threshold=2)
    t = ProbeTracker()
    t.observe(True, s, now=at(0))
    assert t.result == NO_RESULT
    t.observe(False, s, now=at(1))
    assert t.result == NO_RESULT


def test_tracker_round_trips_through_proto():
    s = ProbeSettings()
    t = ProbeTracker()
    t.observe(False, s, now=at(5), message="refused", latency=timedelta(milliseconds=3))
    back = ProbeTracker.from_proto(t.to_proto())
    assert back == t


def test_first_due_honours_initial_delay_and_spreads_old_instances():
    s = ProbeSettings(period=timedelta(seconds=1), initial_delay=timedelta(seconds=5))
    assert first_due(s, registered=100.0, now=101.0, jitter=0.3) == 105.0
    fresh = ProbeSettings(period=timedelta(seconds=1))
    assert first_due(fresh, registered=100.5, now=101.0, jitter=0.3) == 101.0
    assert first_due(fresh, registered=10.0, now=101.0, jitter=0.3) == pytest.approx(101.3)
    assert first_due(fresh, registered=None, now=101.0, jitter=0.2) == pytest.approx(101.2)


def test_next_due_is_fixed_rate_and_skips_missed_ticks():
    period = timedelta(seconds=1)
    assert next_due(10.0, period, 10.2) == 11.0
    assert next_due(10.0, period, 11.0) == 11.0
    assert next_due(10.0, period, 13.5) == 14.0


def test_state_rule():
    assert derive_state(SERVING, drained=True, readiness=SUCCESS) == DRAINING
    assert derive_state(DRAINING, drained=False, readiness=SUCCESS) == DRAINING
    assert derive_state(SERVING, drained=False, readiness=FAILURE) == NOT_SERVING
    assert derive_state(NOT_SERVING, drained=False, readiness=SUCCESS) == SERVING
    assert derive_state(STARTING, drained=False, readiness=SUCCESS) == SERVING
    assert derive_state(SERVING, drained=False, readiness=NO_RESULT) == SERVING
    assert derive_state(STARTING, drained=False, readiness=NO_RESULT) == STARTING
    assert derive_state(STARTING, drained=False, readiness=FAILURE, readiness_enabled=False) == STARTING
    assert enabled_state(FAILURE) == NOT_SERVING
    assert enabled_state(SUCCESS) == SERVING
    assert enabled_state(NO_RESULT) == SERVING
