"""Authorization over real gRPC: a GrpcHost on loopback serving the registry and
RbacService behind the AUTHORIZATION stage, with RoleBindings in the real etcd.

The principal comes from `tests.fake_authentication` (a TEST-ONLY stand-in for the
authentication stage: it trusts a metadata header)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest

from sutradhar._hosting import GrpcHost
from sutradhar._identity import SpiffeId
from sutradhar.services.common import rbac_methods  # noqa: F401 - fills access.ACCESS
from sutradhar.services.common.audit import AuditLog
from sutradhar.services.common.audit_records import AuditFilter
from sutradhar.services.common.authorization import Authorization
from sutradhar.services.common.rbac import Authorizer, bootstrap_admin
from sutradhar.services.common.rolebindings import RoleBindingCache, RoleBindingStore
from sutradhar.services.common.store import Store
from sutradhar.services.registry.agents import Agents
from sutradhar.services.registry.instances import Instances
from sutradhar.services.registry.load_reports import LoadReports
from sutradhar.services.registry.rbac_servicer import RBAC_SERVICE_NAME, add_rbac_service
from sutradhar.services.registry.servicer import SERVICE_NAME, RegistryServicer
from sutradhar.services.registry.watch import Watcher
from sutradhar.v1 import audit_pb2, rbac_pb2, rbac_pb2_grpc, registry_pb2, registry_pb2_grpc
from tests.fake_authentication import HeaderAuthentication, metadata
from tests.integration.test_registry_support import make_agent, make_instance
from tests.support import eventually

TD = "sutradhar.local"
ADMIN = metadata(bootstrap_admin(TD))


@dataclass
class Mesh:
    channel: grpc.aio.Channel
    registry: registry_pb2_grpc.RegistryServiceStub
    rbac: rbac_pb2_grpc.RbacServiceStub
    bindings: RoleBindingStore
    cache: RoleBindingCache
    audit: AuditLog


@pytest.fixture
async def mesh(store: Store) -> AsyncIterator[Mesh]:
    cache = RoleBindingCache(store)
    task = asyncio.create_task(cache.run())
    await cache.wait_ready()
    authorizer = Authorizer(cache, trust_domain=TD)
    host = GrpcHost(service_names=[SERVICE_NAME, RBAC_SERVICE_NAME], port=0,
                    middleware=[Authorization(authorizer), HeaderAuthentication()])
    host.add_servicer(registry_pb2_grpc.add_RegistryServiceServicer_to_server,
                      RegistryServicer(Agents(store), Instances(store), Watcher(store), LoadReports(store)))
    bindings = RoleBindingStore(store)
    audit = AuditLog(store)
    add_rbac_service(host, bindings, authorizer, audit)
    await host.start()
    await host.set_serving()
    try:
        async with grpc.aio.insecure_channel(host.address) as channel:
            yield Mesh(channel, registry_pb2_grpc.RegistryServiceStub(channel),
                       rbac_pb2_grpc.RbacServiceStub(channel), bindings, cache, audit)
    finally:
        await host.stop(timedelta(0))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value


async def bind(mesh: Mesh, namespace: str, name: str, role: str, *subjects: SpiffeId) -> None:
    """Bind as the bootstrap admin, then wait until the cache has it."""
    await mesh.rbac.ApplyRoleBinding(rbac_pb2.ApplyRoleBindingRequest(binding=rbac_pb2.RoleBinding(
        namespace=namespace, name=name, role=role, subjects=[str(s) for s in subjects])), metadata=ADMIN, timeout=10)
    await eventually(lambda: any(b.name == name for s in subjects for b in mesh.cache.index().for_subject(str(s))),
                     within=10, what=f"binding {name} in the cache")


async def test_no_principal_is_unauthenticated_and_health_needs_none(mesh: Mesh, unique: str) -> None:
    err = await refused(mesh.registry.GetAgent(registry_pb2.GetAgentRequest(namespace=unique, id="x"), timeout=10))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = await health_pb2_grpc.HealthStub(mesh.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_reproduction_process_agent_is_refused_to_viewer_and_operator(mesh: Mesh, unique: str) -> None:
    viewer = SpiffeId.user(TD, unique, "viewer")
    operator = SpiffeId.user(TD, unique, "operator")
    await bind(mesh, unique, "v", "viewer", viewer)
    await bind(mesh, unique, "o", "operator", operator)
    pwned = make_agent("pwned", unique, config={"command": ["sh", "-c", "id > pwned.txt"]})
    for who in (viewer, operator):
        err = await refused(mesh.registry.RegisterAgent(registry_pb2.RegisterAgentRequest(agent=pwned),
                                                        metadata=metadata(who), timeout=10))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err.details()
        details = err.details() or ""
        assert str(who) in details and f"namespace {unique}" in details and "agents" in details, details
    err = await refused(mesh.registry.GetAgent(registry_pb2.GetAgentRequest(namespace=unique, id="pwned"),
                                               metadata=ADMIN, timeout=10))
    assert err.code() == grpc.StatusCode.NOT_FOUND  # nothing was written


async def test_define_code_is_admin_only_and_http_agents_are_not_code(mesh: Mesh, unique: str) -> None:
    adm = SpiffeId.user(TD, unique, "adm")
    await bind(mesh, unique, "a", "admin", adm)
    agent = make_agent("echo", unique)
    stored = await mesh.registry.RegisterAgent(registry_pb2.RegisterAgentRequest(agent=agent),
                                               metadata=metadata(adm), timeout=10)
    assert stored.agent.id == "echo"
    # a namespace admin is no admin elsewhere
    other = make_agent("echo", f"{unique}-b")
    err = await refused(mesh.registry.RegisterAgent(registry_pb2.RegisterAgentRequest(agent=other),
                                                    metadata=metadata(adm), timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"ask an admin of {unique}-b" in (err.details() or "")


async def test_a_token_of_namespace_a_used_on_namespace_b_is_refused(mesh: Mesh, unique: str) -> None:
    ci = SpiffeId.user(TD, unique, "ci")
    md = metadata(ci, grants=f"{unique}=admin,{unique}-b=admin", token="jti-7")
    listed = await mesh.registry.ListAgents(registry_pb2.ListAgentsRequest(namespace=unique), metadata=md, timeout=10)
    assert list(listed.agents) == []
    err = await refused(mesh.registry.ListAgents(registry_pb2.ListAgentsRequest(namespace=f"{unique}-b"),
                                                 metadata=md, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "(token jti-7)" in (err.details() or "")
    err = await refused(mesh.registry.ListAgents(registry_pb2.ListAgentsRequest(namespace="*"),
                                                 metadata=md, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"--namespace {unique}" in (err.details() or "")


async def test_an_agent_registers_its_own_instances_only(mesh: Mesh, unique: str) -> None:
    for agent_id in ("echo", "other"):
        await mesh.registry.RegisterAgent(registry_pb2.RegisterAgentRequest(agent=make_agent(agent_id, unique)),
                                          metadata=ADMIN, timeout=10)
    echo = metadata(SpiffeId.agent(TD, unique, "echo"))
    mine = await mesh.registry.RegisterInstance(registry_pb2.RegisterInstanceRequest(
        instance=make_instance("echo", unique, id="echo-1")), metadata=echo, timeout=10)
    assert mine.instance.agent_id == "echo"
    await mesh.registry.KeepAliveInstance(registry_pb2.KeepAliveInstanceRequest(
        namespace=unique, id="echo-1", lease_id=mine.instance.lease_id), metadata=echo, timeout=10)
    err = await refused(mesh.registry.RegisterInstance(registry_pb2.RegisterInstanceRequest(
        instance=make_instance("other", unique, id="hijack")), metadata=echo, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "create instances 'other'" in (err.details() or "")
    err = await refused(mesh.registry.ListInstances(registry_pb2.ListInstancesRequest(namespace=unique),
                                                    metadata=echo, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await mesh.registry.ListInstances(registry_pb2.ListInstancesRequest(namespace=unique),
                                               metadata=ADMIN, timeout=10)
    assert [i.id for i in listed.instances] == ["echo-1"]  # nothing else was written


async def test_watch_streams_are_authorized_before_the_first_event(mesh: Mesh, unique: str) -> None:
    nobody = metadata(SpiffeId.user(TD, unique, "nobody"))
    call = mesh.registry.Watch(registry_pb2.WatchRequest(namespace="*", include_initial=True), metadata=nobody,
                               timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pytest.fail("a refused watch sent an event")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_escalation_through_a_role_binding_is_refused(mesh: Mesh, unique: str) -> None:
    op = SpiffeId.user(TD, unique, "op")
    adm = SpiffeId.user(TD, unique, "adm")
    await bind(mesh, unique, "op-admin-of-bindings", "admin", adm)
    await bind(mesh, unique, "op", "operator", op)
    # an operator may not write bindings at all
    err = await refused(mesh.rbac.ApplyRoleBinding(rbac_pb2.ApplyRoleBindingRequest(binding=rbac_pb2.RoleBinding(
        namespace=unique, name="mine", role="admin", subjects=[str(op)])), metadata=metadata(op), timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    # a namespace admin may bind admin there, but not cluster-admin cluster-wide
    ok = await mesh.rbac.ApplyRoleBinding(rbac_pb2.ApplyRoleBindingRequest(binding=rbac_pb2.RoleBinding(
        namespace=unique, name="second", role="admin", subjects=[str(op)])), metadata=metadata(adm), timeout=10)
    assert ok.created and ok.binding.created_by == str(adm)
    err = await refused(mesh.rbac.ApplyRoleBinding(rbac_pb2.ApplyRoleBindingRequest(binding=rbac_pb2.RoleBinding(
        namespace="sutradhar-system", name=f"{unique}-root", role="cluster-admin", subjects=[str(adm)])),
        metadata=metadata(adm), timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await mesh.rbac.ListRoleBindings(rbac_pb2.ListRoleBindingsRequest(namespace="sutradhar-system"),
                                              metadata=ADMIN, timeout=10)
    assert f"{unique}-root" not in {b.name for b in listed.bindings}


async def test_escalation_check_names_the_role_and_what_is_lacking(mesh: Mesh, unique: str) -> None:
    ns_admin = SpiffeId.user(TD, "sutradhar-system", f"{unique}-sys")
    await bind(mesh, "sutradhar-system", f"{unique}-sys", "admin", ns_admin)
    err = await refused(mesh.rbac.ApplyRoleBinding(rbac_pb2.ApplyRoleBindingRequest(binding=rbac_pb2.RoleBinding(
        namespace="sutradhar-system", name=f"{unique}-esc", role="mesh-service", subjects=[str(ns_admin)])),
        metadata=metadata(ns_admin), timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    details = err.details() or ""
    assert "may not grant role mesh-service cluster-wide" in details and "lacks" in details, details


async def test_bad_bindings_are_invalid_argument_and_roles_are_listed(mesh: Mesh, unique: str) -> None:
    err = await refused(mesh.rbac.ApplyRoleBinding(rbac_pb2.ApplyRoleBindingRequest(binding=rbac_pb2.RoleBinding(
        namespace=unique, name="x", role="root", subjects=["spiffe://sutradhar.local/ns/a/user/b"])),
        metadata=ADMIN, timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith("binding.role:") and "viewer" in (err.details() or "")
    roles = await mesh.rbac.ListRoles(rbac_pb2.ListRolesRequest(namespace=unique), metadata=ADMIN, timeout=10)
    assert [r.name for r in roles.roles][:4] == ["viewer", "invoker", "operator", "admin"]
    assert next(r for r in roles.roles if r.name == "agent").implicit_only
    err = await refused(mesh.rbac.GetRoleBinding(rbac_pb2.GetRoleBindingRequest(namespace=unique, name="nope"),
                                                 metadata=ADMIN, timeout=10))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def review(
    principal: SpiffeId, namespace: str, name: str = "echo", verb: str = "execute"
) -> rbac_pb2.ReviewAccessRequest:
    return rbac_pb2.ReviewAccessRequest(principal=str(principal), verb=verb, resource="agents", namespace=namespace,
                                        name=name)


async def test_an_agent_reviews_its_callers_with_the_routers_rule_and_denials_are_audited(
    mesh: Mesh, unique: str
) -> None:
    echo = SpiffeId.agent(TD, unique, "echo", "echo-1")
    invoker, stranger = SpiffeId.user(TD, unique, "app"), SpiffeId.user(TD, unique, "stranger")
    await bind(mesh, unique, "app", "invoker", invoker)
    allowed = await mesh.rbac.ReviewAccess(review(invoker, unique), metadata=metadata(echo), timeout=10)
    assert allowed.allowed and "role invoker" in allowed.reason
    denied = await mesh.rbac.ReviewAccess(review(stranger, unique),
                                          metadata=(*metadata(echo), ("x-request-id", "req-42")), timeout=10)
    assert not denied.allowed
    assert str(stranger) in denied.reason and "execute agents 'echo'" in denied.reason
    assert f"namespace {unique}" in denied.reason
    events = (await mesh.audit.list(AuditFilter(namespace=unique))).events
    [event] = [e for e in events if e.method.endswith("AgentService/Execute")]
    assert (event.principal, event.peer, event.verb, event.resource, event.name) == (
        str(stranger), str(echo), "execute", "agents", "echo")
    assert event.request_id == "req-42" and event.namespace == unique and str(stranger) in event.reason
    assert event.decision == audit_pb2.AUDIT_DECISION_DENY and event.status_code == "PERMISSION_DENIED"
    assert not [e for e in events if e.principal == str(invoker)]  # an allowed review leaves no record, as Execute


async def test_only_an_agent_reviews_and_only_calls_to_itself(mesh: Mesh, unique: str) -> None:
    echo = SpiffeId.agent(TD, unique, "echo", "echo-1")
    app = SpiffeId.user(TD, unique, "app")
    adm = SpiffeId.user(TD, unique, "adm")
    await bind(mesh, unique, "adm", "admin", adm)
    for who, request in (
        (echo, review(app, unique, name="other")),       # another agent of its namespace
        (echo, review(app, f"{unique}-b")),              # its agent id in another namespace
        (adm, review(app, unique)),                      # an admin (holds "*") is no agent
        (bootstrap_admin(TD), review(app, unique)),      # nor is the cluster admin
    ):
        err = await refused(mesh.rbac.ReviewAccess(request, metadata=metadata(who), timeout=10))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (who, request, err.details())
        assert str(who) in (err.details() or "")
    err = await refused(mesh.rbac.ReviewAccess(review(app, unique, verb="delete"), metadata=metadata(echo), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "only verb 'execute'" in (err.details() or "")
    bad = rbac_pb2.ReviewAccessRequest(principal="app", verb="execute", resource="agents", namespace=unique,
                                       name="echo")
    err = await refused(mesh.rbac.ReviewAccess(bad, metadata=metadata(echo), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "principal" in (err.details() or "")
