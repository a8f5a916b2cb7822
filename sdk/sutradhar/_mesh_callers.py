"""Who may call an agent: the mesh's services only, proven by their certificates.

An agent served with TLS (`sutradhar._serve`) requires a client certificate of
its trust bundle on every connection (`sutradhar._tls`). `MeshCallers`, at
`Stage.AUTHENTICATION`, then lets an AgentService call through only when the
certificate's SPIFFE ID is one of the mesh services that call agents — the
router (tasks), the health service and the scheduler (probes) — of the agent's
trust domain::

    spiffe://<trust-domain>/ns/sutradhar-system/service/{router,health,scheduler}

Anything else is refused: no SPIFFE ID at all is UNAUTHENTICATED, another
identity (a user, another agent, the registry, another trust domain) is
PERMISSION_DENIED; both messages say who may call. grpc.health.v1 and reflection
stay open (to any holder of a certificate of the bundle). Callers reach an agent
through the router, which checks their own credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import grpc

from sutradhar._errors import InvalidArgument, PermissionDenied, Unauthenticated
from sutradhar._identity import SERVICE, SYSTEM_NAMESPACE, SpiffeId
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar._tls import peer_spiffe_id

#: The mesh services that call agents.
AGENT_CALLERS: Final = frozenset({"router", "health", "scheduler"})
_CACHE_LIMIT = 1024


class MeshCallers:
    """Authentication of an agent's callers: mesh services of `trust_domain` only."""

    stage = Stage.AUTHENTICATION

    def __init__(self, trust_domain: str, *, agent: str = "this agent") -> None:
        self.trust_domain = trust_domain
        self.agent = agent
        self._allowed = {SpiffeId.service(trust_domain, name) for name in AGENT_CALLERS}
        self._verdicts: dict[bytes, str] = {}  # peer_spiffe_id -> "" (allowed) or the refusal

    def _verdict(self, peer: bytes) -> str:
        verdict = self._verdicts.get(peer)
        if verdict is None:
            try:
                identity: SpiffeId | None = SpiffeId.parse(peer.decode())
            except (InvalidArgument, UnicodeDecodeError):
                identity = None
            if identity in self._allowed:
                verdict = ""
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

    def check(self, context: grpc.aio.ServicerContext) -> None:
        """Raise unless the peer's certificate is a mesh service that calls agents."""
        peer = peer_spiffe_id(context)
        if peer is None:
            raise Unauthenticated(
                f"{self.agent} takes calls over mutual TLS from the mesh's router, health and scheduler only; "
                "this call presented no certificate with a SPIFFE ID (exactly one spiffe:// URI SAN)"
            )
        verdict = self._verdict(peer)
        if verdict:
            raise PermissionDenied(verdict)

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next
        check = self.check

        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            check(context)
            return await call_next(request, context)

        return authenticated

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        if method.infrastructure:
            return call_next
        check = self.check

        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            check(context)
            async for item in call_next(request, context):
                yield item

        return authenticated
