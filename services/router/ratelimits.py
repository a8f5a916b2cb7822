"""The router's rate limits: three levels of token buckets, checked before an instance is picked.

Levels, in the order a call takes from them (every one must have a token)::

    agent       RoutingPolicy.rate_limit of the agent whose policy the pool uses (the
                named agent, or the newest version of the type); the bucket hangs on the
                cached Pool, so it costs no lookup
    namespace   RateLimit.namespace_limit of every RateLimit in the call's namespace
                (one dict lookup by namespace for all of them)
    caller      RateLimit.per_caller: one bucket per caller principal (one dict lookup by
                the caller's key), at most `max_callers` per RateLimit

A refused call touches nothing: buckets already taken from for it are given their token
back, no instance is picked, no retry budget or breaker sees it; the refusing bucket
counts a refusal. The error (`RateLimited`, RESOURCE_EXHAUSTED) names the level, the
RateLimit or agent, the namespace, the caller (per-caller level), the rate and when to
retry; the router sends that time as the ``grpc-retry-pushback-ms`` trailer.

The caller's key is its principal's SPIFFE ID (set by the AUTHENTICATION stage: a
certificate's identity or a token's subject). In an ``--insecure`` mesh every caller is
the same anonymous principal, so the key is the peer address instead (ip:port, one per
client connection): there a client that opens more connections gets more buckets.

Per router replica: each router enforces every bucket on its own, so N routers let up to
N times the rate through. A RateLimit with ``shared: true`` is split instead: each
router's bucket is `shared_share` of it for the live routers it knows
(`set_routers`, fed by router membership in etcd), so the mesh-wide rate holds without
an etcd round trip per call (see docs/ratelimits.md for the lag).

Per-caller buckets are bounded: a RateLimit holds at most `max_callers` of them
(`token_bucket.KeyedBuckets`: refilled ones are evicted first, then the least recently used).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from sutradhar._errors import InvalidArgument
from sutradhar._ratelimit_spec import Numbers, as_bucket, bucket_numbers, shared_share
from sutradhar._routing.selection import Pool
from sutradhar._token_bucket import KeyedBuckets, RateLimited, TokenBucket
from sutradhar.services.common import principal
from sutradhar.v1 import ratelimit_pb2, router_pb2

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_CALLERS", "NamespaceLimit", "RateLimiter", "caller_key"]

#: Per-caller buckets one RateLimit keeps at most (per router).
DEFAULT_MAX_CALLERS: Final = 10_000

AGENT_LEVEL: Final = ratelimit_pb2.RATE_LIMIT_LEVEL_AGENT
NAMESPACE_LEVEL: Final = ratelimit_pb2.RATE_LIMIT_LEVEL_NAMESPACE
CALLER_LEVEL: Final = ratelimit_pb2.RATE_LIMIT_LEVEL_CALLER

#: The key of a call without an authenticated principal (a router wired without authentication).
UNKNOWN_CALLER: Final = "unknown"


def caller_key() -> Any:
    """The key of the calling principal's buckets: its SPIFFE ID, or in an insecure mesh its peer address."""
    caller = principal.CURRENT.get()
    if caller is None:
        return UNKNOWN_CALLER
    if caller.via == principal.INSECURE:
        return caller.source or UNKNOWN_CALLER
    return caller.identity


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(eq=False)
class NamespaceLimit:
    """One RateLimit as a router enforces it: its namespace bucket and per-caller buckets."""

    namespace: str
    name: str
    shared: bool
    spec_namespace: Numbers | None
    """The RateLimit's namespace_limit as written (mesh-wide when shared)."""
    spec_caller: Numbers | None
    """The RateLimit's per_caller as written (mesh-wide when shared)."""
    max_callers: int
    bucket: TokenBucket | None = None
    callers: KeyedBuckets | None = None
    """This router's per-caller buckets (each its share of per_caller when shared)."""

    def configure(self, routers: int, now: float) -> None:
        """(Re)size the buckets for `routers` live routers (only shared limits change with it)."""
        n = routers if self.shared else 1
        if self.spec_namespace is None:
            self.bucket = None
        else:
            numbers = shared_share(self.spec_namespace, n)
            if self.bucket is None:
                self.bucket = TokenBucket(*numbers, now=now)
            else:
                self.bucket.reconfigure(*numbers, now=now)
        if self.spec_caller is None:
            self.callers = None
            return
        numbers = shared_share(self.spec_caller, n)
        if self.callers is None:
            self.callers = KeyedBuckets(*numbers, max_keys=self.max_callers)
        else:
            self.callers.reconfigure(*numbers, now=now)

    def where(self) -> str:
        return f"RateLimit {self.namespace}/{self.name}"


