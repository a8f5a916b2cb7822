"""Rate-limit specs: the `TokenBucket` and `RateLimit` protos checked and read as numbers.

One place for what a valid bucket is (the registry validates with it on apply, the
router's routing policy and the CLI's manifests read with it): `bucket_numbers` turns a
`TokenBucket` message into ``(max_tokens, tokens_per_fill, fill_interval seconds)``
with the defaults filled in (`tokens_per_fill` 1), `validate_rate_limit` checks a
whole `RateLimit` (name, namespace, at least one bucket), and `shared_share` is the
arithmetic of a shared RateLimit's per-router bucket.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Final

from sutradhar._fields import field_error
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar._token_bucket import describe_rate, validate_bucket
from sutradhar.v1 import ratelimit_pb2

__all__ = ["DEFAULT_TOKENS_PER_FILL", "Numbers", "as_bucket", "bucket_numbers", "describe_limit", "shared_share",
           "validate_rate_limit"]

#: Envoy's default tokens_per_fill.
DEFAULT_TOKENS_PER_FILL: Final = 1

Numbers = tuple[int, int, float]
"""(max_tokens, tokens_per_fill, fill_interval in seconds)."""


def bucket_numbers(bucket: ratelimit_pb2.TokenBucket, *, field: str) -> Numbers:
    """The numbers of a bucket message, defaults filled in; InvalidArgument naming `field` when invalid."""
    if not bucket.HasField("fill_interval"):
        raise field_error(f"{field}.fill_interval", "is required (e.g. 1s)")
    interval = bucket.fill_interval.ToTimedelta()
    tokens_per_fill = bucket.tokens_per_fill or DEFAULT_TOKENS_PER_FILL
    validate_bucket(bucket.max_tokens, tokens_per_fill, interval, field=field)
    return bucket.max_tokens, tokens_per_fill, interval.total_seconds()


def validate_rate_limit(limit: ratelimit_pb2.RateLimit, *, field: str = "rate_limit") -> None:
    """Check a RateLimit; InvalidArgument naming the field."""
    validate_namespace(limit.namespace, field=f"{field}.namespace")
    validate_dns_label(limit.name, field=f"{field}.name", what="rate limit name")
    if not limit.HasField("namespace_limit") and not limit.HasField("per_caller"):
        raise field_error(field, "set namespace_limit, per_caller or both (a RateLimit without a bucket limits "
                                 "nothing)")
    if limit.HasField("namespace_limit"):
        bucket_numbers(limit.namespace_limit, field=f"{field}.namespace_limit")
    if limit.HasField("per_caller"):
        bucket_numbers(limit.per_caller, field=f"{field}.per_caller")


def shared_share(numbers: Numbers, routers: int) -> Numbers:
    """One router's bucket when a mesh-wide bucket is split among `routers` live routers.

    The rate ``tokens_per_fill / fill_interval`` is divided exactly: with ``g = gcd(tokens_per_fill,
    routers)`` each router adds ``tokens_per_fill / g`` tokens every ``fill_interval * routers / g``.
    The burst is ``max_tokens // routers``, at least 1 (so the mesh-wide burst never passes
    `max_tokens` while there are no more routers than `max_tokens`)."""
    max_tokens, tokens_per_fill, interval = numbers
    if routers <= 1:
        return numbers
    g = math.gcd(tokens_per_fill, routers)
    return max(1, max_tokens // routers), tokens_per_fill // g, interval * routers / g


def as_bucket(numbers: Numbers) -> ratelimit_pb2.TokenBucket:
    """A TokenBucket message for `numbers` (stats, CLI output)."""
    out = ratelimit_pb2.TokenBucket(max_tokens=numbers[0], tokens_per_fill=numbers[1])
    out.fill_interval.FromTimedelta(timedelta(seconds=numbers[2]))
    return out


def describe_limit(limit: ratelimit_pb2.RateLimit) -> str:
    """ "namespace 10 per 1s (burst 20); per caller 1 per 1s (burst 5); shared" for listings."""
    parts = []
    for label, which in (("namespace", "namespace_limit"), ("per caller", "per_caller")):
        if limit.HasField(which):
            bucket = getattr(limit, which)
            interval = bucket.fill_interval.ToTimedelta().total_seconds()
            parts.append(f"{label} {describe_rate(bucket.max_tokens, bucket.tokens_per_fill or 1, interval)}")
    if limit.shared:
        parts.append("shared")
    return "; ".join(parts)
