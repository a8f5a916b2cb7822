"""Who may call an agent: the mesh's services only, proven by their certificates.

An agent served with TLS (`sutradhar._serve`) requires a client certificate of
its trust bundle on every connection (`sutradhar._tls`). `MeshCallers`, at
`Stage.AUTHENTICATION`, then lets an AgentService call through only when the
certificate's SPIFFE ID is one of the mesh services that call agents — the
router (tasks), the health service and the scheduler (probes) — of the agent's
trust domain::

    spiffe://<trust-domain>/ns/sutradhar-system/service/{router,health,scheduler}

With `reviews` (`sutradhar._access_review.AccessReviews`: the agent knows the
registry), a user or agent identity of the trust domain may call too, when the
registry says it may ``execute`` this agent (an access review, cached a few
seconds): that is how a `DirectClient` with its own certificate reaches agents
without the router, authorized by the router's own rule. A denial is
PERMISSION_DENIED naming who, what and where; a registry that cannot answer is
UNAVAILABLE (fail closed). The mesh services pass without a review.

Anything else is refused: no SPIFFE ID at all is UNAUTHENTICATED, another
identity (without reviews: a user, another agent; always: the registry, a
service of another trust domain) is PERMISSION_DENIED; both messages say who may
call. grpc.health.v1 and reflection stay open (to any holder of a certificate of
the bundle). Other callers reach an agent through the router, which checks their
own credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import grpc

from sutradhar._access_review import AccessReviews
from sutradhar._errors import InvalidArgument, PermissionDenied, Unauthenticated
from sutradhar._identity import SERVICE, SYSTEM_NAMESPACE, SpiffeId
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar._tls import peer_spiffe_id

#: The mesh services that call agents.
AGENT_CALLERS: Final = frozenset({"router", "health", "scheduler"})
_CACHE_LIMIT = 1024


class MeshCallers:
    """Authentication of an agent's callers: mesh services of `trust_domain`, and, with
    `reviews`, whoever the registry says may execute the agent."""

    stage = Stage.AUTHENTICATION

    def __init__(self, trust_domain: str, *, agent: str = "this agent", reviews: AccessReviews | None = None) -> None:
        self.trust_domain = trust_domain
        self.agent = agent
        self.reviews = reviews
        self._allowed = {SpiffeId.service(trust_domain, name) for name in AGENT_CALLERS}
        # peer_spiffe_id -> "" (allowed), the identity to review, or the refusal
        self._verdicts: dict[bytes, str | SpiffeId] = {}

    def _reviewable(self, identity: SpiffeId | None) -> bool:
        """A user or agent of this trust domain, when the registry can be asked about it."""
        return (self.reviews is not None and identity is not None and identity.trust_domain == self.trust_domain
                and identity.kind != SERVICE)

    def _verdict(self, peer: bytes) -> str | SpiffeId:
        verdict = self._verdicts.get(peer)
        if verdict is None:
            try:
                identity: SpiffeId | None = SpiffeId.parse(peer.decode())
            except (InvalidArgument, UnicodeDecodeError):
                identity = None
            if identity in self._allowed:
                verdict = ""
            elif identity is not None and self._reviewable(identity):
                verdict = identity
            else:
                who = str(identity) if identity is not None else repr(peer.decode(errors="replace"))
                verdict = (
                    f"{who} may not call {self.agent}: agents take calls from the mesh's "
                    f"{', '.join(sorted(AGENT_CALLERS))} services of trust domain {self.trust_domain!r} "
                    f"(spiffe://{self.trust_domain}/ns/{SYSTEM_NAMESPACE}/{SERVICE}/<service>) only; "
                    "route tasks through the router"
                )
            if len(self._verdicts) >= _CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[peer] = verdict
        return verdict

    def check(self, context: grpc.aio.ServicerContext) -> SpiffeId | None:
        """Raise unless the peer's certificate is a mesh service that calls agents, or a caller
        to review (returned: `review` decides it)."""
        peer = peer_spiffe_id(context)
        if peer is None:
            raise Unauthenticated(
                f"{self.agent} takes calls over mutual TLS, from the mesh's router, health and scheduler"
                + (" and from callers the registry allows to execute it" if self.reviews is not None else " only")
                + "; this call presented no certificate with a SPIFFE ID (exactly one spiffe:// URI SAN)"
            )
        verdict = self._verdict(peer)
        if isinstance(verdict, SpiffeId):
            return verdict
        if verdict:
            raise PermissionDenied(verdict)
        return None

    async def review(self, caller: SpiffeId) -> None:
        """Raise unless the registry says `caller` may execute this agent (`check` returned it)."""
        assert self.reviews is not None
        refusal = await self.reviews.refusal(caller)
        if refusal:
            raise PermissionDenied(f"{refusal} (the access review {self.agent} asked the registry for this direct "
                                   "call; the router decides a routed call the same way)")

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next
        check, review = self.check, self.review

        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            caller = check(context)
            if caller is not None:
                await review(caller)
            return await call_next(request, context)

        return authenticated

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        if method.infrastructure:
            return call_next
        check, review = self.check, self.review

        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            caller = check(context)
            if caller is not None:
                await review(caller)
            async for item in call_next(request, context):
                yield item

        return authenticated
