"""Tokens against the real etcd and over real gRPC: records and their leases,
revocation through the cache, and TokenService behind the AUTHENTICATION stage
in a real GrpcHost on loopback (plaintext: tokens only, no certificates)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from sutradhar._clients import TokenClient
from sutradhar._errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from sutradhar._hosting import GrpcHost
from sutradhar._identity import SpiffeId
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar.services.common import keys, principal
from sutradhar.services.common.authentication import Authentication
from sutradhar.services.common.principal import Principal
from sutradhar.services.common.token_records import RevocationCache, TokenRecords
from sutradhar.services.common.tokens import IssuerKey, TokenIssuer, TokenVerifier
from sutradhar.services.registry.token_servicer import SERVICE_NAME, add_token_service
from sutradhar.v1 import tokens_pb2
from tests.support import eventually

TD = "sutradhar.local"
KEY = IssuerKey.generate()
ADMIN = SpiffeId.user(TD, "sutradhar-system", "admin")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


class HeldRolesOnly:
    """A GrantCheck standing in for RBAC: a token may grant only the role it carries
    in its namespace, and a "*" admin may grant anything."""

    def can_grant(self, caller: Principal, role: str, namespace: str) -> Decision:
        for g in caller.grants:
            if (g.namespace == "*" and g.role == "admin") or (g.namespace == namespace and g.role == role):
                return Decision(True)
        return Decision(False, f"it holds {', '.join(f'{g.role} in {g.namespace}' for g in caller.grants)}")

    def can_grant_agent(self, caller: Principal, agent_id: str, namespace: str) -> Decision:
        return self.can_grant(caller, "admin", namespace)


class RaiseRefusal:
    """The part of AUTHORIZATION this test needs: raise what authentication left."""

    stage = Stage.AUTHORIZATION

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next

        async def check(request: Any, context: Any) -> Any:
            refusal = principal.REFUSAL.get()
            if refusal is not None:
                raise refusal
            return await call_next(request, context)

        return check

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        return call_next


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def rpc(call: Any) -> Any:
    """A raw stub call, its failure as the SDK's error."""
    from sutradhar._errors import from_rpc_error

    try:
        return await call
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None


# -- records and leases ----------------------------------------------------------


async def test_records_are_stored_listed_revoked_and_leased_past_expiry(store, unique):
    records = TokenRecords(store)
    issuer = TokenIssuer.for_mesh(KEY, TD)
    minted = issuer.mint(SpiffeId.user(TD, unique, "ci"), unique, "viewer", timedelta(hours=2), "nightly")
    stored = await records.create(minted.record)
    assert stored.id == minted.record.id and stored.subject == f"spiffe://{TD}/ns/{unique}/user/ci"
    kv = await store.get(keys.token_key(unique, minted.record.id))
    assert kv is not None and minted.token.encode() not in kv.value and b"nightly" in kv.value
    ttl = await store.lease_ttl(kv.lease)
    assert ttl is not None and timedelta(hours=2) < ttl <= timedelta(hours=2, minutes=3)
    assert [r.id for r in await records.list(unique)] == [minted.record.id]
    assert minted.record.id in {r.id for r in await records.list("*")}
    revoked = await records.revoke(unique, minted.record.id)
    assert revoked.HasField("revoke_time")
    again = await records.revoke(unique, minted.record.id)  # idempotent, first time kept
    assert again.revoke_time == revoked.revoke_time
    assert (await store.get(kv.key)).lease == kv.lease  # still under the token's lease
    with pytest.raises(NotFound, match="sutradhar token list"):
        await records.revoke(unique, "0" * 32)


async def test_an_expired_tokens_record_vanishes_with_its_lease(store, unique):
    records = TokenRecords(store, grace=timedelta(0))
    minted = TokenIssuer.for_mesh(KEY, TD).mint(SpiffeId.user(TD, unique, "x"), unique, "viewer",
                                                timedelta(seconds=1))
    await records.create(minted.record)
    assert await records.list(unique)

    async def gone() -> bool:
        return not await records.list(unique)

    await eventually(gone, within=10, period=0.2, what="the expired token's record is still there")


