"""Rate limits in a secured mesh: per-caller buckets keyed by the caller's SPIFFE ID (here the
subjects of two bearer tokens), and RateLimits written by a cluster-admin only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from sutradhar._clients import RateLimitClient, RegistryClient, RouterClient
from sutradhar._errors import PermissionDenied, ResourceExhausted, SutradharError
from sutradhar._identity import SpiffeId
from sutradhar.v1 import ratelimit_pb2, registry_pb2
from tests.secure_support import ADMIN, TD, SecureEtcd, SecureMesh, secure_mesh
from tests.support import eventually


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    async with secure_mesh(secure_etcd, tmp_path, scheduler=False, tokens=True) as m:
        yield m


async def outcome(client: RouterClient, ns: str) -> type[BaseException] | None:
    """What a call comes to: None when it ran, else the error's class. The instance here is not
    reachable, so an admitted call fails after admission with another error than RESOURCE_EXHAUSTED."""
    try:
        await client.execute("echo", {"q": 1}, namespace=ns, timeout=timedelta(seconds=5))
    except SutradharError as err:
        if isinstance(err, ResourceExhausted):
            raise
        return type(err)
    return None


async def test_per_caller_buckets_are_keyed_by_spiffe_id_and_only_cluster_admins_write_limits(
        mesh: SecureMesh, unique: str) -> None:
    async with mesh.client(RegistryClient, ADMIN) as registry:
        await registry.register_agent(registry_pb2.Agent(id="echo", namespace=unique, type="echo", version="1.0.0",
                                                         runtime="process"))
        await registry.register_instance(registry_pb2.Instance(
            id="echo-0", namespace=unique, agent_id="echo", endpoint="127.0.0.1:9", runtime="process",
            state=registry_pb2.INSTANCE_STATE_SERVING), ttl=timedelta(seconds=120))
    limit = ratelimit_pb2.RateLimit(namespace=unique, name="each",
                                    per_caller=ratelimit_pb2.TokenBucket(max_tokens=1, fill_interval={"seconds": 60}))
    namespace_admin = mesh.mint(SpiffeId.user(TD, unique, "boss"), unique, "admin")
    async with mesh.token_client(RateLimitClient, namespace_admin) as limits:
        with pytest.raises(PermissionDenied):
            await limits.apply_rate_limit(limit)         # a namespace admin may not set its own limits
        assert not (await limits.list_rate_limits(namespace=unique)).rate_limits   # ... but reads them
    async with mesh.client(RateLimitClient, ADMIN) as limits:
        await limits.apply_rate_limit(limit)
    router = mesh.router
    await eventually(lambda: router.limiter.knows(unique, "each") and any(
        k[0] == unique and router.view.routable(b) for k, b in router.view.backends.items()), within=10, period=0.05)
    alice, bob = SpiffeId.user(TD, unique, "alice"), SpiffeId.user(TD, unique, "bob")
    async with mesh.token_client(RouterClient, mesh.mint(alice, unique, "invoker")) as as_alice, \
            mesh.token_client(RouterClient, mesh.mint(bob, unique, "invoker")) as as_bob:
        await outcome(as_alice, unique)
        with pytest.raises(ResourceExhausted) as err:
            await outcome(as_alice, unique)
        assert f"caller {alice}" in err.value.message and f"RateLimit {unique}/each" in err.value.message
        await outcome(as_bob, unique)                    # bob's bucket is his own
    callers = {b.caller: b for b in router.stats(namespace=unique).buckets
               if b.level == ratelimit_pb2.RATE_LIMIT_LEVEL_CALLER}
    assert (callers[str(alice)].allowed, callers[str(alice)].refused) == (1, 1)
    assert (callers[str(bob)].allowed, callers[str(bob)].refused) == (1, 0)
