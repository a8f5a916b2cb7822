"""TEST ONLY: a stand-in for the AUTHENTICATION stage, which another part of issue 9 builds.

`HeaderAuthentication` trusts a plain metadata header, ``x-test-principal: <SPIFFE ID>``
(optionally ``x-test-grants: ns=role,ns=role`` and ``x-test-token: <jti>``), and puts the
`Principal` it names into `principal.CURRENT`; a call without the header gets
`principal.REFUSAL` set, as the real stage does. Never use it outside tests: anyone can
send any header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import grpc

from sutradhar._errors import Unauthenticated
from sutradhar._identity import SpiffeId
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar.services.common import principal
from sutradhar.services.common.principal import CERTIFICATE, TOKEN, Grant, Principal

PRINCIPAL_HEADER: Final = "x-test-principal"
GRANTS_HEADER: Final = "x-test-grants"
TOKEN_HEADER: Final = "x-test-token"


def metadata(identity: SpiffeId | str, *, grants: str = "", token: str = "") -> tuple[tuple[str, str], ...]:
    """The call metadata that makes `HeaderAuthentication` see `identity`."""
    out = [(PRINCIPAL_HEADER, str(identity))]
    if grants:
        out.append((GRANTS_HEADER, grants))
    if token:
        out.append((TOKEN_HEADER, token))
    return tuple(out)


def _principal(context: grpc.aio.ServicerContext) -> None:
    headers = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    raw = headers.get(PRINCIPAL_HEADER)
    if raw is None:
        principal.REFUSAL.set(Unauthenticated(f"test authentication: no {PRINCIPAL_HEADER} header"))
        return
    grants = tuple(Grant(*pair.split("=", 1)) for pair in headers.get(GRANTS_HEADER, "").split(",") if pair)
    token = headers.get(TOKEN_HEADER, "")
    principal.CURRENT.set(Principal(SpiffeId.parse(raw), TOKEN if token else CERTIFICATE, token_id=token,
                                    grants=grants, source=context.peer()))


class HeaderAuthentication:
    """TEST ONLY authentication stage (see the module docstring)."""

    stage = Stage.AUTHENTICATION

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next

        async def authenticate(request: Any, context: grpc.aio.ServicerContext) -> Any:
            _principal(context)
            return await call_next(request, context)

        return authenticate

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        if method.infrastructure:
            return call_next

        async def authenticate(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            _principal(context)
            async for item in call_next(request, context):
                yield item

        return authenticate
