"""The AUTHENTICATION stage (services/common/authentication.py) without a network:
token, certificate, nothing, insecure; it never raises, resets its slots, and
stays out of health and reflection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sutradhar._errors import Unauthenticated
from sutradhar._identity import SpiffeId
from sutradhar._middleware import Chain, Method
from sutradhar.services.common import principal
from sutradhar.services.common.authentication import Authentication
from sutradhar.services.common.principal import Grant, Principal
from sutradhar.services.common.tokens import IssuerKey, TokenIssuer, TokenVerifier

TD = "sutradhar.local"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
ALICE = SpiffeId.user(TD, "team-a", "alice")
REPLICA = SpiffeId.agent(TD, "team-a", "echo", "echo-1")
KEY = IssuerKey.generate()
METHOD = Method("sutradhar.v1.RegistryService", "GetAgent")


class Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...] = (), spiffe: bytes | None = None) -> None:
        self.metadata = metadata
        self.auth = {"transport_security_type": [b"ssl"]}
        if spiffe is not None:
            self.auth["peer_spiffe_id"] = [spiffe]

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth

    def peer_identities(self) -> list[bytes] | None:
        return self.auth.get("peer_spiffe_id")

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"


def token(role: str = "viewer", **kw: Any) -> str:
    return TokenIssuer.for_mesh(KEY, TD, lambda: NOW).mint(ALICE, "team-a", role, timedelta(hours=1), **kw).token


def authn(**kw: Any) -> Authentication:
    return Authentication(TD, TokenVerifier.for_mesh([KEY.public_key()], TD, lambda: NOW, **kw))


async def seen(auth: Authentication, context: Context) -> tuple[Principal | None, Unauthenticated | None]:
    out: list[Any] = []

    async def handler(request: Any, ctx: Any) -> str:
        out.extend([principal.CURRENT.get(), principal.REFUSAL.get()])
        return "ok"

    assert await auth.unary(METHOD, handler)(None, context) == "ok"
    assert principal.CURRENT.get() is None and principal.REFUSAL.get() is None  # reset after the call
    return out[0], out[1]


def test_a_bearer_token_makes_the_principal() -> None:
    t = token()
    context = Context((("authorization", f"Bearer {t}"),), spiffe=str(REPLICA).encode())
    got, refusal = asyncio.run(seen(authn(), context))
    assert refusal is None and got is not None
    assert got.identity == ALICE and got.via == "token" and len(got.token_id) == 32
    assert got.grants == (Grant("team-a", "viewer"),) and got.peer == REPLICA and got.source == "ipv4:127.0.0.1:5555"


def test_the_peer_certificate_makes_the_principal_and_its_parse_is_kept() -> None:
    auth = authn()
    got, refusal = asyncio.run(seen(auth, Context(spiffe=str(REPLICA).encode())))
    assert refusal is None and got == Principal(identity=REPLICA, via="certificate", peer=REPLICA)
    first = auth._peer_identity(str(REPLICA).encode())
    assert auth._peer_identity(str(REPLICA).encode()) is first


@pytest.mark.parametrize(("context", "expected"), [
    (Context(), "client certificate issued by the mesh CA or a bearer token"),
    (Context(spiffe=b"spiffe://other.example/ns/a/user/x"), "not of this mesh's trust domain"),
    (Context(spiffe=b"spiffe://sutradhar.local/weird"), "not a Sutradhar identity"),
    (Context((("authorization", "Basic dXNlcjpwYXNz"),)), "is not `Bearer <token>`"),
    (Context((("authorization", "Bearer secret-aaaa"), ("authorization", "Bearer secret-bbbb"))), "more than one"),
    (Context((("authorization", "Bearer not.a.token-but-secret"),), spiffe=str(REPLICA).encode()), "refused"),
])
def test_no_valid_credential_leaves_a_refusal_and_never_raises(context: Context, expected: str) -> None:
    got, refusal = asyncio.run(seen(authn(), context))
    assert got is None and isinstance(refusal, Unauthenticated)
    assert expected in refusal.message
    assert "sutradhar token create" in refusal.message or "sutradhar up" in refusal.message
    for _, value in context.metadata:
        assert value.partition(" ")[2] not in refusal.message


def test_a_revoked_token_is_refused_by_the_stage() -> None:
    t = token()
    revoked: set[str] = set()
    auth = authn(is_revoked=revoked.__contains__)
    got, _ = asyncio.run(seen(auth, Context((("authorization", f"Bearer {t}"),))))
    assert got is not None
    revoked.add(got.token_id)
    got, refusal = asyncio.run(seen(auth, Context((("authorization", f"Bearer {t}"),))))
    assert got is None and refusal is not None and "revoked" in refusal.message


def test_a_server_without_a_verifier_refuses_tokens() -> None:
    got, refusal = asyncio.run(seen(Authentication(TD), Context((("authorization", f"Bearer {token()}"),))))
    assert got is None and refusal is not None and "certificates only" in refusal.message


def test_insecure_mode_is_the_anonymous_principal() -> None:
    got, refusal = asyncio.run(seen(Authentication.insecure(TD), Context()))
    assert refusal is None and got is not None
    assert str(got.identity) == "spiffe://sutradhar.local/ns/sutradhar-system/user/anonymous"
    assert got.via == "insecure" and got.source == "ipv4:127.0.0.1:5555"


def test_health_and_reflection_are_left_alone() -> None:
    auth = authn()

    async def handler(request: Any, ctx: Any) -> str:
        return "ok"

    async def stream(request: Any, ctx: Any) -> AsyncIterator[str]:
        yield "x"

    health = Method("grpc.health.v1.Health", "Check")
    assert auth.unary(health, handler) is handler
    assert auth.stream(Method("grpc.health.v1.Health", "Watch", server_streaming=True), stream) is stream


def test_streams_see_the_principal_and_calls_do_not_leak_into_each_other() -> None:
    chain = Chain([authn()])
    seen_ids: list[Any] = []

    async def stream(request: Any, ctx: Any) -> AsyncIterator[str]:
        for _ in range(3):
            await asyncio.sleep(0)
            current = principal.CURRENT.get()
            seen_ids.append((request, current.identity if current else principal.REFUSAL.get()))
            yield request

    behaviour = chain.stream(Method("sutradhar.v1.RegistryService", "Watch", server_streaming=True), stream)

    async def consume(request: str, context: Context) -> list[str]:
        return [item async for item in behaviour(request, context)]

    async def both() -> None:
        await asyncio.gather(
            consume("tok", Context((("authorization", f"Bearer {token()}"),))),
            consume("cert", Context(spiffe=str(REPLICA).encode())),
            consume("none", Context()),
        )

    asyncio.run(both())
    by_call: dict[str, set[Any]] = {}
    for request, who in seen_ids:
        by_call.setdefault(request, set()).add(who if isinstance(who, SpiffeId) else type(who))
    assert by_call == {"tok": {ALICE}, "cert": {REPLICA}, "none": {Unauthenticated}}
