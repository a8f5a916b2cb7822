"""A token bucket with Envoy's local-rate-limit semantics, and the refusal it gives.

`TokenBucket` is pure: every method takes ``now`` (monotonic seconds) from the
caller, so tests drive time and the router passes the clock it already read.
Semantics are those of Envoy's ``envoy.filters.http.local_ratelimit``
``token_bucket`` (`max_tokens`, `tokens_per_fill`, `fill_interval`):

- the bucket starts full (`max_tokens`);
- every `fill_interval` after the bucket was made, `tokens_per_fill` tokens are
  added at once, never past `max_tokens` (the ticks keep their phase whether
  the bucket is full or not: whole steps, not a continuous trickle);
- a call takes one token; with none left it is refused.

Envoy runs a timer; this bucket computes the ticks that passed when it is next
touched, which gives the same counts in O(1) with no allocation per call
(`__slots__`, ints and floats only). `retry_after` is when the next token
arrives: the pushback a refused caller is told (`RateLimited.trailer`, the
``grpc-retry-pushback-ms`` trailer of gRPC's retry design, gRFC A6).

`validate_bucket` checks the numbers with Envoy's bounds (all positive, a fill
interval of at least 50 ms) and is used wherever a bucket comes from a user.

`KeyedBuckets` is one bucket per caller, bounded in number (idle ones are evicted):
the router's per-caller limits and the control plane's per-principal mutation limit.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

from sutradhar._errors import InvalidArgument, ResourceExhausted

__all__ = [
    "MIN_FILL_INTERVAL",
    "PUSHBACK_TRAILER",
    "KeyedBuckets",
    "RateLimited",
    "TokenBucket",
    "describe_rate",
    "validate_bucket",
]

#: Envoy refuses a token bucket that fills more often than every 50 ms.
MIN_FILL_INTERVAL: Final = timedelta(milliseconds=50)
#: The trailing-metadata key gRPC clients with a retry policy read as "retry after this many ms".
PUSHBACK_TRAILER: Final = "grpc-retry-pushback-ms"


def validate_bucket(max_tokens: int, tokens_per_fill: int, fill_interval: timedelta, *, field: str) -> None:
    """InvalidArgument naming ``field.<part>`` when the bucket's numbers are out of Envoy's bounds."""
    if max_tokens <= 0:
        raise InvalidArgument(f"{field}.max_tokens: must be at least 1 (the burst), got {max_tokens}",
                              field=f"{field}.max_tokens")
    if tokens_per_fill <= 0:
        raise InvalidArgument(f"{field}.tokens_per_fill: must be at least 1, got {tokens_per_fill}",
                              field=f"{field}.tokens_per_fill")
    if fill_interval < MIN_FILL_INTERVAL:
        raise InvalidArgument(
            f"{field}.fill_interval: must be at least {MIN_FILL_INTERVAL.total_seconds() * 1000:g}ms "
            f"(Envoy's bound), got {fill_interval.total_seconds() * 1000:g}ms; for a higher rate add more "
            "tokens_per_fill instead", field=f"{field}.fill_interval")


def _seconds(value: float) -> str:
    """A duration for people: "1s", "250ms", "1m30s"."""
    if value >= 60 and value % 60 == 0:
        return f"{value / 60:g}m"
    if value >= 1:
        return f"{value:g}s"
    return f"{value * 1000:g}ms"


def describe_rate(max_tokens: int, tokens_per_fill: int, fill_interval: float) -> str:
    """ "10 per 1s (burst 20)": what a bucket allows, in its own terms."""
    return f"{tokens_per_fill} per {_seconds(fill_interval)} (burst {max_tokens})"


class TokenBucket:
    """One bucket. `fill_interval` is in seconds; `now` is the caller's monotonic clock.

    `allowed` and `refused` count the calls decided by `take` (`sutradhar stats`);
    `last_used` is when a token was last taken (per-caller buckets are evicted by it).
    """

    __slots__ = ("allowed", "fill_interval", "last_used", "max_tokens", "next_fill", "refused", "tokens",
                 "tokens_per_fill")

    def __init__(self, max_tokens: int, tokens_per_fill: int, fill_interval: float, now: float) -> None:
        if max_tokens <= 0 or tokens_per_fill <= 0 or fill_interval <= 0:
            raise ValueError(f"token bucket needs positive numbers, got max_tokens={max_tokens}, "
                             f"tokens_per_fill={tokens_per_fill}, fill_interval={fill_interval}")
        self.max_tokens = max_tokens
        self.tokens_per_fill = tokens_per_fill
        self.fill_interval = fill_interval
        self.tokens = max_tokens
        self.next_fill = now + fill_interval
        self.last_used = now
        self.allowed = 0
        self.refused = 0

    def fill(self, now: float) -> int:
        """Add the fills due by `now`; the tokens there are then."""
        if now >= self.next_fill:
            steps = int((now - self.next_fill) // self.fill_interval) + 1
            self.next_fill += steps * self.fill_interval
            tokens = self.tokens + steps * self.tokens_per_fill
            self.tokens = tokens if tokens < self.max_tokens else self.max_tokens
        return self.tokens

    def ready(self, now: float) -> bool:
        """Whether a token is there at `now` (fills first; takes nothing)."""
        if now >= self.next_fill:
            self.fill(now)
        return self.tokens > 0

    def take(self, now: float) -> bool:
        """Take one token at `now`: True when there was one, False (counted as refused) when not."""
        if now >= self.next_fill:
            self.fill(now)
        if self.tokens <= 0:
            self.refused += 1
            return False
        self.tokens -= 1
        self.allowed += 1
        self.last_used = now
        return True

    def retry_after(self, now: float) -> float:
        """Seconds from `now` until a token is there (0 when one is there now)."""
        if self.fill(now) > 0:
            return 0.0
        return max(0.0, self.next_fill - now)

    def full(self, now: float) -> bool:
        """Whether the bucket is full at `now` (a full bucket is the same as a new one)."""
        return self.fill(now) >= self.max_tokens

    def reconfigure(self, max_tokens: int, tokens_per_fill: int, fill_interval: float, now: float) -> None:
        """Take new numbers, keeping what was used: the tokens are capped at the new maximum, and
        the next fill comes no later than one new interval from `now`."""
        if (max_tokens, tokens_per_fill, fill_interval) == (self.max_tokens, self.tokens_per_fill,
                                                            self.fill_interval):
            return
        if max_tokens <= 0 or tokens_per_fill <= 0 or fill_interval <= 0:
            raise ValueError("token bucket needs positive numbers")
        self.fill(now)
        self.max_tokens = max_tokens
        self.tokens_per_fill = tokens_per_fill
        self.fill_interval = fill_interval
        self.tokens = min(self.tokens, max_tokens)
        self.next_fill = min(self.next_fill, now + fill_interval)

    def describe(self) -> str:
        """What this bucket allows, e.g. "10 per 1s (burst 20)"."""
        return describe_rate(self.max_tokens, self.tokens_per_fill, self.fill_interval)


class RateLimited(ResourceExhausted):
    """RESOURCE_EXHAUSTED from a rate limit; `retry_after` seconds until a token is there.

    The server that raises it sends `trailer()` as trailing metadata (set before the
    status), so gRPC clients with a retry policy back off for that long."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_ms(self) -> int:
        """`retry_after` in whole milliseconds, rounded up (at least 1: "now" would invite a spin);
        a float error of under a microsecond does not round up a whole millisecond."""
        return max(1, math.ceil(self.retry_after * 1000 - 1e-3))

    def trailer(self) -> tuple[tuple[str, str]]:
        """The ``grpc-retry-pushback-ms`` trailing metadata."""
        return ((PUSHBACK_TRAILER, str(self.retry_after_ms)),)