async def test_a_revocation_reaches_every_cache_and_the_verifier_refuses(store, unique):
    records = TokenRecords(store)
    before = TokenIssuer.for_mesh(KEY, TD).mint(SpiffeId.user(TD, unique, "a"), unique, "viewer", timedelta(hours=1))
    await records.create(before.record)
    await records.revoke(unique, before.record.id)
    cache = RevocationCache(store)
    task = asyncio.create_task(cache.run())
    try:
        await asyncio.wait_for(cache.synced.wait(), 10)
        assert cache.is_revoked(before.record.id)  # from the listing
        verifier = TokenVerifier.for_mesh([KEY.public_key()], TD, is_revoked=cache.is_revoked)
        minted = TokenIssuer.for_mesh(KEY, TD).mint(SpiffeId.user(TD, unique, "b"), unique, "viewer",
                                                    timedelta(hours=1))
        await records.create(minted.record)
        assert verifier.verify(minted.token).jti == minted.record.id  # cached now
        assert not cache.is_revoked(minted.record.id)
        await records.revoke(unique, minted.record.id)
        await eventually(lambda: cache.is_revoked(minted.record.id), within=5, what="revocation never arrived")
        with pytest.raises(Unauthenticated, match="was revoked"):
            verifier.verify(minted.token)
        # the record's end (its lease) drops the id from the cache
        await store.delete(keys.token_key(unique, minted.record.id))
        await eventually(lambda: not cache.is_revoked(minted.record.id), within=5, what="deleted record kept")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- TokenService behind authentication, over gRPC -------------------------------


@pytest.fixture
async def token_server(store) -> AsyncIterator[dict[str, Any]]:
    cache = RevocationCache(store)
    watch = asyncio.create_task(cache.run())
    await asyncio.wait_for(cache.synced.wait(), 10)
    verifier = TokenVerifier.for_mesh([KEY.public_key()], TD, is_revoked=cache.is_revoked)
    host = GrpcHost(service_names=[SERVICE_NAME], middleware=[Authentication(TD, verifier), RaiseRefusal()])
    issuer = TokenIssuer.for_mesh(KEY, TD)
    add_token_service(host, store=store, issuer=issuer, grants=HeldRolesOnly())
    await host.start()
    await host.set_serving()
    # what `sutradhar up` would hand the CLI: a cluster-admin token minted at the source
    admin = issuer.mint(ADMIN, "*", "admin", timedelta(hours=1)).token
    client = TokenClient(host.address)
    try:
        yield {"host": host, "client": client, "admin": admin, "cache": cache, "issuer": issuer}
    finally:
        await client.close()
        await host.stop(timedelta(seconds=1))
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


def stub(server: dict[str, Any]) -> Any:
    from sutradhar.v1 import tokens_pb2_grpc

    return tokens_pb2_grpc.TokenServiceStub(server["client"].channel)


async def test_calls_without_credentials_are_unauthenticated_and_health_is_open(token_server):
    with pytest.raises(Unauthenticated) as info:
        await token_server["client"].list_tokens(namespace="*")
    assert "client certificate issued by the mesh CA or a bearer token" in info.value.message
    assert "sutradhar token create" in info.value.message
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(token_server["client"].channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING


async def test_create_use_and_revoke_a_token_end_to_end(token_server, unique):
    s = stub(token_server)
    created = await rpc(s.CreateToken(
        tokens_pb2.CreateTokenRequest(namespace=unique, role="viewer", description="dashboards"),
        metadata=bearer(token_server["admin"])))
    record = created.record
    assert created.token and record.role == "viewer" and record.namespace == unique
    assert record.subject == f"spiffe://{TD}/ns/{unique}/user/token-{record.id[:12]}"
    admin_jti = TokenVerifier.for_mesh([KEY.public_key()], TD).verify(token_server["admin"]).jti
    assert record.created_by == f"{ADMIN} (token {admin_jti})"
    assert record.expire_time.ToDatetime() - record.create_time.ToDatetime() == timedelta(hours=1)
    # the new token authenticates, and its grants bound what it may hand out
    listed = await rpc(s.ListTokens(tokens_pb2.ListTokensRequest(namespace=unique), metadata=bearer(created.token)))
    assert [r.id for r in listed.records] == [record.id]
    assert created.token not in str(listed)
    with pytest.raises(PermissionDenied) as info:
        await rpc(s.CreateToken(tokens_pb2.CreateTokenRequest(namespace=unique, role="admin"),
                                metadata=bearer(created.token)))
    assert "'admin'" in info.value.message and unique in info.value.message
    assert created.token not in info.value.message
    with pytest.raises(PermissionDenied):
        await rpc(s.CreateToken(tokens_pb2.CreateTokenRequest(namespace="other", role="viewer"),
                                metadata=bearer(created.token)))
    # revoked: refused from then on, by every verifier fed by the cache
    revoked = await rpc(s.RevokeToken(tokens_pb2.RevokeTokenRequest(namespace=unique, id=record.id),
                                      metadata=bearer(token_server["admin"])))
    assert revoked.record.HasField("revoke_time")
    await eventually(lambda: token_server["cache"].is_revoked(record.id), within=5, what="revocation not seen")
    with pytest.raises(Unauthenticated) as refused:
        await rpc(s.ListTokens(tokens_pb2.ListTokensRequest(namespace=unique), metadata=bearer(created.token)))
    assert "was revoked" in refused.value.message and created.token not in refused.value.message


async def test_bootstrap_tokens_stand_for_one_agent(token_server, unique):
    s = stub(token_server)
    created = await rpc(s.CreateToken(tokens_pb2.CreateTokenRequest(namespace=unique, agent_id="echo",
                                                                    ttl={"seconds": 600}),
                                      metadata=bearer(token_server["admin"])))
    assert created.record.subject == f"spiffe://{TD}/ns/{unique}/agent/echo" and created.record.role == "agent"
    verified = TokenVerifier.for_mesh([KEY.public_key()], TD).verify(created.token)
    assert verified.subject.agent_id == "echo" and verified.grants[0].namespace == unique


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"role": "viewer", "ttl": {"seconds": 31 * 86400}}, "ttl"),
    ({"role": "viewer", "ttl": {"seconds": -5}}, "ttl"),
    ({"role": ""}, "role"),
    ({"agent_id": "echo", "role": "admin"}, "role"),
    ({"agent_id": "echo", "subject_name": "bob"}, "subject_name"),
    ({"role": "viewer", "subject_name": "Not_Valid"}, "subject_name"),
])
async def test_bad_requests_name_the_field(token_server, unique, request_fields, field):
    with pytest.raises(InvalidArgument) as info:
        await rpc(stub(token_server).CreateToken(
            tokens_pb2.CreateTokenRequest(namespace=unique, **request_fields), metadata=bearer(token_server["admin"])))
    assert info.value.message.startswith(f"{field}:") or field in info.value.message


