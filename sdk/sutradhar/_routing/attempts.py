"""One call's attempts, decided without I/O: whether its options are valid,
how long the call may take, which instance is tried next, whether (and after
what pause) a failed attempt is retried, and when a hedged call sends another
copy.

The router's engine is the I/O loop around these decisions (transports,
asyncio, the wire format); a caller that routes itself runs the same rules.
Every function takes the time it decides at (`now`, monotonic seconds; the
wall clock, unix seconds, only where a task's absolute deadline is read) and
allocates nothing on the path of a call whose first attempt succeeds.

Retries follow gRPC A6: only a retryable status code of an attempt that is
safe to repeat, at most `max_attempts` in all, within the pool's retry budget,
and only when the jittered back-off still ends before the deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc

from sutradhar._errors import DeadlineExceeded, InvalidArgument, SutradharError, Unavailable, error_for_code
from sutradhar._routing.backend import Backend
from sutradhar._routing.outlier import max_ejected
from sutradhar._routing.policy import HedgingSettings, RetrySettings
from sutradhar._routing.retry import RetryBudget, backoff
from sutradhar._routing.selection import Pool, unavailable_message
from sutradhar._routing.strategies import Strategy
from sutradhar._strategy_names import check_strategy
from sutradhar.v1 import router_pb2


@dataclass(slots=True)
class Failure:
    """A call's latest failed attempt: its status, the message naming the instance, whether
    repeating it is safe (nothing of the answer was passed on), and the instance."""

    code: grpc.StatusCode
    message: str
    retry_safe: bool
    backend: Backend


# -- the call's options and deadline ---------------------------------------------------------


def check_options(options: router_pb2.RouteOptions) -> float | None:
    """INVALID_ARGUMENT naming the field for a bad option (unknown strategy, negative
    `max_attempts`, a timeout not positive); the `options.timeout` in seconds, None when unset.
    Bad options are bad input whatever the pool holds: check them before selection."""
    if options.strategy:
        check_strategy(options.strategy, field_name="options.strategy")
    if options.max_attempts < 0:
        raise InvalidArgument("options.max_attempts: must not be negative", field="options.max_attempts")
    if not options.HasField("timeout"):
        return None
    timeout = options.timeout.seconds + options.timeout.nanos / 1e9
    if timeout <= 0:
        raise InvalidArgument("options.timeout: must be positive", field="options.timeout")
    return timeout


def _iso(unix_seconds: float) -> str:
    """A timestamp as ISO 8601 UTC (`2000-01-01T00:00:00Z`); unix seconds when out of datetime's range."""
    try:
        moment = datetime.fromtimestamp(unix_seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{unix_seconds:.3f} (unix seconds)"
    return moment.isoformat(timespec="milliseconds" if unix_seconds % 1 else "seconds").replace("+00:00", "Z")


def call_timeout(
    default_timeout: timedelta, grpc_timeout: float | None, option_timeout: float | None, task_deadline: float,
    wall_now: float,
) -> float:
    """Seconds the whole call may take: the gRPC deadline, else `options.timeout`, else the
    policy's `default_timeout`; never past the task's own deadline (`task_deadline`, unix
    seconds, 0 when unset), read against `wall_now`. DEADLINE_EXCEEDED, before any instance
    is tried, for a task deadline already past."""
    if grpc_timeout is not None:
        timeout = grpc_timeout
    elif option_timeout is not None:
        timeout = option_timeout
    else:
        timeout = default_timeout.total_seconds()
    if task_deadline:
        if task_deadline <= wall_now:
            raise DeadlineExceeded(
                f"task.context.deadline {_iso(task_deadline)} is already in the past (now {_iso(wall_now)}); no "
                "instance was tried. Set a deadline in the future, or leave task.context.deadline unset and give "
                "the call options.timeout (or a gRPC deadline) instead",
            )
        timeout = min(timeout, task_deadline - wall_now)
    return timeout


def time_for_attempt(deadline: float, now: float, timeout: float, failure: Failure | None) -> float:
    """Seconds the next attempt gets (the rest of the call's time); DEADLINE_EXCEEDED, with the
    last failure, when none is left."""
    remaining = deadline - now
    if remaining <= 0:
        raise DeadlineExceeded(
            f"deadline of {timeout:.3f}s passed before the task could be sent"
            + (f"; last failure: {failure.message}" if failure else "")
        )
    return remaining


# -- which instance ----------------------------------------------------------------------------


def candidates(pool: Pool, tried: list[Backend], now: float) -> list[Backend]:
    """The pool's instances that may take the next attempt: available (breaker, ejection) and not tried yet."""
    if not tried:
        return [b for b in pool.backends if b.available(now)]
    return [b for b in pool.backends if b not in tried and b.available(now)]


def next_backend(
    pool: Pool, strategy: Strategy, tried: list[Backend], failure: Failure | None, attempts: int, now: float,
) -> Backend:
    """The instance of the next attempt, chosen by `strategy` among the `candidates`; when there is
    none, UNAVAILABLE saying why (first attempt) or the call's final error (a retry)."""
    found = candidates(pool, tried, now)
    if not found:
        if failure is None:
            raise Unavailable(unavailable_message(pool, now))
        raise final_error(failure, attempts, "no other instance is available")
    return strategy.pick(found)


def may_eject(pool: Pool, backend: Backend, now: float) -> bool:
    """May a failure of `backend` eject it, or is the pool's ejection cap reached by the others?"""
    limit = max_ejected(len(pool.backends), backend.policy.outlier.max_ejection_percent)
    ejected = sum(1 for b in pool.backends if b is not backend and b.outlier.ejected(now))
    return ejected < limit


# -- retries -----------------------------------------------------------------------------------


def final_error(failure: Failure | None, attempts: int, why: str = "") -> SutradharError:
    """The error a call ends with: its last failure, with the attempts made and why there are no more."""
    if failure is None:
        return Unavailable("no attempt could be made")
    suffix = f" (after {attempts} attempt{'s' if attempts != 1 else ''}{'; ' + why if why else ''})"
    return error_for_code(failure.code, failure.message + suffix)


def retry_pause(
    retry: RetrySettings, budget: RetryBudget, failure: Failure, attempts: int, max_attempts: int, now: float,
    deadline: float, timeout: float, rng: random.Random,
) -> float:
    """Seconds to wait before retrying after `failure` (attempt number `attempts`), the retry
    counted in `budget`; raises the call's final error when there must be no retry: the deadline
    passed, the code is not retryable or repeating is unsafe, `max_attempts` are made, the budget
    is spent, or the back-off (jittered by one draw of `rng`) would end past the deadline."""
    plural = "s" if attempts != 1 else ""
    if failure.code is grpc.StatusCode.DEADLINE_EXCEEDED and now >= deadline:
        raise DeadlineExceeded(
            f"task did not complete within its deadline of {timeout:.3f}s: {failure.message} "
            f"(after {attempts} attempt{plural})"
        )
    if failure.code not in retry.retryable_codes or not failure.retry_safe:
        raise final_error(failure, attempts)
    if attempts >= max_attempts:
        raise final_error(failure, attempts, f"max attempts {max_attempts} reached")
    if not budget.allows_retry(now):
        raise final_error(failure, attempts, "retry budget exhausted")
    pause = backoff(attempts, retry, rng.random())
    if now + pause >= deadline:
        raise final_error(failure, attempts, "no time left before the deadline for a retry")
    budget.record_retry(now)
    return pause


# -- hedging -----------------------------------------------------------------------------------


def hedges(hedging: HedgingSettings, task_type: str) -> bool:
    """Is a task of `task_type` sent as hedged copies (its type is listed as idempotent)?"""
    return bool(hedging.task_types) and task_type in hedging.task_types and hedging.max_attempts > 1


def hedge_wait(hedging: HedgingSettings, sent: int, deadline: float, now: float) -> float:
    """Seconds to wait for the copies in flight before deciding again: the hedging delay while
    another copy may still be sent (`sent` so far), else the rest of the call's time."""
    left = deadline - now
    wait = min(hedging.delay.total_seconds(), left) if sent < hedging.max_attempts else left
    return max(0.0, wait)


def hedge_again(hedging: HedgingSettings, retry: RetrySettings, sent: int, waited_out: bool,
                failure: Failure | None) -> bool:
    """Send another copy? When the wait passed with no answer (`waited_out`) or a copy failed,
    unless a copy failed with a code that is not retried, and while fewer than the hedging's
    `max_attempts` copies were sent."""
    if not waited_out and failure is None:
        return False
    if failure is not None and failure.code not in retry.retryable_codes:
        return False
    return sent < hedging.max_attempts