class KeyedBuckets:
    """One bucket per key (a caller), at most `max_keys` of them.

    A key's bucket is made full on first use. At the cap, buckets that have filled up
    again are dropped first (a full bucket is the same as a new one, so nothing changes),
    then the least recently used, down to three quarters of the cap (a caller dropped
    while not full starts again with a full bucket: the cap trades that leniency for
    bounded memory).
    """

    __slots__ = ("buckets", "evicted", "max_keys", "numbers")

    def __init__(self, max_tokens: int, tokens_per_fill: int, fill_interval: float, *, max_keys: int) -> None:
        if max_keys <= 0:
            raise ValueError(f"max_keys must be positive, got {max_keys}")
        self.numbers = (max_tokens, tokens_per_fill, fill_interval)
        self.max_keys = max_keys
        self.buckets: dict[object, TokenBucket] = {}
        self.evicted = 0

    def get(self, key: object, now: float) -> TokenBucket:
        """The bucket of `key` (one dict lookup when it exists)."""
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self.evict(now)
            bucket = self.buckets[key] = TokenBucket(*self.numbers, now=now)
        return bucket

    def reconfigure(self, max_tokens: int, tokens_per_fill: int, fill_interval: float, now: float) -> None:
        """New numbers for every bucket, keeping what each caller used."""
        numbers = (max_tokens, tokens_per_fill, fill_interval)
        if numbers == self.numbers:
            return
        self.numbers = numbers
        for bucket in self.buckets.values():
            bucket.reconfigure(max_tokens, tokens_per_fill, fill_interval, now)

    def evict(self, now: float) -> int:
        """Drop refilled buckets, then the least recently used, down to 3/4 of `max_keys`; how many went."""
        keep = (self.max_keys * 3) // 4
        full = [k for k, b in self.buckets.items() if b.full(now)]
        for k in full:
            del self.buckets[k]
        dropped = len(full)
        if len(self.buckets) > keep:
            by_age = sorted(self.buckets.items(), key=lambda item: item[1].last_used)
            for k, _ in by_age[: len(self.buckets) - keep]:
                del self.buckets[k]
                dropped += 1
        self.evicted += dropped
        return dropped