async def test_expired_and_foreign_tokens_are_refused_over_grpc(token_server, unique):
    s = stub(token_server)
    old = TokenIssuer.for_mesh(KEY, TD, lambda: datetime.now(UTC) - timedelta(hours=2)).mint(
        ADMIN, "*", "admin", timedelta(hours=1)).token
    with pytest.raises(Unauthenticated, match="expired"):
        await rpc(s.ListTokens(tokens_pb2.ListTokensRequest(namespace="*"), metadata=bearer(old)))
    foreign = TokenIssuer.for_mesh(IssuerKey.generate(), TD).mint(ADMIN, "*", "admin", timedelta(hours=1)).token
    with pytest.raises(Unauthenticated, match="signature does not verify"):
        await rpc(s.ListTokens(tokens_pb2.ListTokensRequest(namespace="*"), metadata=bearer(foreign)))


class AllowAll:
    def can_grant(self, caller: Principal, role: str, namespace: str) -> Decision:
        return Decision(True)

    def can_grant_agent(self, caller: Principal, agent_id: str, namespace: str) -> Decision:
        return Decision(True)


async def test_the_cli_creates_lists_and_revokes(store, unique):
    """`sutradhar token` against an --insecure server (the CLI sends no credential yet)."""
    import json
    import subprocess
    import sys

    host = GrpcHost(service_names=[SERVICE_NAME], middleware=[Authentication.insecure(TD)])
    add_token_service(host, store=store, issuer=TokenIssuer.for_mesh(KEY, TD), grants=AllowAll())
    await host.start()

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "sutradhar.cli.main", "--registry",
                                                        host.address, "token", *args],
                                       capture_output=True, text=True, timeout=30)

    try:
        made = await cli("create", "--namespace", unique, "--role", "viewer", "--ttl", "2d", "--description", "x")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        verified = TokenVerifier.for_mesh([KEY.public_key()], TD).verify(token)
        assert verified.expires_at - datetime.now(UTC) > timedelta(days=1, hours=23)
        assert token not in made.stderr and verified.jti in made.stderr and "shown once" in made.stderr
        listed = await cli("list", "-n", unique, "-o", "json")
        rows = json.loads(listed.stdout)
        assert [r["id"] for r in rows] == [verified.jti] and token not in listed.stdout
        assert rows[0]["created_by"] == f"spiffe://{TD}/ns/sutradhar-system/user/anonymous"
        gone = await cli("revoke", verified.jti, "-n", unique)
        assert gone.returncode == 0 and "revoked at" in gone.stdout
        bad = await cli("create", "--namespace", unique, "--role", "viewer", "--ttl", "31d")
        assert bad.returncode == 1 and "ttl" in bad.stderr and "30 days" in bad.stderr
    finally:
        await host.stop(timedelta(seconds=1))
