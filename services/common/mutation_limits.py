"""The control plane's RATE_LIMIT stage: mutations per principal, so one client cannot starve etcd.

`MutationLimits` sits at `Stage.RATE_LIMIT` of the registry's, the scheduler's and the
health service's chains (after AUTHORIZATION: a caller who may not call cannot drain a
bucket; before AUDIT_GATE: a refused flood writes nothing to etcd). Per call of a
*mutation* it takes one token from the caller's bucket; with none left the call is
refused with RESOURCE_EXHAUSTED naming the principal, the rate and when to retry, and
the ``grpc-retry-pushback-ms`` trailer.

A mutation is a method whose RBAC verb (`access.ACCESS`) is not a read (get, list,
watch, read, read-value, logs) and that changes what the mesh holds (`MethodAccess.
mutation`): so KeepAliveInstance, a lease heartbeat that is not audited either, is not
limited. Methods are classified once, when the chain is composed; a read costs nothing.

Who is limited: every authenticated principal (its SPIFFE ID: a certificate's identity
or a token's subject), one bucket each (`token_bucket.KeyedBuckets`, bounded), except the
mesh's own services (identities of kind ``service``), whose write volume follows the
size of the mesh (the scheduler registers and drains every replica), not a client's
behaviour. An ``--insecure`` mesh has no identities: every caller, the scheduler
included, is the same anonymous principal, so the stage is not installed there.

Settings (`ServiceSecurity.mutation_rate`, `.mutation_burst`; flags ``--mutation-rate``,
``--mutation-burst``): a bucket of `mutation_burst` tokens refilled one token every
``1 / mutation_rate`` seconds (default 50/s, burst 100); a rate or burst of 0 turns the
stage off.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc

from sutradhar._identity import SERVICE, SYSTEM_NAMESPACE
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar._token_bucket import KeyedBuckets, RateLimited
from sutradhar.services.common import principal, rbac, rbac_methods
from sutradhar.services.common.access import ACCESS, MethodAccess

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE", "MAX_PRINCIPALS", "READ_VERBS", "MutationLimits", "is_mutation"]

#: Mutations per second per principal, by default.
DEFAULT_RATE: Final = 50.0
#: Mutations a principal may make at once, by default.
DEFAULT_BURST: Final = 100
#: Principals whose buckets one server keeps at most (refilled and idle ones are evicted).
MAX_PRINCIPALS: Final = 10_000
#: Verbs that read: their methods are never limited here.
READ_VERBS: Final = frozenset({rbac.GET, rbac.LIST, rbac.WATCH, rbac.READ, rbac.READ_VALUE, rbac.LOGS})


def is_mutation(access: MethodAccess | None) -> bool:
    """Whether a method with this access entry is limited: a non-read verb that changes state."""
    return access is not None and access.verb not in READ_VERBS and access.mutation


class MutationLimits:
    """The RATE_LIMIT middleware of a control-plane service. `service` names it in refusals;
    `clock` is monotonic seconds (tests pass their own)."""

    stage = Stage.RATE_LIMIT

    def __init__(self, *, rate: float, burst: int, service: str, clock: Callable[[], float] = time.monotonic,
                 max_principals: int = MAX_PRINCIPALS) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"mutation limits need a positive rate and burst, got rate={rate}, burst={burst}")
        rbac_methods.install()
        self.rate = rate
        self.burst = burst
        self.service = service
        self.clock = clock
        self.buckets = KeyedBuckets(burst, 1, 1.0 / rate, max_keys=max_principals)

    def check(self) -> None:
        """Take a token for the calling principal; RateLimited when its bucket is empty."""
        caller = principal.CURRENT.get()
        if caller is None or (caller.identity.kind == SERVICE and caller.identity.namespace == SYSTEM_NAMESPACE):
            return
        now = self.clock()
        bucket = self.buckets.get(caller.identity, now)
        if bucket.take(now):
            return
        wait = bucket.retry_after(now)
        raise RateLimited(
            f"too many changes: {caller.identity} made more than {self.burst} mutations at once or "
            f"{self.rate:g} per second on the {self.service} (burst {self.burst}); retry in "
            f"{max(1, round(wait * 1000))}ms. The limit keeps one client from starving etcd; an operator "
            f"raises it with --mutation-rate/--mutation-burst (SUTRADHAR_{self.service.upper()}_MUTATION_RATE)",
            retry_after=wait,
        )

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """`call_next` behind the caller's bucket when `method` is a mutation; else `call_next` itself."""
        if method.infrastructure or not is_mutation(ACCESS.get(method.full_name)):
            return call_next
        check = self.check

        async def limited(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                check()
            except RateLimited as err:
                context.set_trailing_metadata(err.trailer())
                raise
            return await call_next(request, context)

        return limited

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """The same for a streaming response (no mutation streams today; kept for completeness)."""
        if method.infrastructure or not is_mutation(ACCESS.get(method.full_name)):
            return call_next
        check = self.check

        async def limited(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                check()
            except RateLimited as err:
                context.set_trailing_metadata(err.trailer())
                raise
            async for item in call_next(request, context):
                yield item

        return limited
