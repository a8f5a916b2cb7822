"""Who is calling: the `Principal` authentication finds, and the per-call slot that holds it.

The AUTHENTICATION stage of a server's middleware chain sets `CURRENT` for the
call it runs (each call is its own asyncio task, so no other call sees it);
AUDIT, AUTHORIZATION, RATE_LIMIT and the servicer read it with `current()`.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from sutradhar._errors import Internal, Unauthenticated
from sutradhar._identity import SpiffeId

CERTIFICATE: Final = "certificate"
TOKEN: Final = "token"
INSECURE: Final = "insecure"

Via = Literal["certificate", "token", "insecure"]


@dataclass(frozen=True)
class Grant:
    """A role a token carries in one namespace ("*": every namespace)."""

    namespace: str
    role: str


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `identity` is the SPIFFE ID of its certificate or the subject of its token.
    `via` says which; a token's id (`token_id`, the JWT's ``jti``, never the
    token itself) and the roles it carries (`grants`) are kept for
    authorization and audit. `peer` is the certificate identity of the
    connection, which differs from `identity` when a token is sent over a
    connection authenticated by another certificate.
    """

    identity: SpiffeId
    via: Via
    token_id: str = ""
    grants: tuple[Grant, ...] = ()
    peer: SpiffeId | None = None
    source: str = field(default="", compare=False)
    """The caller's address as gRPC reports it ("ipv4:127.0.0.1:52302")."""
    expires_at: datetime | None = field(default=None, compare=False)
    """When the credential of a `via="token"` principal expires (the token's exp); None otherwise."""

    @property
    def name(self) -> str:
        """What audit records and denials call this principal (an accessor id, never a secret)."""
        return f"{self.identity}" + (f" (token {self.token_id})" if self.token_id else "")


CURRENT: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("sutradhar_principal", default=None)

REFUSAL: contextvars.ContextVar[Unauthenticated | None] = contextvars.ContextVar("sutradhar_refusal", default=None)
"""Why authentication refused the call being served. AUTHENTICATION does not raise: it
leaves CURRENT unset and puts its `Unauthenticated` here, so that AUDIT (inside it) records
the refused call and AUTHORIZATION raises it."""


def current() -> Principal:
    """The principal of the call being served; Internal when no authentication ran
    (a server wired without the AUTHENTICATION stage)."""
    principal = CURRENT.get()
    if principal is None:
        raise Internal("no authenticated principal for this call: the server runs without authentication")
    return principal


def current_or_none() -> Principal | None:
    """The principal of the call being served, or None outside an authenticated call."""
    return CURRENT.get()
