"""Direct calls in a secured mesh (issue 12, "authenticated like every client"): a
`DirectClient` with its own certificate calls a replica the scheduler started, over mutual
TLS, and the replica asks the registry whether that certificate's identity may execute it
(RbacService/ReviewAccess, the router's rule), caching the answer for 10 s.

Real parts only: etcd with TLS, the four services in-process with certificates of a real
CA (`tests.secure_support`), process replicas with their own identities.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from examples.echo_agent import EchoAgent
from sutradhar._access_review import REVIEW_TTL
from sutradhar._agent import Result
from sutradhar._clients import AuditClient, RbacClient
from sutradhar._direct import DirectClient
from sutradhar._errors import PermissionDenied
from sutradhar._identity import SpiffeId
from sutradhar._serve import AgentServer
from sutradhar.v1 import audit_pb2, rbac_pb2
from tests.integration.test_secure_mesh import define_agent, deploy
from tests.secure_support import TD, SecureEtcd, SecureMesh, secure_mesh, service
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    async with secure_mesh(secure_etcd, tmp_path, tokens=True) as m:
        yield m


async def bind(mesh: SecureMesh, namespace: str, name: str, role: str, subject: SpiffeId) -> None:
    async with mesh.client(RbacClient) as rbac:
        await rbac.apply_role_binding(rbac_pb2.RoleBinding(namespace=namespace, name=name, role=role,
                                                           subjects=[str(subject)]), timeout=10)


def direct(mesh: SecureMesh, who: SpiffeId, namespace: str) -> DirectClient:
    return DirectClient(mesh.router.address, registry=mesh.registry.address, namespace=namespace,
                        tls=mesh.client_source(who), expected=service("router"))


async def test_a_user_with_execute_calls_directly_and_one_without_is_refused_by_the_agent(
    mesh: SecureMesh, unique: str
) -> None:
    [instance] = await deploy(mesh, unique)
    app, viewer = SpiffeId.user(TD, unique, "app"), SpiffeId.user(TD, unique, "looker")
    await bind(mesh, unique, "app-view", "viewer", app)  # to watch the namespace
    await bind(mesh, unique, "app-run", "invoker", app)
    await bind(mesh, unique, "looker", "viewer", viewer)  # watches, may not execute

    async with direct(mesh, app, unique) as caller:
        assert await caller.wait_synced(timeout=10), caller.stats().watch_error
        for i in range(5):
            result = await caller.execute("echo", {"n": i}, namespace=unique, timeout=10)
            assert result.success and result.data["echo"] == {"n": i}
            assert result.metadata.instance_id == instance.id
        events = [e async for e in caller.execute_stream("echo", {"text": "abcdefgh"}, namespace=unique, timeout=10)]
        assert [e.data for e in events if type(e).__name__ == "Partial"] == ["abcd", "efgh"]
        assert isinstance(events[-1], Result) and events[-1].success
        stats = caller.stats()
        assert stats.direct == 6 and stats.fallbacks == {}

    async with direct(mesh, viewer, unique) as refused:
        assert await refused.wait_synced(timeout=10), refused.stats().watch_error
        with pytest.raises(PermissionDenied) as denied:
            await refused.execute("echo", {"n": 0}, namespace=unique, timeout=10)
        with pytest.raises(PermissionDenied):  # streams are reviewed too (the answer is cached by now)
            [e async for e in refused.execute_stream("echo", {"text": "ab"}, namespace=unique, timeout=10)]
        assert refused.stats().direct == 2 and refused.stats().fallbacks == {}  # the agent refused them
    message = str(denied.value)
    assert str(viewer) in message and "execute agents 'echo'" in message and f"namespace {unique}" in message
    assert "access review" in message

    # the denial is audited as the router's would be: who, what, where, and the agent that asked
    async with mesh.client(AuditClient) as audit:
        async def recorded() -> list[audit_pb2.AuditEvent]:
            page = await audit.list_audit_events(namespace=unique, principal=str(viewer), timeout=10)
            return [e for e in page.events if e.principal == str(viewer) and e.method.endswith("AgentService/Execute")]

        [event] = await eventually(recorded, within=10, what="the audit record of the denied direct call")
    assert event.decision == audit_pb2.AUDIT_DECISION_DENY and (event.verb, event.resource, event.name) == (
        "execute", "agents", "echo")
    assert event.peer == instance.identity


async def test_revoking_the_binding_stops_direct_calls_within_the_review_ttl(mesh: SecureMesh, unique: str) -> None:
    await deploy(mesh, unique)
    app = SpiffeId.user(TD, unique, "app")
    await bind(mesh, unique, "app-view", "viewer", app)
    await bind(mesh, unique, "app-run", "invoker", app)
    async with direct(mesh, app, unique) as caller:
        assert await caller.wait_synced(timeout=10), caller.stats().watch_error
        assert (await caller.execute("echo", {}, namespace=unique, timeout=10)).success
        async with mesh.client(RbacClient) as rbac:
            await rbac.delete_role_binding("app-run", namespace=unique, timeout=10)
        revoked = time.monotonic()

        async def refused() -> bool:
            try:
                await caller.execute("echo", {}, namespace=unique, timeout=10)
            except PermissionDenied as err:
                assert str(app) in str(err)
                return True
            return False

        # the agent's answer is kept 10 s; the registry's binding cache follows etcd at once
        await eventually(refused, within=REVIEW_TTL.total_seconds() + 5, period=0.25, what="the revoked binding")
        assert time.monotonic() - revoked <= REVIEW_TTL.total_seconds() + 5
        assert caller.stats().fallbacks == {}


async def test_a_token_only_client_falls_back_to_the_router(mesh: SecureMesh, unique: str) -> None:
    [instance] = await deploy(mesh, unique)
    app = SpiffeId.user(TD, unique, "ci")
    token = mesh.mint(app, unique, "invoker")
    assert mesh.router.token_address is not None and mesh.registry.token_address is not None
    async with DirectClient(mesh.router.token_address, registry=mesh.registry.token_address, namespace=unique,
                            credentials=mesh.token_credentials(token)) as caller:
        assert not await caller.wait_synced(timeout=0.1)
        result = await caller.execute("echo", {"text": "hi"}, namespace=unique, timeout=10)
        assert result.success and result.metadata.instance_id == instance.id
        assert caller.stats().fallbacks == {"token-only": 1} and caller.stats().direct == 0


async def test_calls_to_a_namespace_the_client_does_not_watch_go_to_the_router(mesh: SecureMesh, unique: str) -> None:
    [instance] = await deploy(mesh, f"{unique}-b")
    app = SpiffeId.user(TD, unique, "app")
    await bind(mesh, unique, "app-view", "viewer", app)
    await bind(mesh, f"{unique}-b", "app-run", "invoker", app)
    async with direct(mesh, app, unique) as caller:
        assert await caller.wait_synced(timeout=10), caller.stats().watch_error
        result = await caller.execute("echo", {}, namespace=f"{unique}-b", timeout=10)
        assert result.success and result.metadata.instance_id == instance.id
        assert caller.stats().fallbacks == {"other-namespace": 1}


async def test_a_self_registering_agent_reviews_each_caller_once_per_ttl(mesh: SecureMesh, unique: str) -> None:
    await define_agent(mesh, unique)
    identity = SpiffeId.agent(TD, unique, "echo", "self-1")
    files = mesh.pki.issue(identity)
    server = AgentServer(EchoAgent(), host="127.0.0.1", port=0, registry=mesh.registry.address, namespace=unique,
                         register_agent=False, trust_domain=TD, tls_cert_file=files.certificate,
                         tls_key_file=files.private_key, tls_ca_file=files.trust_bundle)
    app = SpiffeId.user(TD, unique, "app")
    await bind(mesh, unique, "app-view", "viewer", app)
    await bind(mesh, unique, "app-run", "invoker", app)
    async with server, direct(mesh, app, unique) as caller:
        reviews = server.access_reviews
        assert reviews is not None and reviews.address == mesh.registry.address  # the registry it registers with
        now = [1000.0]
        reviews.clock = lambda: now[0]
        assert await caller.wait_synced(timeout=10), caller.stats().watch_error

        async def served() -> bool:
            return any(b.instance_id == "self-1" for b in caller.view.backends.values())

        await eventually(served, within=10, what="the self-registered instance in the client's view")
        results = await asyncio.gather(*(caller.execute("echo", {"n": i}, namespace=unique, timeout=10)
                                         for i in range(20)))
        assert all(r.success and r.metadata.instance_id == "self-1" for r in results)
        assert reviews.reviews == 1  # twenty concurrent first calls, one review
        now[0] += REVIEW_TTL.total_seconds() - 0.5
        assert (await caller.execute("echo", {}, namespace=unique, timeout=10)).success
        assert reviews.reviews == 1
        now[0] += 1.0  # past the TTL: asked again
        assert (await caller.execute("echo", {}, namespace=unique, timeout=10)).success
        assert reviews.reviews == 2
        assert caller.stats().direct == 22 and caller.stats().fallbacks == {}