class RateLimiter:
    """Every bucket of one router; `routers` is the number of live routers shared limits are split among.
    Methods take `now` from the router's monotonic clock."""

    def __init__(self, *, max_callers: int = DEFAULT_MAX_CALLERS) -> None:
        self.max_callers = max_callers
        self.routers = 1
        self._agents: dict[tuple[str, str], TokenBucket] = {}
        #: namespace -> its RateLimits (a tuple: the hot path iterates it).
        self._namespaces: dict[str, tuple[NamespaceLimit, ...]] = {}
        self._by_key: dict[tuple[str, str], NamespaceLimit] = {}

    # -- configuration ----------------------------------------------------

    def agent_bucket(self, namespace: str, agent_id: str, numbers: Numbers | None, now: float) -> TokenBucket | None:
        """The bucket of one agent's routing policy (kept across pool and view changes); None without one."""
        key = (namespace, agent_id)
        if numbers is None:
            self._agents.pop(key, None)
            return None
        bucket = self._agents.get(key)
        if bucket is None:
            bucket = self._agents[key] = TokenBucket(*numbers, now=now)
        else:
            bucket.reconfigure(*numbers, now=now)
        return bucket

    def sync_agents(self, limited: dict[tuple[str, str], Numbers], now: float) -> None:
        """Match the agent buckets to `limited` ((namespace, agent id) -> its routing.rate_limit): make the
        missing ones (a pool resolved later takes the same bucket), resize changed ones, drop the others."""
        for key in [k for k in self._agents if k not in limited]:
            del self._agents[key]
        for (namespace, agent_id), numbers in limited.items():
            self.agent_bucket(namespace, agent_id, numbers, now)

    def put(self, limit: ratelimit_pb2.RateLimit, now: float) -> None:
        """A RateLimit was created or changed (a stored one that does not validate limits nothing)."""
        namespace = limit.namespace or "default"
        key = (namespace, limit.name)
        try:
            spec_ns = bucket_numbers(limit.namespace_limit, field="namespace_limit") \
                if limit.HasField("namespace_limit") else None
            spec_caller = bucket_numbers(limit.per_caller, field="per_caller") if limit.HasField("per_caller") else None
        except InvalidArgument as err:
            log.warning("RateLimit %s/%s does not validate (%s); not enforcing it", namespace, limit.name, err)
            self.delete(namespace, limit.name)
            return
        current = self._by_key.get(key)
        if current is None:
            current = self._by_key[key] = NamespaceLimit(namespace, limit.name, limit.shared, spec_ns, spec_caller,
                                                         self.max_callers)
        else:
            current.shared, current.spec_namespace, current.spec_caller = limit.shared, spec_ns, spec_caller
        current.configure(self.routers, now)
        self._index()

    def delete(self, namespace: str, name: str) -> None:
        """A RateLimit was deleted."""
        if self._by_key.pop((namespace or "default", name), None) is not None:
            self._index()

    def replace(self, limits: Iterable[ratelimit_pb2.RateLimit], now: float) -> None:
        """Swap in a complete listing, keeping the buckets of RateLimits still there."""
        listed = list(limits)
        names = {(x.namespace or "default", x.name) for x in listed}
        for key in [k for k in self._by_key if k not in names]:
            del self._by_key[key]
        for limit in listed:
            self.put(limit, now)
        self._index()

    def set_routers(self, routers: int, now: float) -> None:
        """The number of live routers changed: resize the shared buckets."""
        routers = max(1, routers)
        if routers == self.routers:
            return
        self.routers = routers
        for limit in self._by_key.values():
            if limit.shared:
                limit.configure(routers, now)

    def knows(self, namespace: str, name: str) -> bool:
        """Whether RateLimit `namespace`/`name` is enforced here."""
        return (namespace or "default", name) in self._by_key

    def _index(self) -> None:
        by_ns: dict[str, list[NamespaceLimit]] = {}
        for key in sorted(self._by_key):
            by_ns.setdefault(key[0], []).append(self._by_key[key])
        self._namespaces = {ns: tuple(items) for ns, items in by_ns.items()}

    # -- the hot path -----------------------------------------------------

    def admit(self, pool: Pool, now: float) -> None:
        """Take a token from every bucket the call into `pool` passes; RateLimited (and nothing
        taken) when one of them is empty. No allocation on the way through."""
        agent = pool.agent_bucket
        if agent is not None and not agent.take(now):
            raise self._refused(pool, agent, AGENT_LEVEL, None, None, now)
        limits = self._namespaces.get(pool.namespace)
        if limits is None:
            return
        key: Any = None
        for i, limit in enumerate(limits):
            bucket = limit.bucket
            if bucket is not None and not bucket.take(now):
                self._give_back(pool, limits, i, False, key)
                raise self._refused(pool, bucket, NAMESPACE_LEVEL, limit, None, now)
            callers = limit.callers
            if callers is not None:
                if key is None:
                    key = caller_key()
                bucket = callers.get(key, now)
                if not bucket.take(now):
                    self._give_back(pool, limits, i, True, key)
                    raise self._refused(pool, bucket, CALLER_LEVEL, limit, key, now)

    @staticmethod
    def _give_back(pool: Pool, limits: tuple[NamespaceLimit, ...], refused_at: int, namespace_taken: bool,
                   key: Any) -> None:
        """Return the tokens a refused call took before the refusing bucket (the agent's, those of
        the RateLimits before `refused_at`, and that one's namespace bucket when `namespace_taken`)."""
        taken: list[TokenBucket | None] = [pool.agent_bucket]
        for limit in limits[:refused_at]:
            taken.append(limit.bucket)
            taken.append(limit.callers.buckets.get(key) if limit.callers is not None else None)
        if namespace_taken:
            taken.append(limits[refused_at].bucket)
        for bucket in taken:
            if bucket is not None:
                bucket.tokens += 1
                bucket.allowed -= 1

    def _refused(self, pool: Pool, bucket: TokenBucket, level: int, limit: NamespaceLimit | None, key: Any,
                 now: float) -> RateLimited:
        wait = bucket.retry_after(now)
        rate = bucket.describe()
        if level == AGENT_LEVEL:
            message = (
                f"rate limit exceeded: agent {pool.limit_agent!r} in namespace {pool.namespace!r} allows calls at "
                f"{rate} on this router (routing.rate_limit of its routing policy); retry in {_ms(wait)}, or raise "
                "routing.rate_limit in the agent's manifest"
            )
        else:
            assert limit is not None
            who = f"for all calls into namespace {pool.namespace!r}" if level == NAMESPACE_LEVEL else \
                f"per caller in namespace {pool.namespace!r}, and caller {key} has used its share"
            share = f" (this router's share of {self.routers} live routers)" if limit.shared else " on this router"
            part = "namespace_limit" if level == NAMESPACE_LEVEL else "per_caller"
            message = (
                f"rate limit exceeded: {limit.where()} allows calls at {rate} {who}{share}; retry in {_ms(wait)}, "
                f"or ask a cluster-admin to raise its {part} (`sutradhar ratelimits -n {pool.namespace}`)"
            )
        return RateLimited(message, retry_after=wait)

    # -- stats ------------------------------------------------------------

    def stats(self, now: float, namespace: str = "") -> list[router_pb2.BucketStats]:
        """Every bucket (of `namespace` when given), sorted by level, namespace, name and caller."""
        out: list[router_pb2.BucketStats] = []

        def add(level: int, ns: str, name: str, bucket: TokenBucket, *, caller: str = "",
                shared: bool = False) -> None:
            numbers = (bucket.max_tokens, bucket.tokens_per_fill, bucket.fill_interval)
            out.append(router_pb2.BucketStats(
                level=level,  # type: ignore[arg-type]
                namespace=ns, name=name, caller=caller, tokens=bucket.fill(now), bucket=as_bucket(numbers),
                allowed=bucket.allowed, refused=bucket.refused, shared=shared,
                routers=self.routers if shared else 1,
            ))

        for (ns, agent_id), bucket in sorted(self._agents.items()):
            if not namespace or ns == namespace:
                add(AGENT_LEVEL, ns, agent_id, bucket)
        for (ns, name), limit in sorted(self._by_key.items()):
            if namespace and ns != namespace:
                continue
            if limit.bucket is not None:
                add(NAMESPACE_LEVEL, ns, name, limit.bucket, shared=limit.shared)
            callers = limit.callers.buckets if limit.callers is not None else {}
            for key, bucket in sorted(callers.items(), key=lambda item: str(item[0])):
                add(CALLER_LEVEL, ns, name, bucket, caller=str(key), shared=limit.shared)
        return out

