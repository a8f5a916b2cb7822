"""Pure router policies driven by explicit clocks: breaker, ejection, retry, policy defaults."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from sutradhar._errors import InvalidArgument
from sutradhar._routing.backend import Backend, Outcome
from sutradhar._routing.breaker import BreakerState, CircuitBreaker
from sutradhar._routing.outlier import OutlierDetector, max_ejected
from sutradhar._routing.policy import (
    BreakerSettings,
    OutlierSettings,
    RetrySettings,
    policy_from_proto,
)
from sutradhar._routing.retry import RetryBudget, backoff
from sutradhar._strategy_names import check_strategy
from sutradhar.v1 import routing_pb2


def test_breaker_closed_open_half_open_closed():
    b = CircuitBreaker(BreakerSettings(consecutive_failures=3, timeout=timedelta(seconds=10), max_requests=2))
    for t in range(2):
        assert b.selectable(t)
        b.start()
        b.failure(t)
    assert b.state is BreakerState.CLOSED
    b.start()
    b.success()  # a success breaks the run
    for _ in range(3):
        b.start()
        b.failure(5.0)
    assert b.state is BreakerState.OPEN
    assert not b.selectable(14.9)
    assert b.open_for(14.0) == pytest.approx(1.0)
    assert b.selectable(15.0)
    assert b.state is BreakerState.HALF_OPEN
    b.start()
    assert b.selectable(15.0)  # max_requests = 2 trial calls
    b.start()
    assert not b.selectable(15.0)
    b.success()
    assert b.state is BreakerState.HALF_OPEN
    b.success()
    assert b.state is BreakerState.CLOSED


def test_breaker_half_open_failure_reopens_and_release_frees_trial():
    b = CircuitBreaker(BreakerSettings(consecutive_failures=1, timeout=timedelta(seconds=1), max_requests=1))
    b.start()
    b.failure(0.0)
    assert b.selectable(1.0) and b.state is BreakerState.HALF_OPEN
    b.start()
    assert not b.selectable(1.0)
    b.release()  # cancelled call: slot back, state unchanged
    assert b.selectable(1.0) and b.state is BreakerState.HALF_OPEN
    b.start()
    b.failure(2.0)
    assert b.state is BreakerState.OPEN
    assert not b.selectable(2.5)
    assert b.selectable(3.0)


def test_breaker_disabled_never_opens():
    b = CircuitBreaker(BreakerSettings(consecutive_failures=1, disabled=True))
    for t in range(10):
        b.start()
        b.failure(t)
    assert b.state is BreakerState.CLOSED and b.selectable(10)


def test_outlier_ejection_grows_with_repeats_and_caps():
    s = OutlierSettings(consecutive_failures=2, base_ejection_time=timedelta(seconds=10),
                        max_ejection_time=timedelta(seconds=25))
    o = OutlierDetector(s)
    assert not o.failure(0.0, may_eject=True)
    assert o.failure(0.0, may_eject=True)
    assert o.ejected(9.9) and not o.ejected(10.0)  # 10 s x 1
    o.failure(10.0, may_eject=True)
    assert o.failure(10.0, may_eject=True)
    assert o.ejected(29.9) and not o.ejected(30.0)  # 10 s x 2
    o.failure(30.0, may_eject=True)
    assert o.failure(30.0, may_eject=True)
    assert o.remaining(30.0) == pytest.approx(25.0)  # 30 s capped at 25 s
    assert o.ejections == 3


def test_outlier_respects_pool_cap_and_success_resets_run():
    o = OutlierDetector(OutlierSettings(consecutive_failures=2))
    o.failure(0.0, may_eject=True)
    o.success()
    assert not o.failure(0.0, may_eject=True)
    assert not o.failure(0.0, may_eject=False)  # cap reached: stays in
    assert not o.ejected(0.0)
    assert o.failure(0.0, may_eject=True)


def test_outlier_multiplier_decays_and_probe_unejects():
    s = OutlierSettings(consecutive_failures=1, base_ejection_time=timedelta(seconds=10))
    o = OutlierDetector(s)
    o.failure(0.0, may_eject=True)
    assert not o.ejected(10.0)
    o.failure(100.0, may_eject=True)  # 90 s in the pool: multiplier decayed back to 1
    assert o.remaining(100.0) == pytest.approx(10.0)
    o.probe_passed(105.0)
    assert not o.ejected(105.0)
    o.failure(106.0, may_eject=True)
    o.probe_passed(105.5)  # a probe older than the ejection does not count
    assert o.ejected(106.5)


@pytest.mark.parametrize(("size", "percent", "expected"),
                         [(1, 10, 0), (2, 10, 1), (3, 10, 1), (10, 10, 1), (30, 10, 3), (4, 50, 2), (3, 100, 3)])
def test_max_ejected(size, percent, expected):
    assert max_ejected(size, percent) == expected


def test_backoff_is_exponential_capped_and_jittered():
    s = RetrySettings(initial_backoff=timedelta(milliseconds=10), max_backoff=timedelta(milliseconds=50),
                      backoff_multiplier=2.0)
    assert backoff(1, s, 1.0) == pytest.approx(0.010)
    assert backoff(2, s, 1.0) == pytest.approx(0.020)
    assert backoff(3, s, 1.0) == pytest.approx(0.040)
    assert backoff(4, s, 1.0) == pytest.approx(0.050)
    assert backoff(3, s, 0.5) == pytest.approx(0.020)
    assert backoff(3, s, 0.0) == 0.0


def test_retry_budget_percent_and_floor():
    budget = RetryBudget(RetrySettings(budget_percent=20.0, min_retries_per_second=1))
    # floor: 1/s x 10 s window = 10 retries with no traffic
    for _ in range(10):
        assert budget.allows_retry(0.0)
        budget.record_retry(0.0)
    assert not budget.allows_retry(0.0)
    for _ in range(100):
        budget.record_request(1.0)
    assert budget.allows_retry(1.0)  # 20 % of 100 = 20 > 10
    for _ in range(10):
        budget.record_retry(1.0)
    assert not budget.allows_retry(1.0)
    assert budget.allows_retry(11.5)  # the first second's retries left the window


def test_policy_defaults_and_overrides():
    p = policy_from_proto(None)
    assert p.strategy == "round-robin"
    assert p.breaker.consecutive_failures == 5 and p.breaker.timeout == timedelta(seconds=30)
    assert p.outlier.max_ejection_percent == 10 and p.outlier.base_ejection_time == timedelta(seconds=30)
    assert p.retry.max_attempts == 3 and p.retry.retryable_codes == {grpc.StatusCode.UNAVAILABLE}
    assert p.default_timeout == timedelta(seconds=30) and p.weight == 100
    proto = routing_pb2.RoutingPolicy(strategy="least-loaded", weight=10)
    proto.retry.max_attempts = 5
    proto.retry.retryable_status_codes.extend(["unavailable", "RESOURCE_EXHAUSTED", "BOGUS"])
    proto.circuit_breaker.timeout.FromTimedelta(timedelta(seconds=2))
    q = policy_from_proto(proto)
    assert q.strategy == "least-loaded" and q.weight == 10 and q.retry.max_attempts == 5
    assert q.retry.retryable_codes == {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert q.breaker.timeout == timedelta(seconds=2)
    assert policy_from_proto(routing_pb2.RoutingPolicy(strategy="fastest")).strategy == "round-robin"


def test_unknown_strategy_names_the_field():
    with pytest.raises(InvalidArgument) as info:
        check_strategy("fastest", field_name="options.strategy")
    assert info.value.field == "options.strategy"
    assert "round-robin" in info.value.message


def test_backend_counts_and_load_window():
    b = Backend("default", "i-1")
    b.begin(0.0)
    b.begin(0.5)
    assert b.in_flight == 2
    b.end(1.0, 1.0, Outcome.SUCCESS)
    b.end(1.0, 0.5, Outcome.FAILURE)
    assert (b.in_flight, b.requests, b.errors) == (0, 2, 1)
    sample = b.take_load(1.0)
    assert sample is not None
    # one call over [0, 1] and another over [0.5, 1]: 1.5 call-seconds in 1 s
    assert sample.in_flight == pytest.approx(1.5)
    assert sample.rps == pytest.approx(2.0)
    idle = b.take_load(2.0)  # the first idle window reports zeros once ...
    assert idle is not None and idle.in_flight == 0.0 and idle.rps == 0.0
    assert b.take_load(3.0) is None  # ... then nothing is published
    p50, p99 = b.percentiles()
    assert 0.5 <= p50 <= 1.0 and p99 == pytest.approx(1.0)


def test_an_ejected_or_broken_instance_is_reported_while_idle_and_once_more_when_it_is_back():
    b = Backend("default", "i-1")
    failures = b.policy.outlier.consecutive_failures
    for k in range(failures):
        b.begin(float(k))
        b.end(float(k) + 0.1, 0.1, Outcome.FAILURE)
    assert b.outlier.ejected(failures) and b.breaker_state(failures).name == "OPEN"
    busy = b.take_load(float(failures))
    assert busy is not None and busy.rps > 0 and busy.ejected and busy.breaker_open
    b.breaker.state = BreakerState.CLOSED  # the breaker's own way back needs a trial call; the ejection's is time
    back = b.outlier.ejected_until
    idle = [b.take_load(t) for t in (back - 2.0, back - 1.0)]  # no calls: still reported, still ejected
    assert all(s is not None and s.rps == 0 and s.ejected for s in idle), idle
    returned = b.take_load(back + 0.5)  # back in the pool: reported once, so readers drop the ejection
    assert returned is not None and not returned.ejected and returned.rps == 0
    assert b.take_load(back + 1.5) is None
