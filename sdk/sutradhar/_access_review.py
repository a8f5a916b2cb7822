"""Access reviews: an agent asks the registry whether a caller that reached it directly may call it.

In a secured mesh a `DirectClient` with a certificate calls agents itself, with no router
to check its credentials. The agent does it instead, as Kubernetes' kubelet does with a
SubjectAccessReview: `AccessReviews.refusal(caller)` asks the registry
(`RbacService/ReviewAccess`, over mutual TLS with the agent's own certificate) whether the
caller's SPIFFE ID may ``execute`` this agent, and the registry answers with the rule the
router applies to `RouterService/Execute` (docs/rbac.md, "Access reviews").

Answers, allowed and denied alike, are kept for `REVIEW_TTL` (10 s, by an injected clock),
for at most `CACHE_SIZE` callers (the oldest answer goes first), so a revoked binding stops
direct calls within the TTL and a busy caller costs one review per TTL; concurrent first
calls of one caller share one review. A registry that cannot be asked (unreachable, no
certificate yet, refusing the review) fails the call UNAVAILABLE, with what to do: nothing
is ever allowed without an answer (fail closed), and failures are not cached.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from sutradhar._clients import RbacClient
from sutradhar._credentials import Credentials
from sutradhar._errors import SutradharError, Unavailable
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsSource

__all__ = ["CACHE_SIZE", "REVIEW_TIMEOUT", "REVIEW_TTL", "AccessReviews", "ReviewCache"]

#: How long an answer is kept.
REVIEW_TTL: Final = timedelta(seconds=10)
#: How many callers' answers are kept.
CACHE_SIZE: Final = 4096
#: How long one review may take.
REVIEW_TIMEOUT: Final = timedelta(seconds=5)


class ReviewCache:
    """Answers by caller, each kept `ttl` from when it was stored, at most `size` of them
    (storing one more drops the oldest). Times are the caller's clock's (seconds)."""

    def __init__(self, *, ttl: timedelta = REVIEW_TTL, size: int = CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError(f"an access review cache holds at least 1 answer, not {size}")
        if ttl <= timedelta(0):
            raise ValueError(f"an access review answer is kept for a positive time, not {ttl}")
        self.ttl = ttl.total_seconds()
        self.size = size
        self._answers: OrderedDict[str, tuple[float, str]] = OrderedDict()  # caller -> (expiry, refusal or "")

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, caller: str, now: float) -> str | None:
        """The answer about `caller` ("" allowed, else the refusal), or None when none is kept (or it expired)."""
        answer = self._answers.get(caller)
        if answer is None:
            return None
        if answer[0] <= now:
            del self._answers[caller]
            return None
        return answer[1]

    def put(self, caller: str, refusal: str, now: float) -> None:
        """Keep the answer about `caller` until `now` + ttl."""
        self._answers[caller] = (now + self.ttl, refusal)
        self._answers.move_to_end(caller)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)


class AccessReviews:
    """The answers of the registry at `address` about this agent's callers.

    `tls` gives the agent's certificate when a review is made (a bootstrapped agent has it
    only once started); its identity names the namespace and agent id reviewed. `clock`
    (seconds, monotonic) times the cache.
    """

    def __init__(
        self,
        address: str,
        tls: Callable[[], TlsSource | None],
        *,
        agent: str = "this agent",
        ttl: timedelta = REVIEW_TTL,
        size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        timeout: timedelta = REVIEW_TIMEOUT,
    ) -> None:
        self.address = address
        self.agent = agent
        self.cache = ReviewCache(ttl=ttl, size=size)
        self.clock = clock
        self.timeout = timeout
        self.reviews = 0
        """Reviews the registry answered (cache misses)."""
        self._tls = tls
        self._pending: dict[str, asyncio.Future[str]] = {}
        self._client: RbacClient | None = None

    async def refusal(self, caller: SpiffeId) -> str:
        """"" when `caller` may execute this agent, else why not (the registry's reason, naming
        who, what and where). `Unavailable` when the registry cannot answer."""
        key = str(caller)
        answer = self.cache.get(key, self.clock())
        if answer is not None:
            return answer
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._review(caller))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(pending)  # one caller's cancelled call leaves the others' review

    def _finished(self, key: str, done: asyncio.Future[str]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter raises it itself, and none may be left

    async def _review(self, caller: SpiffeId) -> str:
        tls = self._tls()
        if tls is None:
            raise Unavailable(f"{self.agent} has no certificate yet to ask the registry whether {caller} may call it; "
                              "retry in a moment, or call through the router")
        if self._client is None:
            self._client = RbacClient(self.address, credentials=Credentials(tls=tls))
        own = tls.identity
        try:
            response = await self._client.review_access(str(caller), namespace=own.namespace, name=own.agent_id,
                                                        timeout=self.timeout)
        except SutradharError as err:
            raise Unavailable(
                f"{self.agent} cannot check whether {caller} may call it: the access review at the registry "
                f"{self.address} failed ({err.code.name}: {err.message}); retry when the registry is reachable, "
                "or call through the router"
            ) from None
        self.reviews += 1
        refusal = "" if response.allowed else response.reason or f"{caller} may not execute {self.agent}"
        self.cache.put(str(caller), refusal, self.clock())
        return refusal

    async def close(self) -> None:
        """Close the channel to the registry."""
        if self._client is not None:
            await self._client.close()
            self._client = None
