"""The router's RateLimiter: three levels, nothing taken when over, shared splits, eviction, stats."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sutradhar._errors import InvalidArgument
from sutradhar._identity import SpiffeId
from sutradhar._ratelimit_spec import bucket_numbers, describe_limit, shared_share, validate_rate_limit
from sutradhar._routing.selection import Pool
from sutradhar._token_bucket import KeyedBuckets, RateLimited
from sutradhar.services.common import principal
from sutradhar.services.common.principal import CERTIFICATE, INSECURE, Principal
from sutradhar.services.router.ratelimits import RateLimiter, caller_key
from sutradhar.v1 import ratelimit_pb2

TD = "sutradhar.local"
ALICE = SpiffeId.user(TD, "team-a", "alice")
BOB = SpiffeId.user(TD, "team-a", "bob")


def bucket(max_tokens: int, per_fill: int = 1, seconds: float = 1.0) -> ratelimit_pb2.TokenBucket:
    out = ratelimit_pb2.TokenBucket(max_tokens=max_tokens, tokens_per_fill=per_fill)
    out.fill_interval.FromTimedelta(timedelta(seconds=seconds))
    return out


def limit(name: str = "rl", namespace: str = "team-a", *, ns: ratelimit_pb2.TokenBucket | None = None,
          caller: ratelimit_pb2.TokenBucket | None = None, shared: bool = False) -> ratelimit_pb2.RateLimit:
    out = ratelimit_pb2.RateLimit(namespace=namespace, name=name, shared=shared)
    if ns is not None:
        out.namespace_limit.CopyFrom(ns)
    if caller is not None:
        out.per_caller.CopyFrom(caller)
    return out


def pool(limiter: RateLimiter, namespace: str = "team-a", agent: str = "echo", numbers=None) -> Pool:  # type: ignore[no-untyped-def]
    p = Pool(namespace=namespace, what=f"agent type {agent!r}", backends=[], limit_agent=agent)
    p.agent_bucket = limiter.agent_bucket(namespace, agent, numbers, 0.0)
    return p


def as_caller(identity: SpiffeId) -> object:
    return principal.CURRENT.set(Principal(identity=identity, via=CERTIFICATE))


def admitted(limiter: RateLimiter, p: Pool, now: float, n: int) -> list[bool]:
    out = []
    for _ in range(n):
        try:
            limiter.admit(p, now)
            out.append(True)
        except RateLimited:
            out.append(False)
    return out


def test_agent_level_refuses_the_call_past_the_burst_and_names_the_agent() -> None:
    limiter = RateLimiter()
    p = pool(limiter, numbers=(2, 1, 1.0))
    limiter.admit(p, 0.0)
    limiter.admit(p, 0.0)
    with pytest.raises(RateLimited) as err:
        limiter.admit(p, 0.25)
    assert "agent 'echo' in namespace 'team-a'" in err.value.message
    assert "1 per 1s (burst 2)" in err.value.message and "retry in 750ms" in err.value.message
    assert err.value.retry_after_ms == 750
    limiter.admit(p, 1.0)  # refilled on time


def test_namespace_level_applies_to_every_agent_of_the_namespace_only() -> None:
    limiter = RateLimiter()
    limiter.put(limit(ns=bucket(2)), 0.0)
    echo, other, elsewhere = pool(limiter), pool(limiter, agent="other"), pool(limiter, namespace="team-b")
    assert admitted(limiter, echo, 0.0, 1) + admitted(limiter, other, 0.0, 2) == [True, True, False]
    assert admitted(limiter, elsewhere, 0.0, 5) == [True] * 5
    with pytest.raises(RateLimited) as err:
        limiter.admit(echo, 0.5)
    assert "RateLimit team-a/rl" in err.value.message and "all calls into namespace 'team-a'" in err.value.message


def test_per_caller_level_hits_only_that_caller() -> None:
    limiter = RateLimiter()
    limiter.put(limit(caller=bucket(1, seconds=10)), 0.0)
    p = pool(limiter)
    token = as_caller(ALICE)
    try:
        assert admitted(limiter, p, 0.0, 2) == [True, False]
        with pytest.raises(RateLimited) as err:
            limiter.admit(p, 1.0)
        assert str(ALICE) in err.value.message and "per caller" in err.value.message
    finally:
        principal.CURRENT.reset(token)  # type: ignore[arg-type]
    token = as_caller(BOB)
    try:
        assert admitted(limiter, p, 1.0, 1) == [True]
    finally:
        principal.CURRENT.reset(token)  # type: ignore[arg-type]


def test_a_refused_call_takes_nothing_from_the_other_levels() -> None:
    limiter = RateLimiter()
    p = pool(limiter, numbers=(10, 1, 1.0))
    limiter.put(limit("a", ns=bucket(10)), 0.0)
    limiter.put(limit("b", ns=bucket(5), caller=bucket(1, seconds=60)), 0.0)
    token = as_caller(ALICE)
    try:
        limiter.admit(p, 0.0)
        for _ in range(3):
            with pytest.raises(RateLimited):
                limiter.admit(p, 0.0)  # alice's per-caller bucket in "b" is empty
    finally:
        principal.CURRENT.reset(token)  # type: ignore[arg-type]
    buckets = {(s.level, s.name, s.caller): s for s in limiter.stats(0.0)}
    agent = buckets[(ratelimit_pb2.RATE_LIMIT_LEVEL_AGENT, "echo", "")]
    first = buckets[(ratelimit_pb2.RATE_LIMIT_LEVEL_NAMESPACE, "a", "")]
    second = buckets[(ratelimit_pb2.RATE_LIMIT_LEVEL_NAMESPACE, "b", "")]
    alice = buckets[(ratelimit_pb2.RATE_LIMIT_LEVEL_CALLER, "b", str(ALICE))]
    assert (agent.tokens, agent.allowed, agent.refused) == (9, 1, 0)
    assert (first.tokens, first.allowed) == (9, 1)
    assert (second.tokens, second.allowed) == (4, 1)
    assert (alice.tokens, alice.allowed, alice.refused) == (0, 1, 3)


def test_shared_limits_split_the_rate_among_live_routers() -> None:
    limiter = RateLimiter()
    limiter.put(limit(ns=bucket(10, per_fill=4, seconds=1), shared=True), 0.0)
    limiter.put(limit("local", ns=bucket(10, per_fill=4, seconds=1)), 0.0)
    limiter.set_routers(3, 0.0)
    stats = {s.name: s for s in limiter.stats(0.0)}
    shared, local = stats["rl"], stats["local"]
    assert (shared.bucket.max_tokens, shared.bucket.tokens_per_fill) == (3, 4)
    assert shared.bucket.fill_interval.ToTimedelta() == timedelta(seconds=3)
    assert (shared.routers, shared.shared) == (3, True)
    assert (local.bucket.max_tokens, local.bucket.tokens_per_fill, local.routers) == (10, 4, 1)
    limiter.set_routers(1, 1.0)
    assert {s.name: s for s in limiter.stats(1.0)}["rl"].bucket.max_tokens == 10


def test_shared_share_arithmetic_keeps_the_mesh_wide_rate() -> None:
    assert shared_share((100, 10, 1.0), 4) == (25, 5, 2.0)        # 5 per 2s x 4 routers = 10/s
    assert shared_share((100, 10, 1.0), 3) == (33, 10, 3.0)       # 10 per 3s x 3 = 10/s
    assert shared_share((2, 1, 1.0), 5) == (1, 1, 5.0)            # burst never below 1
    assert shared_share((7, 3, 0.5), 1) == (7, 3, 0.5)


def test_changing_and_deleting_a_rate_limit() -> None:
    limiter = RateLimiter()
    limiter.put(limit(ns=bucket(1)), 0.0)
    p = pool(limiter)
    limiter.admit(p, 0.0)
    limiter.put(limit(ns=bucket(5)), 0.1)  # raised: keeps what was used (0 left), the new cap applies
    with pytest.raises(RateLimited):
        limiter.admit(p, 0.2)
    limiter.delete("team-a", "rl")
    assert admitted(limiter, p, 0.2, 3) == [True] * 3
    limiter.replace([limit("x", ns=bucket(1))], 0.3)
    assert admitted(limiter, p, 0.3, 2) == [True, False]


def test_an_invalid_stored_rate_limit_limits_nothing() -> None:
    limiter = RateLimiter()
    bad = limit(ns=ratelimit_pb2.TokenBucket(max_tokens=0))
    limiter.put(bad, 0.0)
    assert admitted(limiter, pool(limiter), 0.0, 3) == [True] * 3


def test_caller_key_is_the_spiffe_id_or_in_an_insecure_mesh_the_peer_address() -> None:
    token = principal.CURRENT.set(Principal(identity=ALICE, via=CERTIFICATE))
    assert caller_key() == ALICE
    principal.CURRENT.reset(token)
    token = principal.CURRENT.set(Principal(identity=ALICE, via=INSECURE, source="ipv4:127.0.0.1:5555"))
    assert caller_key() == "ipv4:127.0.0.1:5555"
    principal.CURRENT.reset(token)
    assert caller_key() == "unknown"


def test_keyed_buckets_evict_refilled_then_least_recently_used() -> None:
    buckets = KeyedBuckets(1, 1, 10.0, max_keys=4)
    for i, key in enumerate("abcd"):
        buckets.get(key, float(i)).take(float(i))     # all empty, last used at 0..3, refilled at 10..13
    buckets.get("e", 4.0).take(4.0)                     # at the cap, none refilled: LRU "a" goes (down to 3)
    assert set(buckets.buckets) == {"b", "c", "d", "e"} and buckets.evicted == 1
    assert buckets.get("d", 4.0).tokens == 0            # kept callers keep their state
    buckets.get("f", 11.5)                              # "b" refilled at 11: dropped first, nothing else
    assert set(buckets.buckets) == {"c", "d", "e", "f"} and buckets.evicted == 2


def test_sync_agents_keeps_used_buckets_adds_new_and_drops_gone() -> None:
    limiter = RateLimiter()
    p = pool(limiter, numbers=(3, 1, 1.0))
    limiter.admit(p, 0.0)
    pool(limiter, agent="gone", numbers=(3, 1, 1.0))
    limiter.sync_agents({("team-a", "echo"): (3, 1, 1.0), ("team-a", "new"): (5, 1, 1.0)}, 0.5)
    assert [(s.name, s.tokens) for s in limiter.stats(0.5)] == [("echo", 2), ("new", 5)]
    assert limiter.stats(0.0, namespace="team-b") == []


def test_validation_names_the_field() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_rate_limit(limit())
    assert "namespace_limit, per_caller or both" in err.value.message
    with pytest.raises(InvalidArgument) as err:
        validate_rate_limit(limit(caller=ratelimit_pb2.TokenBucket(max_tokens=1)))
    assert err.value.field == "rate_limit.per_caller.fill_interval"
    with pytest.raises(InvalidArgument) as err:
        validate_rate_limit(limit(name="Bad_Name", ns=bucket(1)))
    assert err.value.field == "rate_limit.name"
    assert bucket_numbers(ratelimit_pb2.TokenBucket(max_tokens=3, fill_interval={"seconds": 2}), field="b") == \
        (3, 1, 2.0)


def test_describe_limit() -> None:
    assert describe_limit(limit(ns=bucket(20, 10), caller=bucket(5), shared=True)) == \
        "namespace 10 per 1s (burst 20); per caller 1 per 1s (burst 5); shared"
