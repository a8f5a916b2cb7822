"""Zero trust, accepted end to end (issue 9 "Tests and figures"): a secured mesh of the four
services on the session's etcd with TLS and client-certificate auth, certificates of a real CA,
bearer tokens signed by the registry's issuer key and sent to each service's token port; every
test asserts what is stored afterwards (etcd, the audit log, the file system).

What is already held elsewhere is not repeated here: plaintext and untrusted-CA clients of the
registry and replica renewal (test_secure_mesh.py), the expired certificate and rotation of a
bare GrpcHost (test_mtls.py), etcd refusing a client without a certificate (test_store_tls.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import json_format

from examples.echo_agent import EchoAgent
from sutradhar._agent import Result, Task
from sutradhar._clients import (
    AuditClient,
    HealthClient,
    RbacClient,
    RegistryClient,
    RouterClient,
    SchedulerClient,
    TokenClient,
)
from sutradhar._credentials import Credentials
from sutradhar._errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    SutradharError,
    Unauthenticated,
    Unavailable,
)
from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId
from sutradhar._serve import AgentServer
from sutradhar._tls import TlsSource, expected_peer_options
from sutradhar.services.common import keys
from sutradhar.services.common.tokens import IssuerKey, TokenIssuer, mesh_audience, mesh_issuer
from sutradhar.v1 import audit_pb2, rbac_pb2, registry_pb2, registry_pb2_grpc, scheduler_pb2
from tests.integration.test_registry_support import make_agent, make_instance
from tests.secure_support import SERVICES, TD, Pki, SecureEtcd, SecureMesh, secure_mesh, service
from tests.support import eventually

pytestmark = pytest.mark.timeout(60)
SCHEDULER = service("scheduler")


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    async with secure_mesh(secure_etcd, tmp_path, tokens=True) as m:
        yield m


def user(namespace: str, name: str) -> SpiffeId:
    return SpiffeId.user(TD, namespace, name)


async def refused(call: Awaitable[Any]) -> SutradharError:
    with pytest.raises(SutradharError) as err:
        await call
    return err.value


async def first_of(stream: Any) -> Any:
    """Iterate a streaming call until its first item (or its error)."""
    async for item in stream:
        return item
    return None


def http_agent(agent_id: str, namespace: str, **fields: Any) -> registry_pb2.Agent:
    """An agent whose runtime runs no code (so an operator or admin token may define it)."""
    return make_agent(agent_id, namespace, runtime="http", config={"url": "http://127.0.0.1:9/"}, **fields)


@contextlib.asynccontextmanager
async def raw_token_port_channel(mesh: SecureMesh, name: str) -> AsyncIterator[grpc.aio.Channel]:
    """TLS to service `name`'s token port, verifying the server, presenting nothing."""
    bundle = (mesh.pki.ca_dir / "bundle.pem").read_bytes()
    address = mesh.server(name).token_address
    async with grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=bundle),
                                       options=expected_peer_options(service(name))) as channel:
        yield channel


# -- 1. the two-call reproduction ----------------------------------------------------------


