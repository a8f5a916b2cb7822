"""The routing core's per-call decisions, driven by explicit clocks and random sources: the
call's timeout, each attempt's time, which instance is next, whether and when to retry, and
when a hedged call sends another copy (sutradhar._routing.attempts)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from sutradhar import _errors as errors
from sutradhar._errors import DeadlineExceeded, InvalidArgument, SutradharError, Unavailable
from sutradhar._routing import attempts
from sutradhar._routing.attempts import Failure
from sutradhar._routing.backend import Backend
from sutradhar._routing.policy import (
    BreakerSettings,
    HedgingSettings,
    OutlierSettings,
    Policy,
    RetrySettings,
)
from sutradhar._routing.retry import RetryBudget, backoff
from sutradhar._routing.selection import Pool
from sutradhar._routing.strategies import make_strategy
from sutradhar.v1 import router_pb2

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
POLICY = Policy(breaker=BreakerSettings(consecutive_failures=2), outlier=OutlierSettings(consecutive_failures=2))


def pool_of(n: int, policy: Policy = POLICY) -> Pool:
    backends = [Backend("default", f"i{k}", policy=policy) for k in range(n)]
    for backend in backends:
        backend.agent_id = "echo"
    return Pool(namespace="default", what="agent type 'echo'", backends=backends, policy=policy)


def failed(backend: Backend, code: grpc.StatusCode = UNAVAILABLE, *, retry_safe: bool = True) -> Failure:
    return Failure(code, f"instance {backend.instance_id!r}: {code.name}: down", retry_safe, backend)


def trip_breaker(backend: Backend, now: float) -> None:
    for _ in range(backend.policy.breaker.consecutive_failures):
        backend.breaker.failure(now)


def eject(backend: Backend, now: float) -> None:
    for _ in range(backend.policy.outlier.consecutive_failures):
        backend.outlier.failure(now, may_eject=True)


# -- the call's options, timeout and each attempt's time --------------------------------------------


def test_bad_options_are_refused_naming_the_field_and_a_set_timeout_is_read() -> None:
    assert attempts.check_options(router_pb2.RouteOptions()) is None
    assert attempts.check_options(router_pb2.RouteOptions(strategy="latency", max_attempts=2)) is None
    with pytest.raises(InvalidArgument, match=r"^options\.strategy: unknown strategy 'bogus'; use one of "):
        attempts.check_options(router_pb2.RouteOptions(strategy="bogus"))
    with pytest.raises(InvalidArgument, match=r"^options\.max_attempts: must not be negative$"):
        attempts.check_options(router_pb2.RouteOptions(max_attempts=-1))
    timed = router_pb2.RouteOptions()
    timed.timeout.FromMilliseconds(1500)
    assert attempts.check_options(timed) == 1.5
    for seconds in (0, -5):
        timed.timeout.seconds, timed.timeout.nanos = seconds, 0
        with pytest.raises(InvalidArgument, match=r"^options\.timeout: must be positive$") as refused:
            attempts.check_options(timed)
        assert refused.value.field == "options.timeout"


def test_the_grpc_deadline_wins_then_the_option_then_the_policy_default() -> None:
    default = timedelta(seconds=30)
    assert attempts.call_timeout(default, 2.0, 5.0, 0.0, 1000.0) == 2.0
    assert attempts.call_timeout(default, None, 5.0, 0.0, 1000.0) == 5.0
    assert attempts.call_timeout(default, None, None, 0.0, 1000.0) == 30.0


def test_a_task_deadline_caps_the_timeout_and_one_in_the_past_is_refused_naming_both_times() -> None:
    default = timedelta(seconds=30)
    assert attempts.call_timeout(default, 10.0, None, 1003.5, 1000.0) == pytest.approx(3.5)
    assert attempts.call_timeout(default, 1.0, None, 1003.5, 1000.0) == 1.0
    past = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    with pytest.raises(DeadlineExceeded) as refused:
        attempts.call_timeout(default, None, None, past, past + 0.25)
    message = refused.value.message
    assert "task.context.deadline 2026-01-02T03:04:05Z is already in the past" in message
    assert "(now 2026-01-02T03:04:05.250Z)" in message and "no instance was tried" in message
    with pytest.raises(DeadlineExceeded):
        attempts.call_timeout(default, None, None, past, past)  # a deadline of exactly now is past too
    with pytest.raises(DeadlineExceeded, match=r"1e\+300|unix seconds"):
        attempts.call_timeout(default, None, None, 1e300, 1e301)


def test_an_attempt_gets_the_rest_of_the_calls_time_and_none_once_it_is_gone() -> None:
    assert attempts.time_for_attempt(10.0, 7.5, 5.0, None) == 2.5
    with pytest.raises(DeadlineExceeded, match=r"deadline of 5.000s passed before the task could be sent$"):
        attempts.time_for_attempt(10.0, 10.0, 5.0, None)
    pool = pool_of(1)
    with pytest.raises(DeadlineExceeded, match=r"; last failure: instance 'i0': UNAVAILABLE: down$"):
        attempts.time_for_attempt(10.0, 11.0, 5.0, failed(pool.backends[0]))


# -- which instance --------------------------------------------------------------------------------


def test_candidates_leave_out_tried_ejected_and_broken_instances() -> None:
    pool = pool_of(4)
    a, b, c, d = pool.backends
    assert attempts.candidates(pool, [], 0.0) == [a, b, c, d]
    trip_breaker(b, 0.0)
    eject(c, 0.0)
    assert attempts.candidates(pool, [], 1.0) == [a, d]
    assert attempts.candidates(pool, [a], 1.0) == [d]
    assert attempts.candidates(pool, [a, d], 1.0) == []
    # the breaker's timeout (30 s) lets a trial through; the ejection (30 s) ends
    assert attempts.candidates(pool, [a], 31.0) == [b, c, d]


def test_next_backend_picks_by_strategy_and_says_why_when_none_is_left() -> None:
    pool = pool_of(3)
    strategy = make_strategy("round-robin")
    picked = [attempts.next_backend(pool, strategy, [], None, 0, 0.0).instance_id for _ in range(4)]
    assert picked == ["i0", "i1", "i2", "i0"]
    a, b, c = pool.backends
    assert attempts.next_backend(pool, strategy, [a, c], failed(a), 2, 0.0) is b
    with pytest.raises(Unavailable, match="no other instance is available") as final:
        attempts.next_backend(pool, strategy, [a, b, c], failed(c), 3, 0.0)
    assert final.value.message.endswith("(after 3 attempts; no other instance is available)")
    for backend in pool.backends:
        trip_breaker(backend, 0.0)
    with pytest.raises(Unavailable, match=r"all 3 serving instance\(s\) of agent type 'echo'.*circuit breaker open"):
        attempts.next_backend(pool, strategy, [], None, 0, 1.0)


def test_a_failure_may_eject_until_the_pools_cap_is_reached() -> None:
    pool = pool_of(10)  # 10 % of 10: one at a time
    first, second = pool.backends[0], pool.backends[1]
    assert attempts.may_eject(pool, first, 0.0)
    eject(first, 0.0)
    assert not attempts.may_eject(pool, second, 1.0)
    assert attempts.may_eject(pool, first, 1.0)  # an instance does not count against itself
    assert attempts.may_eject(pool, second, 31.0)  # the first came back


# -- retries ----------------------------------------------------------------------------------------


def test_the_final_error_keeps_the_code_and_says_how_many_attempts_and_why() -> None:
    backend = pool_of(1).backends[0]
    err = attempts.final_error(failed(backend, grpc.StatusCode.RESOURCE_EXHAUSTED), 1)
    assert isinstance(err, errors.ResourceExhausted)
    assert err.message == "instance 'i0': RESOURCE_EXHAUSTED: down (after 1 attempt)"
    err = attempts.final_error(failed(backend, grpc.StatusCode.FAILED_PRECONDITION), 2, "retry budget exhausted")
    assert isinstance(err, errors.FailedPrecondition)
    assert err.message.endswith("(after 2 attempts; retry budget exhausted)")
    assert isinstance(attempts.final_error(None, 0), Unavailable)


def test_a_retry_pauses_by_the_jittered_backoff_and_counts_in_the_budget() -> None:
    pool = pool_of(2)
    retry = RetrySettings(initial_backoff=timedelta(milliseconds=100), max_backoff=timedelta(seconds=1))
    budget = RetryBudget(retry)
    budget.record_request(0.0)
    pause = attempts.retry_pause(retry, budget, failed(pool.backends[0]), 1, 3, 0.0, 10.0, 10.0, random.Random(7))
    assert pause == backoff(1, retry, random.Random(7).random())
    assert 0 <= pause <= 0.1
    assert budget._totals(0.0) == (1, 1)


@pytest.mark.parametrize(("code", "retry_safe", "made", "now", "deadline", "error", "why"), [
    (grpc.StatusCode.INTERNAL, True, 1, 0.0, 10.0, grpc.StatusCode.INTERNAL, "(after 1 attempt)"),
    (UNAVAILABLE, False, 1, 0.0, 10.0, UNAVAILABLE, "(after 1 attempt)"),
    (UNAVAILABLE, True, 3, 0.0, 10.0, UNAVAILABLE, "(after 3 attempts; max attempts 3 reached)"),
    (UNAVAILABLE, True, 1, 9.99, 10.0, UNAVAILABLE, "no time left before the deadline for a retry)"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, True, 1, 10.0, 10.0, grpc.StatusCode.DEADLINE_EXCEEDED,
     "task did not complete within its deadline of 10.000s"),
])
def test_no_retry_without_a_retryable_code_a_safe_attempt_attempts_left_or_time(
    code: grpc.StatusCode, retry_safe: bool, made: int, now: float, deadline: float, error: grpc.StatusCode,
    why: str,
) -> None:
    retry = RetrySettings(initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=1))
    budget = RetryBudget(retry)
    backend = pool_of(1).backends[0]
    rng = random.Random(0)
    failure = failed(backend, code, retry_safe=retry_safe)
    with pytest.raises(SutradharError) as refused:
        attempts.retry_pause(retry, budget, failure, made, 3, now, deadline, 10.0, rng)
    assert refused.value.code is error and why in refused.value.message
    assert budget._totals(now) == (0, 0)  # a refused retry is not counted


def test_no_retry_once_the_budget_is_spent_and_the_jitter_is_not_drawn() -> None:
    retry = RetrySettings(min_retries_per_second=1, budget_percent=10.0)
    budget = RetryBudget(retry)
    backend = pool_of(1).backends[0]
    for _ in range(10):  # the floor: 1 per second over the 10 s window
        budget.record_retry(0.0)
    rng = random.Random(3)
    with pytest.raises(Unavailable, match=r"\(after 1 attempt; retry budget exhausted\)$"):
        attempts.retry_pause(retry, budget, failed(backend), 1, 3, 0.0, 10.0, 10.0, rng)
    assert rng.random() == random.Random(3).random()  # strategies share the rng: no draw was taken


# -- hedging ----------------------------------------------------------------------------------------


def test_only_listed_task_types_with_more_than_one_copy_are_hedged() -> None:
    assert not attempts.hedges(HedgingSettings(), "lookup")
    assert attempts.hedges(HedgingSettings(task_types=frozenset({"lookup"})), "lookup")
    assert not attempts.hedges(HedgingSettings(task_types=frozenset({"lookup"})), "write")
    assert not attempts.hedges(HedgingSettings(task_types=frozenset({"lookup"}), max_attempts=1), "lookup")


def test_the_hedge_waits_the_delay_while_a_copy_may_follow_then_the_rest_of_the_time() -> None:
    hedging = HedgingSettings(task_types=frozenset({"t"}), delay=timedelta(milliseconds=50), max_attempts=2)
    assert attempts.hedge_wait(hedging, 1, 10.0, 9.0) == pytest.approx(0.05)
    assert attempts.hedge_wait(hedging, 1, 10.0, 9.98) == pytest.approx(0.02)
    assert attempts.hedge_wait(hedging, 2, 10.0, 9.0) == pytest.approx(1.0)
    assert attempts.hedge_wait(hedging, 2, 10.0, 11.0) == 0.0


def test_another_copy_goes_out_on_a_silent_wait_or_a_retryable_failure_while_copies_are_left() -> None:
    hedging = HedgingSettings(task_types=frozenset({"t"}), max_attempts=3)
    retry = RetrySettings()
    backend = pool_of(1).backends[0]
    assert attempts.hedge_again(hedging, retry, 1, True, None)
    assert not attempts.hedge_again(hedging, retry, 1, False, None)  # nothing happened yet
    assert attempts.hedge_again(hedging, retry, 2, False, failed(backend))
    assert not attempts.hedge_again(hedging, retry, 2, True, failed(backend, grpc.StatusCode.INVALID_ARGUMENT))
    assert not attempts.hedge_again(hedging, retry, 3, True, None)
