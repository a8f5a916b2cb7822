"""The control plane's per-principal mutation limit in a secured mesh (real registry and router
over mutual TLS on the session's TLS etcd), and shared RateLimits split among live routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from sutradhar._clients import RateLimitClient, RbacClient
from sutradhar._errors import PermissionDenied, ResourceExhausted
from sutradhar._identity import SpiffeId
from sutradhar._ratelimit_spec import shared_share
from sutradhar._tls import secure_channel
from sutradhar._token_bucket import PUSHBACK_TRAILER
from sutradhar._values import to_struct
from sutradhar.services.router.config import RouterConfig
from sutradhar.services.router.server import RouterServer
from sutradhar.v1 import ratelimit_pb2, rbac_pb2, registry_pb2, registry_pb2_grpc
from tests.secure_support import ADMIN, TD, SecureEtcd, SecureMesh, secure_mesh, service
from tests.support import eventually

BURST = 3


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    # A burst of 3 refilled once every 100 s: the 4th mutation in a row is refused.
    async with secure_mesh(secure_etcd, tmp_path, scheduler=False,
                           registry_options={"mutation_rate": 0.01, "mutation_burst": BURST}) as m:
        yield m


def agent(ns: str, agent_id: str) -> registry_pb2.RegisterAgentRequest:
    definition = registry_pb2.Agent(id=agent_id, namespace=ns, type="echo", version="1.0.0", runtime="http",
                                    config=to_struct({"url": "http://127.0.0.1:9/"}))
    return registry_pb2.RegisterAgentRequest(agent=definition)


async def test_the_mutation_past_the_burst_is_refused_with_the_trailer_and_reads_still_pass(
        mesh: SecureMesh, unique: str) -> None:
    async with secure_channel(mesh.registry.address, mesh.client_source(ADMIN), expected=service("registry")) as ch:
        stub = registry_pb2_grpc.RegistryServiceStub(ch)
        for i in range(BURST):
            await stub.RegisterAgent(agent(unique, f"a{i}"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RegisterAgent(agent(unique, "one-too-many"), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = err.value.details() or ""
        assert f"too many changes: {ADMIN}" in details and "burst 3" in details and "--mutation-rate" in details
        assert int(dict(err.value.trailing_metadata() or ())[PUSHBACK_TRAILER]) > 0
        listed = await stub.ListAgents(registry_pb2.ListAgentsRequest(namespace=unique), timeout=10)
        assert sorted(a.id for a in listed.agents) == ["a0", "a1", "a2"]   # the refused one was not written
    # One bucket per principal for every service the registry hosts: RbacService writes are refused too.
    other = SpiffeId.user(TD, "sutradhar-system", "other-admin")
    async with mesh.client(RbacClient, ADMIN) as rbac:
        with pytest.raises(ResourceExhausted, match="too many changes"):
            await rbac.apply_role_binding(rbac_pb2.RoleBinding(namespace="sutradhar-system", name=unique,
                                                               role="cluster-admin", subjects=[str(other)]))
    # A caller who may not mutate is denied first (authorization runs before the limit): no bucket drained.
    async with mesh.client(RbacClient, other) as rbac:
        with pytest.raises(PermissionDenied):
            await rbac.apply_role_binding(rbac_pb2.RoleBinding(namespace="sutradhar-system", name=unique,
                                                               role="cluster-admin", subjects=[str(other)]))
    assert other not in mesh.registry.security.mutation_limits.buckets.buckets  # type: ignore[union-attr]


async def test_shared_rate_limits_split_among_the_live_routers(mesh: SecureMesh, unique: str) -> None:
    limit = ratelimit_pb2.RateLimit(namespace=unique, name="global", shared=True,
                                    namespace_limit=ratelimit_pb2.TokenBucket(max_tokens=40, tokens_per_fill=20,
                                                                              fill_interval={"seconds": 1}))
    async with mesh.client(RateLimitClient, ADMIN) as limits:
        await limits.apply_rate_limit(limit)
    first = mesh.router
    second = RouterServer(RouterConfig(port=0, registry=mesh.registry.address, etcd=first.config.etcd,
                                       **mesh.pki.settings("router")))
    await second.start()
    try:
        assert await second.wait_synced(timedelta(seconds=10))
        for router in (first, second):
            await eventually(lambda r=router: r.limiter.routers >= 2 and r.limiter.knows(unique, "global"),
                             within=10, period=0.05, what="routers never saw each other")
        for router in (first, second):
            [stats] = [b for b in router.stats(namespace=unique).buckets if b.name == "global"]
            share = shared_share((40, 20, 1.0), router.limiter.routers)
            assert (stats.bucket.max_tokens, stats.bucket.tokens_per_fill) == share[:2]
            assert stats.bucket.fill_interval.ToTimedelta() == timedelta(seconds=share[2])
            assert stats.shared and stats.routers == router.limiter.routers
    finally:
        await second.stop(timedelta(seconds=1))
    # the second router left (its lease revoked): the first takes a larger share again
    await eventually(lambda: first.limiter.routers == len(first.membership.members) if first.membership else False,
                     within=10, period=0.05)
