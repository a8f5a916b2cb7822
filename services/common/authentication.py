"""The AUTHENTICATION stage: who is calling, from a bearer token or the peer certificate.

Per call, `Authentication` finds the caller and puts it in
`principal.CURRENT` for the stages inside it and the servicer:

1. an ``authorization: Bearer <jwt>`` header: the token, verified by a
   `TokenVerifier` (one dict lookup once it is cached) -> a principal with
   ``via="token"``, the token's id and grants, and the connection's
   certificate identity as `peer`. A token that is present but invalid is
   refused; the certificate does not stand in for it;
2. else the peer certificate: its one SPIFFE ID (`sutradhar._tls.peer_spiffe_id`)
   (gRPC sets it only for a certificate with exactly one spiffe URI SAN),
   parsed once per distinct value and kept -> ``via="certificate"``;
3. else nobody: `principal.CURRENT` stays unset and `principal.REFUSAL` holds
   an `Unauthenticated` saying which credential was expected and how to get one.

The stage never raises: AUDIT (inside it) records refused calls too, and
AUTHORIZATION raises the refusal. Both slots are set and reset around each
call, so nothing leaks from one call to the next. The standard health and
reflection services are not authenticated (the stage stays out of them).

`Authentication(..., tokens_only=True)` is the registry's bootstrap port (TLS
without client certificates, `sutradhar._bootstrap`): a bearer token is the only
credential, and a call without one is refused with `HOW_TO_BOOTSTRAP`.

`Authentication.insecure` is for a server started with ``--insecure`` on
loopback: every call is the fixed principal
``spiffe://<td>/ns/sutradhar-system/user/anonymous`` with ``via="insecure"``,
whatever it sends. Authorization lets that principal do everything only when
the server runs ``--insecure``; nowhere else does it hold any role.

The bearer header is the caller's to this server only: no Sutradhar server
forwards invocation metadata (the router sends agents the task alone).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any, Final

import grpc

from sutradhar._errors import InvalidArgument, Unauthenticated
from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId, validate_trust_domain
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar._tls import peer_spiffe_id
from sutradhar.services.common import principal
from sutradhar.services.common.principal import CERTIFICATE, INSECURE, TOKEN, Principal
from sutradhar.services.common.tokens import TokenVerifier

__all__ = ["ANONYMOUS", "HOW_TO_AUTHENTICATE", "HOW_TO_BOOTSTRAP", "Authentication"]

#: The name of the principal of every call to an --insecure server.
ANONYMOUS: Final = "anonymous"

#: What a call without credentials is told.
HOW_TO_AUTHENTICATE: Final = (
    "this call needs a client certificate issued by the mesh CA or a bearer token (authorization: Bearer ...); "
    "the CLI and SDK read ~/.config/sutradhar/credentials.yaml written by `sutradhar up`; "
    "mint a token with `sutradhar token create --namespace NS --role ROLE --ttl 1h`"
)

#: What a call without a bearer token is told on the registry's bootstrap port.
HOW_TO_BOOTSTRAP: Final = (
    "the bootstrap port takes a bearer token only (authorization: Bearer <token>): an agent's bootstrap token "
    "from `sutradhar token create --agent AGENT_ID --namespace NS`, or a user's token from "
    "`sutradhar token create --namespace NS --role ROLE`; it exchanges it for a certificate "
    "(IdentityService/IssueCertificate, see docs/security.md)"
)

_AUTHORIZATION: Final = "authorization"
#: Distinct certificate identities whose parse is kept (then the cache starts over).
_MAX_PEERS: Final = 10_000


_Slots = tuple[contextvars.Token[Principal | None], contextvars.Token[Unauthenticated | None]]


def _enter(found: Principal | Unauthenticated) -> _Slots:
    """Put the caller (or the refusal) in the principal slots; the tokens to undo it."""
    if isinstance(found, Principal):
        return principal.CURRENT.set(found), principal.REFUSAL.set(None)
    return principal.CURRENT.set(None), principal.REFUSAL.set(found)


def _leave(slots: _Slots) -> None:
    principal.REFUSAL.reset(slots[1])
    principal.CURRENT.reset(slots[0])


class Authentication:
    """The AUTHENTICATION middleware of a server whose mesh is `trust_domain`.

    `verifier` checks bearer tokens; without one, a call that sends a token
    is refused (this server takes certificates only). With `tokens_only` a
    bearer token is required and a certificate identity never stands in.
    """

    stage = Stage.AUTHENTICATION

    def __init__(self, trust_domain: str, verifier: TokenVerifier | None = None, *,
                 anonymous: Principal | None = None, tokens_only: bool = False) -> None:
        validate_trust_domain(trust_domain)
        if tokens_only and verifier is None:
            raise InvalidArgument("a tokens-only server needs a token verifier", field="verifier")
        if verifier is not None and verifier.trust_domain != trust_domain:
            raise InvalidArgument(f"the token verifier is for trust domain {verifier.trust_domain}, "
                                  f"this server's is {trust_domain}", field="verifier")
        self.trust_domain = trust_domain
        self._verifier = verifier
        self._anonymous = anonymous
        self._tokens_only = tokens_only
        self._peers: dict[bytes, SpiffeId | Unauthenticated] = {}

    @classmethod
    def insecure(cls, trust_domain: str) -> Authentication:
        """Every call is ``spiffe://<td>/ns/sutradhar-system/user/anonymous``
        (``via="insecure"``): for servers started with --insecure only."""
        identity = SpiffeId.user(trust_domain, SYSTEM_NAMESPACE, ANONYMOUS)
        return cls(trust_domain, anonymous=Principal(identity=identity, via=INSECURE))

    # -- finding the caller ----------------------------------------------------

    def _peer_identity(self, raw: bytes | None) -> SpiffeId | Unauthenticated | None:
        if raw is None:
            return None
        known = self._peers.get(raw)
        if known is not None:
            return known
        found: SpiffeId | Unauthenticated
        try:
            found = SpiffeId.parse(raw.decode())
            if found.trust_domain != self.trust_domain:
                found = Unauthenticated(
                    f"the client certificate's identity {found} is not of this mesh's trust domain "
                    f"{self.trust_domain}; {HOW_TO_AUTHENTICATE}")
        except (InvalidArgument, UnicodeDecodeError):
            found = Unauthenticated(
                "the client certificate's SPIFFE ID is not a Sutradhar identity "
                f"(spiffe://<trust-domain>/ns/<namespace>/<kind>/<name>); {HOW_TO_AUTHENTICATE}")
        if len(self._peers) >= _MAX_PEERS:
            self._peers.clear()
        self._peers[raw] = found
        return found

    def _bearer(self, metadata: Iterable[Any]) -> str | Unauthenticated | None:
        token: str | None = None
        for key, value in metadata:
            if key != _AUTHORIZATION:
                continue
            if token is not None:
                return Unauthenticated(f"the call carries more than one authorization header; send one. "
                                       f"{HOW_TO_AUTHENTICATE}")
            text = value if isinstance(value, str) else ""
            scheme, _, rest = text.partition(" ")
            if scheme.lower() != "bearer" or not rest.strip():
                return Unauthenticated(
                    "the authorization header is not `Bearer <token>` (the only scheme this mesh takes); "
                    f"{HOW_TO_AUTHENTICATE}")
            token = rest.strip()
        return token

    def authenticate(self, context: grpc.aio.ServicerContext) -> Principal | Unauthenticated:
        """The caller of the call `context` belongs to, or why there is none."""
        if self._anonymous is not None:
            return Principal(identity=self._anonymous.identity, via=INSECURE, source=context.peer())
        peer = None if self._tokens_only else self._peer_identity(peer_spiffe_id(context))
        bearer = self._bearer(context.invocation_metadata() or ())
        if isinstance(bearer, Unauthenticated):
            return bearer
        if bearer is None and self._tokens_only:
            return Unauthenticated(f"no bearer token: {HOW_TO_BOOTSTRAP}")
        if bearer is not None:
            if self._verifier is None:
                return Unauthenticated(
                    "this server takes client certificates only, not bearer tokens; call it with the "
                    "certificate `sutradhar up` wrote (~/.config/sutradhar/credentials.yaml)")
            try:
                verified = self._verifier.verify(bearer)
            except Unauthenticated as err:
                return err
            return Principal(identity=verified.subject, via=TOKEN, token_id=verified.jti, grants=verified.grants,
                             peer=peer if isinstance(peer, SpiffeId) else None, source=context.peer(),
                             expires_at=verified.expires_at)
        if isinstance(peer, SpiffeId):
            return Principal(identity=peer, via=CERTIFICATE, peer=peer, source=context.peer())
        if isinstance(peer, Unauthenticated):
            return peer
        return Unauthenticated(HOW_TO_AUTHENTICATE)

    # -- the middleware --------------------------------------------------------

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """`call_next` with the caller (or the refusal) in the principal slots."""
        if method.infrastructure:
            return call_next

        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            slots = _enter(self.authenticate(context))
            try:
                return await call_next(request, context)
            finally:
                _leave(slots)

        return authenticated

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """`call_next` (a streaming response) with the caller in the principal slots."""
        if method.infrastructure:
            return call_next

        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            slots = _enter(self.authenticate(context))
            responses = call_next(request, context)
            try:
                async for item in responses:
                    yield item
            finally:
                if isinstance(responses, AsyncGenerator):
                    await responses.aclose()
                # A generator closed from another context cannot reset; its task ends anyway.
                with contextlib.suppress(ValueError):
                    _leave(slots)

        return authenticated
