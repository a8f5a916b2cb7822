"""TokenBucket: Envoy local-rate-limit semantics under an injected clock."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from sutradhar._errors import InvalidArgument
from sutradhar._token_bucket import (
    PUSHBACK_TRAILER,
    RateLimited,
    TokenBucket,
    describe_rate,
    validate_bucket,
)


def drain(bucket: TokenBucket, now: float) -> int:
    taken = 0
    while bucket.take(now):
        taken += 1
    return taken


def test_starts_full_and_refuses_the_call_past_max_tokens() -> None:
    bucket = TokenBucket(3, 1, 1.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert (bucket.allowed, bucket.refused) == (3, 1)


def test_fills_in_whole_steps_at_each_interval_and_not_between() -> None:
    bucket = TokenBucket(10, 2, 1.0, now=0.0)
    assert drain(bucket, 0.0) == 10
    assert not bucket.take(0.999)          # nothing trickles in before the tick
    assert bucket.take(1.0) and bucket.take(1.0)   # exactly tokens_per_fill at the tick
    assert not bucket.take(1.5)
    assert drain(bucket, 3.0) == 4         # two more ticks (2.0 and 3.0)


def test_ticks_keep_their_phase_while_full() -> None:
    bucket = TokenBucket(2, 1, 1.0, now=0.0)
    assert bucket.full(5.5)                # idle: ticks at 1..5 changed nothing
    assert drain(bucket, 5.5) == 2
    assert not bucket.take(5.99)
    assert bucket.take(6.0)                # the next tick is at 6.0, not 6.5


def test_a_fill_caps_at_max_tokens_when_due_before_a_take() -> None:
    # Envoy adds at the tick: 1 left + 3 capped at 3, then one is taken -> 2 left.
    bucket = TokenBucket(3, 3, 1.0, now=0.0)
    assert drain(bucket, 0.0) == 3
    assert drain(bucket, 1.0) == 3
    bucket = TokenBucket(3, 3, 1.0, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)                        # 1 left
    assert bucket.take(1.0)                 # fill to 3 first, then take -> 2
    assert bucket.tokens == 2


def test_retry_after_is_the_time_to_the_next_fill() -> None:
    bucket = TokenBucket(1, 1, 2.0, now=10.0)
    assert bucket.retry_after(10.0) == 0.0
    assert bucket.take(10.0)
    assert not bucket.take(10.5)
    assert bucket.retry_after(10.5) == pytest.approx(1.5)
    assert bucket.retry_after(11.999) == pytest.approx(0.001)
    assert bucket.retry_after(12.0) == 0.0


def test_ready_takes_nothing() -> None:
    bucket = TokenBucket(1, 1, 1.0, now=0.0)
    assert bucket.ready(0.0) and bucket.ready(0.0)
    assert bucket.take(0.0)
    assert not bucket.ready(0.5)
    assert (bucket.allowed, bucket.refused) == (1, 0)


def test_reconfigure_keeps_usage_and_caps() -> None:
    bucket = TokenBucket(10, 1, 1.0, now=0.0)
    for _ in range(4):
        bucket.take(0.0)
    bucket.reconfigure(3, 1, 10.0, now=0.5)
    assert bucket.tokens == 3 and bucket.next_fill == 1.0
    bucket.reconfigure(3, 1, 10.0, now=0.6)  # the same numbers: nothing changes
    assert bucket.tokens == 3


def test_rejects_non_positive_numbers() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 1.0, now=0.0)


@pytest.mark.parametrize(("args", "field"), [
    ((0, 1, timedelta(seconds=1)), "limit.max_tokens"),
    ((1, 0, timedelta(seconds=1)), "limit.tokens_per_fill"),
    ((1, 1, timedelta(milliseconds=10)), "limit.fill_interval"),
])
def test_validate_names_the_field(args: tuple[int, int, timedelta], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_bucket(*args, field="limit")
    assert err.value.field == field
    assert field in err.value.message


def test_rate_limited_carries_the_pushback_trailer() -> None:
    err = RateLimited("over", retry_after=0.1234)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.retry_after_ms == 124
    assert err.trailer() == ((PUSHBACK_TRAILER, "124"),)
    assert RateLimited("over", retry_after=0.0).retry_after_ms == 1


def test_describe_rate() -> None:
    assert describe_rate(20, 10, 1.0) == "10 per 1s (burst 20)"
    assert describe_rate(5, 1, 0.25) == "1 per 250ms (burst 5)"
    assert describe_rate(5, 1, 120.0) == "1 per 2m (burst 5)"