async def test_the_two_call_reproduction_is_refused_and_nothing_is_written_or_run(
    mesh: SecureMesh, unique: str, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned.txt"
    agent = make_agent("pwned", unique, config={"command": ["sh", "-c", f"id > {pwned}"], "workdir": str(tmp_path)})
    deployment = scheduler_pb2.Deployment(
        name="pwned", namespace=unique, spec=scheduler_pb2.DeploymentSpec(agent_id="pwned", replicas=1))
    register = registry_pb2.RegisterAgentRequest(agent=agent)

    # No credential at all, through the token port: UNAUTHENTICATED, saying what is expected.
    async with raw_token_port_channel(mesh, "registry") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry_pb2_grpc.RegistryServiceStub(channel).RegisterAgent(register, timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "client certificate" in (err.value.details() or "") and "bearer token" in (err.value.details() or "")
    async with raw_token_port_channel(mesh, "scheduler") as channel:
        stub = scheduler_pb2_grpc_stub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateDeployment(scheduler_pb2.CreateDeploymentRequest(deployment=deployment), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # Plaintext and TLS without a client certificate on the mutual-TLS ports: no handshake.
    for name in ("registry", "scheduler"):
        async with (RegistryClient if name == "registry" else SchedulerClient)(
                mesh.server(name).address, credentials=Credentials.insecure()) as plaintext:
            with pytest.raises(Unavailable):
                if isinstance(plaintext, RegistryClient):
                    await plaintext.register_agent(agent, timeout=3)
                else:
                    await plaintext.create_deployment(deployment, timeout=3)
        bundle = (mesh.pki.ca_dir / "bundle.pem").read_bytes()
        async with grpc.aio.secure_channel(mesh.server(name).address,
                                           grpc.ssl_channel_credentials(root_certificates=bundle),
                                           options=expected_peer_options(service(name))) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await registry_pb2_grpc.RegistryServiceStub(channel).RegisterAgent(register, timeout=3)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE

    # A viewer's and an operator's token: PERMISSION_DENIED naming who, what and where.
    for role in ("viewer", "operator"):
        who = user(unique, role)
        token = mesh.mint(who, unique, role)
        async with mesh.token_client(RegistryClient, token) as registry:
            err_ = await refused(registry.register_agent(agent, timeout=5))
        assert isinstance(err_, PermissionDenied), err_
        text = str(err_)
        assert str(who) in text and "agents" in text and f"namespace {unique}" in text, text
        assert token not in text
        async with mesh.token_client(SchedulerClient, token) as scheduler:
            err_ = await refused(scheduler.create_deployment(deployment, timeout=5))
        if role == "viewer":
            assert isinstance(err_, PermissionDenied), err_
            assert str(who) in str(err_) and "create deployments" in str(err_), err_
        else:
            # an operator may create deployments, but only of agents an admin defined: there is none
            assert isinstance(err_, NotFound), err_

    # Nothing was written, nothing ran.
    store = mesh.registry.store
    await asyncio.sleep(3)
    assert await store.get(keys.agent_key(unique, "pwned")) is None
    assert await store.get(keys.deployment_key(unique, "pwned")) is None
    instances, _ = await store.list(keys.kind_prefix(keys.INSTANCES, unique))
    assert instances == []
    assert not pwned.exists()


def scheduler_pb2_grpc_stub(channel: grpc.aio.Channel) -> Any:
    from sutradhar.v1 import scheduler_pb2_grpc

    return scheduler_pb2_grpc.SchedulerServiceStub(channel)


# -- 2. transport: every service refuses plaintext, a foreign CA and an expired certificate -------


async def test_every_service_refuses_plaintext_untrusted_and_expired_clients_and_the_token_port_plaintext(
    mesh: SecureMesh, unique: str, tmp_path: Path
) -> None:
    who = user(unique, "ops")
    foreign = Pki.foreign(tmp_path).issue(who, trust_bundle=mesh.pki.ca.bundle_pem())
    long_ago = datetime.now(UTC) - timedelta(days=2)
    expired = mesh.pki.issue(who, lifetime=timedelta(hours=1), now=lambda: long_ago, label="expired")
    assert TlsSource(expired).current().expired()
    token = mesh.mint(who, unique, "admin")

    async def reach(name: str, **credentials: Any) -> None:
        cls = {"registry": RegistryClient, "router": RouterClient, "scheduler": SchedulerClient,
               "health": HealthClient}[name]
        address = credentials.pop("address", mesh.server(name).address)
        async with cls(address, **credentials) as client:
            if isinstance(client, RegistryClient):
                await client.list_agents(namespace=unique, timeout=3)
            elif isinstance(client, RouterClient):
                await client.get_stats(namespace=unique, timeout=3)
            elif isinstance(client, SchedulerClient):
                await client.list_deployments(namespace=unique, timeout=3)
            else:
                await client.list_agent_health(namespace=unique, timeout=3)

    for name in SERVICES:
        await reach(name, tls=mesh.client_source(who), token=token)  # the control: it works
        await reach(name, address=mesh.server(name).token_address, credentials=mesh.token_credentials(token))
        for refusal in (
            {"credentials": Credentials.insecure()},
            {"tls": TlsSource(foreign), "expected": service(name)},
            {"tls": TlsSource(expired), "expected": service(name)},
            # the token port takes TLS only
            {"address": mesh.server(name).token_address, "credentials": Credentials.insecure()},
        ):
            with pytest.raises(Unavailable):
                await reach(name, **refusal)
        # a client that expects another identity does not talk to this one (no man in the middle)
        other = "router" if name != "router" else "registry"
        with pytest.raises(Unavailable):
            await reach(name, tls=mesh.client_source(who), expected=service(other))


# -- 3. forged and stale tokens -------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
    return f"{signing_input.decode()}.{_b64(sign(signing_input))}"


def forged_tokens(mesh: SecureMesh, subject: SpiffeId, namespace: str) -> dict[str, str]:
    assert mesh.issuer is not None
    key = mesh.issuer.key
    now = datetime.now(UTC)
    valid = mesh.mint(subject, namespace, "admin")
    claims = jwt.decode(valid, options={"verify_signature": False})
    public_pem = key.public_pem()
    return {
        "expired": TokenIssuer.for_mesh(key, TD, lambda: now - timedelta(hours=3)).mint(
            subject, namespace, "admin", timedelta(hours=1)).token,
        "not yet valid": TokenIssuer.for_mesh(key, TD, lambda: now + timedelta(hours=1)).mint(
            subject, namespace, "admin", timedelta(hours=1)).token,
        "wrong audience": TokenIssuer(key, mesh_issuer(TD), "sutradhar:elsewhere.example", trust_domain=TD).mint(
            subject, namespace, "admin", timedelta(hours=1)).token,
        "wrong issuer": TokenIssuer(key, "spiffe://elsewhere.example", mesh_audience(TD), trust_domain=TD).mint(
            subject, namespace, "admin", timedelta(hours=1)).token,
        "bad signature": TokenIssuer.for_mesh(IssuerKey.generate(), TD).mint(
            subject, namespace, "admin", timedelta(hours=1)).token,
        "alg none": unsigned_token({"alg": "none", "typ": "JWT"}, claims, lambda _: b""),
        "HS256 keyed with the public key": unsigned_token(
            {"alg": "HS256", "typ": "JWT", "kid": key.key_id}, claims,
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()),
    }


REASONS = {
    "expired": "expired at",
    "not yet valid": "is not valid before",
    "wrong audience": "wrong aud",
    "wrong issuer": "wrong iss",
    "bad signature": "signature does not verify",
    "alg none": "algorithm 'none' is not allowed",
    "HS256 keyed with the public key": "algorithm 'HS256' is not allowed",
}


async def test_forged_and_stale_tokens_are_unauthenticated_at_every_service_without_echoing_them(
    mesh: SecureMesh, unique: str
) -> None:
    subject = user(unique, "forger")
    tokens = forged_tokens(mesh, subject, unique)
    calls: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "registry": lambda c: c.register_agent(http_agent("forged", unique), timeout=5),
        "router": lambda c: c.get_stats(namespace=unique, timeout=5),
        "scheduler": lambda c: c.list_deployments(namespace=unique, timeout=5),
        "health": lambda c: c.list_agent_health(namespace=unique, timeout=5),
    }
    classes = {"registry": RegistryClient, "router": RouterClient, "scheduler": SchedulerClient,
               "health": HealthClient}
    for name, call in calls.items():
        for what, token in tokens.items():
            for client in (mesh.token_client(classes[name], token), mesh.client(classes[name], subject, token=token)):
                async with client:
                    err = await refused(call(client))
                assert isinstance(err, Unauthenticated), (name, what, err)
                text = str(err)
                assert REASONS[what] in text, (name, what, text)
                header, payload, signature = token.split(".")
                for part in (token, header, payload, signature):
                    assert not part or part not in text, (name, what, text)
    # the genuine token works through the same port, and nothing forged was written
    async with mesh.token_client(RegistryClient, mesh.mint(subject, unique, "admin")) as registry:
        assert list((await registry.list_agents(namespace=unique, timeout=5)).agents) == []


# -- 4. a token of namespace A used on namespace B ------------------------------------------------


async def state_of(registry: RegistryClient, scheduler: SchedulerClient, namespace: str) -> tuple[list[Any], ...]:
    agents = (await registry.list_agents(namespace=namespace)).agents
    deployments = (await scheduler.list_deployments(namespace=namespace)).deployments
    # A deployment's spec by its generation (bumped by every spec change: a scale, a new spec), not its
    # resource version, which the scheduler's own status writes move while the test runs.
    return [(x.id, x.resource_version) for x in agents], [(d.name, d.generation, d.spec.replicas) for d in deployments]


async def test_a_token_of_namespace_a_is_refused_on_namespace_b_and_b_is_unchanged(
    mesh: SecureMesh, unique: str
) -> None:
    a, b = unique, f"{unique}-b"
    async with mesh.registry_client() as admin, mesh.scheduler_client() as admin_scheduler:
        await admin.register_agent(http_agent("svc", b))
        await admin_scheduler.create_deployment(scheduler_pb2.Deployment(
            name="svc", namespace=b, spec=scheduler_pb2.DeploymentSpec(agent_id="svc", replicas=0)))
        before = await state_of(admin, admin_scheduler, b)
    who = user(a, "ci")
    token = mesh.mint(who, a, "admin")
    cases: list[tuple[Any, Callable[[Any], Awaitable[Any]], str]] = [
        (RegistryClient, lambda c: c.list_agents(namespace=b, timeout=5), "list agents"),
        (RegistryClient, lambda c: c.register_agent(http_agent("mine", b), timeout=5), "create agents"),
        (RegistryClient, lambda c: c.deregister_agent("svc", namespace=b, force=True, timeout=5), "delete agents"),
        (SchedulerClient, lambda c: c.scale_deployment("svc", 3, namespace=b, timeout=5), "scale deployments"),
        (SchedulerClient, lambda c: c.delete_deployment("svc", namespace=b, timeout=5), "delete deployments"),
    ]
    for cls, call, verb_resource in cases:
        async with mesh.token_client(cls, token) as client:
            err = await refused(call(client))
        assert isinstance(err, PermissionDenied), (verb_resource, err)
        text = str(err)
        assert str(who) in text and f"may not {verb_resource}" in text and f"namespace {b}" in text, text
        assert token not in text
    async with mesh.registry_client() as admin, mesh.scheduler_client() as admin_scheduler:
        after = await state_of(admin, admin_scheduler, b)
    assert after == before and after[0] == [("svc", before[0][0][1])]


# -- 5. agents own their own instances only -----------------------------------------------------


async def test_an_agent_identity_touches_instances_of_its_own_agent_only(mesh: SecureMesh, unique: str) -> None:
    async with mesh.registry_client() as admin:
        await admin.register_agent(http_agent("echo", unique))
        await admin.register_agent(http_agent("other", unique))
    async with mesh.registry_client(SpiffeId.agent(TD, unique, "other")) as other:
        theirs = await other.register_instance(make_instance("other", unique, id="other-1"),
                                               ttl=timedelta(seconds=30))
    echo_cert = mesh.registry_client(SpiffeId.agent(TD, unique, "echo"))
    echo_token = mesh.token_client(RegistryClient, mesh.mint(SpiffeId.agent(TD, unique, "echo"), unique, "agent"))
    for client in (echo_cert, echo_token):
        async with client as echo:
            mine = await echo.register_instance(make_instance("echo", unique), ttl=timedelta(seconds=30))
            await echo.keep_alive_instance(mine.id, mine.lease_id, namespace=unique)
            attempts: list[tuple[str, Awaitable[Any]]] = [
                ("an instance of another agent",
                 echo.register_instance(make_instance("other", unique, id="hijack"), ttl=timedelta(seconds=30))),
                ("over another agent's instance id",
                 echo.register_instance(make_instance("echo", unique, id="other-1"), ttl=timedelta(seconds=30),
                                        replace=True)),
                ("its keep-alive", echo.keep_alive_instance("other-1", theirs.lease_id, namespace=unique)),
                ("its state", echo.update_instance_state("other-1", registry_pb2.INSTANCE_STATE_DRAINING,
                                                         namespace=unique)),
                ("its deregistration", echo.deregister_instance("other-1", namespace=unique)),
            ]
            for what, call in attempts:
                err = await refused(call)
                assert isinstance(err, PermissionDenied | FailedPrecondition), (what, err)
            await echo.deregister_instance(mine.id, namespace=unique)
    async with mesh.registry_client() as admin:
        listed = (await admin.list_instances(namespace=unique)).instances
        assert [(i.id, i.agent_id, i.lease_id, i.state) for i in listed] == [
            ("other-1", "other", theirs.lease_id, theirs.state)]


# -- 6. escalation --------------------------------------------------------------------------------


async def bindings_of(mesh: SecureMesh, *namespaces: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    async with mesh.client(RbacClient) as rbac:
        out = []
        for ns in namespaces:
            out += [(b.namespace, b.name, b.role, tuple(b.subjects))
                    for b in (await rbac.list_role_bindings(namespace=ns)).bindings]
        return sorted(out)


async def test_escalation_through_role_bindings_and_tokens_is_refused_and_nothing_changes(
    mesh: SecureMesh, unique: str
) -> None:
    a, b = unique, f"{unique}-b"
    operator, friend, adm = user(a, "op"), user(a, "friend"), user(a, "adm")
    async with mesh.client(RbacClient) as root:
        await root.apply_role_binding(rbac_pb2.RoleBinding(namespace=a, name="ops", role="operator",
                                                           subjects=[str(operator)]))
        await root.apply_role_binding(rbac_pb2.RoleBinding(namespace=a, name="admins", role="admin",
                                                           subjects=[str(adm)]))
    before = await bindings_of(mesh, a, b, SYSTEM_NAMESPACE)
    op_token = mesh.mint(operator, a, "operator")
    adm_token = mesh.mint(adm, a, "admin")

    def binding(ns: str, role: str, *subjects: SpiffeId) -> rbac_pb2.RoleBinding:
        return rbac_pb2.RoleBinding(namespace=ns, name=f"esc-{role}", role=role, subjects=[str(s) for s in subjects])

    attempts: list[tuple[str, rbac_pb2.RoleBinding]] = [
        (op_token, binding(a, "admin", operator)),
        (op_token, binding(a, "admin", friend)),
        (op_token, binding(a, "operator", friend)),
        (op_token, binding(b, "viewer", operator)),
        (adm_token, binding(b, "viewer", adm)),
        (adm_token, binding(SYSTEM_NAMESPACE, "cluster-admin", adm)),
        (adm_token, binding(SYSTEM_NAMESPACE, "mesh-service", friend)),
    ]
    for token, wanted in attempts:
        async with mesh.token_client(RbacClient, token) as rbac:
            err = await refused(rbac.apply_role_binding(wanted, timeout=5))
        assert isinstance(err, PermissionDenied), (wanted, err)
        assert token not in str(err)
    # through a certificate too (the binding, not the token, gives the role)
    async with mesh.client(RbacClient, operator) as rbac:
        assert isinstance(await refused(rbac.apply_role_binding(binding(a, "admin", operator))), PermissionDenied)

    # tokens: nobody mints a role it does not hold (an admin of A may mint any role *in A*, as in
    # Kubernetes: a cluster-scoped role granted in A grants its rules in A only)
    for token, namespace, role in ((op_token, a, "admin"), (op_token, a, "viewer"), (adm_token, b, "viewer"),
                                   (adm_token, SYSTEM_NAMESPACE, "cluster-admin"), (adm_token, "*", "viewer")):
        async with mesh.token_client(TokenClient, token) as tokens:
            err = await refused(tokens.create_token(namespace=namespace, role=role, timeout=5))
        assert isinstance(err, PermissionDenied), (namespace, role, err)
    # the control: an admin of A mints operator in A
    async with mesh.token_client(TokenClient, adm_token) as tokens:
        minted = await tokens.create_token(namespace=a, role="operator", timeout=5)
        assert minted.record.role == "operator" and minted.record.created_by.startswith(str(adm))
        records = (await tokens.list_tokens(namespace=a, timeout=5)).records
    assert [r.id for r in records] == [minted.record.id]
    assert await bindings_of(mesh, a, b, SYSTEM_NAMESPACE) == before


# -- 7. tenant isolation --------------------------------------------------------------------------


async def test_a_tenant_sees_nothing_of_another_and_the_router_names_none_of_its_instances(
    mesh: SecureMesh, unique: str
) -> None:
    a, b = unique, f"{unique}-b"
    secret_id, secret_endpoint = "b-secret-instance-7", "127.0.0.1:50917"
    async with mesh.registry_client() as admin, mesh.scheduler_client() as admin_scheduler:
        await admin.register_agent(http_agent("secret", b, type="secret"))
        await admin_scheduler.create_deployment(scheduler_pb2.Deployment(
            name="secret", namespace=b, spec=scheduler_pb2.DeploymentSpec(agent_id="secret", replicas=0)))
    async with mesh.registry_client(SCHEDULER) as scheduler_identity:
        await scheduler_identity.register_instance(
            make_instance("secret", b, id=secret_id, endpoint=secret_endpoint), ttl=timedelta(seconds=30))
    token = mesh.mint(user(a, "tenant"), a, "admin")
    denied: list[tuple[type[Any], str, Callable[[Any], Awaitable[Any]]]] = []
    for ns in (b, "*"):
        denied += [
            (RegistryClient, f"list agents {ns}", lambda c, ns=ns: c.list_agents(namespace=ns, timeout=5)),
            (RegistryClient, f"list instances {ns}", lambda c, ns=ns: c.list_instances(namespace=ns, timeout=5)),
            (RegistryClient, f"watch {ns}", lambda c, ns=ns: first_of(c.watch(namespace=ns, include_initial=True))),
            (SchedulerClient, f"list deployments {ns}", lambda c, ns=ns: c.list_deployments(namespace=ns, timeout=5)),
            (SchedulerClient, f"watch deployments {ns}",
             lambda c, ns=ns: first_of(c.watch_deployments(namespace=ns, include_initial=True))),
            (HealthClient, f"list health {ns}", lambda c, ns=ns: c.list_agent_health(namespace=ns, timeout=5)),
            (HealthClient, f"watch health {ns}",
             lambda c, ns=ns: first_of(c.watch_health(namespace=ns, include_current=True))),
            (RouterClient, f"stats {ns}", lambda c, ns=ns: c.get_stats(namespace=ns, timeout=5)),
        ]
    denied += [
        (RegistryClient, "get agent", lambda c: c.get_agent("secret", namespace=b, timeout=5)),
        (RegistryClient, "get instance", lambda c: c.get_instance(secret_id, namespace=b, timeout=5)),
        (SchedulerClient, "get deployment", lambda c: c.get_deployment("secret", namespace=b, timeout=5)),
        (SchedulerClient, "logs", lambda c: first_of(c.get_logs("secret", namespace=b, timeout=5))),
        (HealthClient, "agent health", lambda c: c.get_agent_health("secret", namespace=b, timeout=5)),
        (HealthClient, "instance health", lambda c: c.get_instance_health(secret_id, namespace=b, timeout=5)),
        (HealthClient, "members", lambda c: c.list_members(timeout=5)),
        (RouterClient, "stats of every namespace", lambda c: c.get_stats(timeout=5)),
        (RouterClient, "execute in b", lambda c: c.execute("secret", {}, namespace=b, timeout=5)),
    ]
    for cls, what, call in denied:
        async with mesh.token_client(cls, token) as client:
            err = await refused(call(client))
        assert isinstance(err, PermissionDenied), (what, err)
        assert secret_endpoint not in str(err), (what, err)
        assert what in ("get instance", "instance health") or secret_id not in str(err), (what, err)

    # what the router says from A about an agent that exists only in B names nothing of B
    async with mesh.token_client(RouterClient, token) as router:
        for selector in ({}, {"agent_id": "secret"}):
            err = await refused(router.execute("secret", {}, namespace=a, timeout=5, **selector))
            assert isinstance(err, FailedPrecondition | Unavailable), err
            text = str(err)
            assert secret_id not in text and secret_endpoint not in text and b not in text, text
        stats = await router.get_stats(namespace=a, timeout=5)
    assert secret_id not in str(stats)
    # the tenant's own listings hold nothing of B
    async with mesh.token_client(RegistryClient, token) as registry:
        assert list((await registry.list_instances(namespace=a, timeout=5)).instances) == []
    async with mesh.registry_client() as admin:
        assert [i.id for i in (await admin.list_instances(namespace=b)).instances] == [secret_id]


# -- 8. audit ---------------------------------------------------------------------------------------

SECRET = "hunter2-never-in-audit"


async def audit_records(mesh: SecureMesh, namespace: str) -> list[audit_pb2.AuditEvent]:
    async with mesh.client(AuditClient) as audit:
        return list((await audit.list_audit_events(namespace=namespace, page_size=500, timeout=5)).events)


async def test_every_allowed_and_denied_mutation_leaves_one_audit_record_without_secrets(
    mesh: SecureMesh, unique: str
) -> None:
    adm, viewer = user(unique, "adm"), user(unique, "viewer")
    adm_token, viewer_token = mesh.mint(adm, unique, "admin"), mesh.mint(viewer, unique, "viewer")
    forged = forged_tokens(mesh, adm, unique)["bad signature"]
    agent = http_agent("echo", unique, description=f"password {SECRET}")
    since = datetime.now(UTC) - timedelta(seconds=1)

    async with mesh.token_client(RegistryClient, adm_token) as admin, \
            mesh.token_client(RegistryClient, viewer_token) as view, \
            mesh.token_client(RegistryClient, forged) as forger, \
            mesh.token_client(SchedulerClient, viewer_token) as view_scheduler:
        await admin.register_agent(agent)                                              # 1 allowed
        await admin.get_agent("echo", namespace=unique)                                 # reads: none
        await admin.list_agents(namespace=unique)
        await view.get_agent("echo", namespace=unique)
        assert isinstance(await refused(view.register_agent(http_agent("x", unique))), PermissionDenied)   # 2
        assert isinstance(await refused(view.deregister_agent("echo", namespace=unique)), PermissionDenied)  # 3
        assert isinstance(await refused(forger.register_agent(http_agent("y", unique))), Unauthenticated)   # 4
        assert isinstance(await refused(view_scheduler.create_deployment(scheduler_pb2.Deployment(
            name="d", namespace=unique, spec=scheduler_pb2.DeploymentSpec(agent_id="echo")))), PermissionDenied)  # 5
        await admin.deregister_agent("echo", namespace=unique)                          # 6 allowed
    async with raw_token_port_channel(mesh, "registry") as channel:                      # 7 unauthenticated
        with pytest.raises(grpc.aio.AioRpcError):
            await registry_pb2_grpc.RegistryServiceStub(channel).RegisterAgent(
                registry_pb2.RegisterAgentRequest(agent=http_agent("z", unique)), timeout=5)

    events = await eventually(lambda: _complete(audit_records(mesh, unique), 7), within=10, what="7 audit records")
    summary = [(e.method.rsplit("/", 1)[-1], e.status_code) for e in events]
    assert summary == [
        ("RegisterAgent", "OK"), ("RegisterAgent", "PERMISSION_DENIED"), ("DeregisterAgent", "PERMISSION_DENIED"),
        ("RegisterAgent", "UNAUTHENTICATED"), ("CreateDeployment", "PERMISSION_DENIED"),
        ("DeregisterAgent", "OK"), ("RegisterAgent", "UNAUTHENTICATED"),
    ], summary
    assert len({e.audit_id for e in events}) == 7
    assert all(e.request_received_time.ToDatetime(tzinfo=UTC) >= since for e in events)
    assert events[0].principal.startswith(f"{adm} (token ") and events[1].principal.startswith(f"{viewer} (token ")
    assert [e.decision for e in events] == [audit_pb2.AUDIT_DECISION_ALLOW] + [audit_pb2.AUDIT_DECISION_DENY] * 4 + [
        audit_pb2.AUDIT_DECISION_ALLOW, audit_pb2.AUDIT_DECISION_DENY]
    serialized = "".join(json_format.MessageToJson(e) for e in events)
    for secret in (adm_token, viewer_token, forged, *adm_token.split("."), *forged.split("."), SECRET, "password"):
        assert secret not in serialized
    assert mesh.issuer is not None
    assert mesh.issuer.key.private_pem().decode().splitlines()[1] not in serialized


async def _complete(records: Awaitable[list[audit_pb2.AuditEvent]], count: int) -> list[audit_pb2.AuditEvent]:
    found = await records
    done = [e for e in found if e.stage == audit_pb2.AUDIT_STAGE_RESPONSE_COMPLETE]
    return found if len(found) == count and len(done) == count else []


# -- 9. service certificates rotated under load ---------------------------------------------------


class Echo(EchoAgent):
    async def execute(self, task: Task) -> Result:
        return await super().execute(task)


async def test_rotating_the_routers_and_registrys_certificates_under_load_fails_no_routed_call(
    secure_etcd: SecureEtcd, tmp_path: Path, unique: str
) -> None:
    async with secure_mesh(secure_etcd, tmp_path, tokens=True) as mesh:
        identity = SpiffeId.agent(TD, unique, "echo", "r1")
        files = mesh.pki.issue(identity)
        agent = AgentServer(Echo(), host="127.0.0.1", port=0, instance_id="r1", trust_domain=TD,
                            tls_cert_file=files.certificate, tls_key_file=files.private_key,
                            tls_ca_file=files.trust_bundle)
        async with agent:
            async with mesh.registry_client() as admin:
                await admin.register_agent(make_agent("echo", unique, type="echo"))
            async with mesh.registry_client(SCHEDULER) as scheduler_identity:
                await scheduler_identity.register_instance(registry_pb2.Instance(
                    id="r1", namespace=unique, agent_id="echo", endpoint=agent.address, identity=str(identity),
                    state=registry_pb2.INSTANCE_STATE_SERVING), ttl=timedelta(seconds=60))
            token = mesh.mint(user(unique, "load"), unique, "invoker")
            router_tls = mesh.router.tls
            registry_tls = mesh.registry.tls
            assert router_tls is not None and registry_tls is not None
            generations = (router_tls.generation, registry_tls.generation)
            async with mesh.router_client() as by_cert, mesh.token_client(RouterClient, token) as by_token:
                async def routable() -> bool:
                    return (await by_cert.execute("echo", {"n": 0}, namespace=unique, timeout=5)).success

                await eventually(routable, within=10, what="the echo instance routable")
                failures: list[BaseException] = []
                done = 0
                loop = asyncio.get_running_loop()
                end = loop.time() + 13
                rotated = 0
                while loop.time() < end:
                    if rotated < 2 and loop.time() > end - 13 + 2 + 5 * rotated:
                        mesh.pki.settings("router")     # rewrites the router's files in place
                        mesh.pki.settings("registry")
                        rotated += 1
                    for client in (by_cert, by_token):
                        try:
                            result = await client.execute("echo", {"n": done}, namespace=unique, timeout=5)
                            assert result.success
                            done += 1
                        except Exception as err:
                            failures.append(err)
                    await asyncio.sleep(0.01)
            assert failures == []
            assert done > 100
            # the router served its renewed certificate to new connections, and so does the registry
            async with mesh.registry_client() as fresh:
                await fresh.list_agents(namespace=unique)
            assert router_tls.generation > generations[0] and registry_tls.generation > generations[1]
            assert mesh.scheduler is not None and mesh.scheduler.tls is not None
            assert mesh.scheduler.tls.generation == 1  # its files were not touched
