"""TLS bootstrapping against a real secured mesh: a party holding only a token trades it at
the registry's bootstrap port for a certificate of its own identity, and nothing more.

- an agent process with only a bootstrap token for agent `echo` gets its certificate,
  registers and is routed to through the router;
- the token gets a certificate for its own identity only, and that certificate registers
  instances of its own agent only;
- expired, revoked, HS256, alg-none and missing tokens are UNAUTHENTICATED there;
- only IssueCertificate is served on the bootstrap port;
- certificate lifetimes are bounded (a user's by its token), renewal keeps the identity;
- `sutradhar login` makes a context whose calls may do what the token's role allows;
- each issuance leaves one audit record, without the token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sutradhar._bootstrap import bootstrap_certificate, issue_certificate, renew_certificate
from sutradhar._clients import RegistryClient
from sutradhar._credentials import CredentialFile
from sutradhar._errors import CERTIFICATE_REFUSED, PermissionDenied, Unauthenticated, Unavailable
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsSource, expected_peer_options
from sutradhar.services.common.tokens import IssuerKey, TokenIssuer
from sutradhar.testing import spawn_agent
from sutradhar.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)
from tests.secure_support import TD, SecureEtcd, SecureMesh, secure_mesh, service
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
SERVING = registry_pb2.INSTANCE_STATE_SERVING
WORKLOAD_LIFETIME = timedelta(hours=2)
ISSUE = "/sutradhar.v1.IdentityService/IssueCertificate"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    options = {"token_issuer_key_file": tmp_path / "issuer.pem", "ca_dir": secure_etcd.pki.ca_dir,
               "bootstrap_port": 0, "workload_cert_lifetime": WORKLOAD_LIFETIME}
    async with secure_mesh(secure_etcd, tmp_path, scheduler=False, registry_options=options) as m:
        yield m


def bundle(mesh: SecureMesh) -> bytes:
    return mesh.pki.ca.bundle_pem()


def bootstrap_address(mesh: SecureMesh) -> str:
    address = mesh.registry.bootstrap_address
    assert address is not None
    return address


async def mint(mesh: SecureMesh, *, ttl: timedelta | None = None, **request: str) -> tokens_pb2.CreateTokenResponse:
    """A token minted by the admin (TokenClient takes no certificate yet: the stub over the admin's channel)."""
    message = tokens_pb2.CreateTokenRequest(**request)
    if ttl is not None:
        message.ttl.FromTimedelta(ttl)
    async with mesh.registry_client() as registry:
        response: tokens_pb2.CreateTokenResponse = await tokens_pb2_grpc.TokenServiceStub(registry.channel).CreateToken(
            message, timeout=10)
    return response


def write_token(path: Path, token: str) -> Path:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def bootstrap_channel(mesh: SecureMesh) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=bundle(mesh))
    return grpc.aio.secure_channel(bootstrap_address(mesh), credentials,
                                   options=expected_peer_options(service("registry")))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def csr(*, names: list[x509.GeneralName] | None = None, common_name: str = "") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


async def issue_status(mesh: SecureMesh, metadata: tuple[tuple[str, str], ...] | None,
                       csr_pem: bytes | None = None) -> tuple[grpc.StatusCode, str]:
    async with bootstrap_channel(mesh) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        try:
            await stub.IssueCertificate(identity_pb2.IssueCertificateRequest(csr_pem=csr_pem or csr()),
                                        metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def audit_events(mesh: SecureMesh, principal: str) -> list[audit_pb2.AuditEvent]:
    async with mesh.registry_client() as registry:
        stub = audit_pb2_grpc.AuditServiceStub(registry.channel)
        response = await stub.ListAuditEvents(audit_pb2.ListAuditEventsRequest(
            filter=audit_pb2.AuditEventFilter(namespace="*", principal=principal)), timeout=10)
    return [e for e in response.events if e.method == ISSUE]


async def test_an_agent_with_only_a_bootstrap_token_registers_and_is_routed_to(
    mesh: SecureMesh, unique: str, tmp_path: Path
) -> None:
    async with mesh.registry_client() as registry:  # an admin defines the agent; the agent runs the instance
        await registry.register_agent(registry_pb2.Agent(id="echo", namespace=unique, type="echo", version="1.0.0",
                                                         runtime="process"))
    minted = await mint(mesh, namespace=unique, agent_id="echo")
    token_file = write_token(tmp_path / "echo.token", minted.token)
    ca_file = tmp_path / "mesh-ca.pem"
    ca_file.write_bytes(bundle(mesh))
    command = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent",
               "--bootstrap", bootstrap_address(mesh), "--bootstrap-token-file", str(token_file),
               "--tls-ca-file", str(ca_file), "--registry", mesh.registry.address, "--namespace", unique,
               "--no-register-agent", "--log-level", "INFO"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUTRADHAR_")}
    agent = await asyncio.to_thread(spawn_agent, command, cwd=str(ROOT), env=env)
    with agent:
        async with mesh.registry_client() as registry:
            async def serving() -> list[registry_pb2.Instance]:
                found = (await registry.list_instances(namespace=unique, agent_id="echo")).instances
                return [i for i in found if i.state == SERVING]

            [instance] = await eventually(serving, within=20, period=0.2, what="the bootstrapped echo serving")
        assert instance.identity == str(SpiffeId.agent(TD, unique, "echo"))
        async with mesh.router_client() as router:
            result = await router.execute("echo", {"text": "hi"}, namespace=unique, timeout=10)
        assert result.success and result.data["echo"] == {"text": "hi"}
        assert result.metadata.instance_id == instance.id
        await asyncio.to_thread(agent.stop)
    assert minted.token not in "\n".join(agent.output)


async def test_a_bootstrap_token_gets_its_own_identity_only(mesh: SecureMesh, unique: str) -> None:
    minted = await mint(mesh, namespace=unique, agent_id="echo")
    token = minted.token
    echo = SpiffeId.agent(TD, unique, "echo")
    other = SpiffeId.agent(TD, unique, "other")
    for names in ([x509.UniformResourceIdentifier(str(other))], [x509.DNSName(other.dns_name())],
                  [x509.UniformResourceIdentifier(str(echo)), x509.UniformResourceIdentifier(str(other))]):
        code, details = await issue_status(mesh, bearer(token), csr(names=names))
        assert code == grpc.StatusCode.PERMISSION_DENIED, details
        assert "only for the caller's own identity" in details
    # a name in the subject is ignored: the certificate is the token's subject's
    async with bootstrap_channel(mesh) as channel:
        response = await identity_pb2_grpc.IdentityServiceStub(channel).IssueCertificate(
            identity_pb2.IssueCertificateRequest(csr_pem=csr(common_name=other.dns_name()[:64])),
            metadata=bearer(token), timeout=10)
    assert response.spiffe_id == str(echo)
    issued = x509.load_pem_x509_certificate(response.certificate_chain_pem)
    uris = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    assert uris == [str(echo)]

    material = await bootstrap_certificate(bootstrap_address(mesh), token, bundle(mesh), TD)
    assert material.identity == echo
    async with RegistryClient(mesh.registry.address, tls=TlsSource(material=material),
                              expected=service("registry")) as registry:
        with pytest.raises(PermissionDenied) as refused:
            await registry.register_instance(registry_pb2.Instance(
                namespace=unique, agent_id="other", endpoint="127.0.0.1:1", identity=str(other)),
                ttl=timedelta(seconds=10))
        assert "other" in str(refused.value)
        # over the mTLS port, renewal is for the certificate's identity too, and needs the live token
        renewed = await renew_certificate(mesh.registry.address, TlsSource(material=material), token)
        assert renewed.identity == echo
        with pytest.raises(PermissionDenied, match="certificate alone"):
            await renew_certificate(mesh.registry.address, TlsSource(material=material), "")
    async with mesh.registry_client() as admin:
        await tokens_pb2_grpc.TokenServiceStub(admin.channel).RevokeToken(
            tokens_pb2.RevokeTokenRequest(namespace=unique, id=minted.record.id), timeout=10)

    async def refused_after_revocation() -> bool:
        try:
            await renew_certificate(mesh.registry.address, TlsSource(material=material), token)
        except Unauthenticated as err:
            return "revoked" in str(err)
        return False

    # revoking the bootstrap token ends the identity at its next renewal
    await eventually(refused_after_revocation, within=10, period=0.2, what="renewal refused after revocation")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_bad_tokens_are_unauthenticated_on_the_bootstrap_port(
    mesh: SecureMesh, unique: str, tmp_path: Path
) -> None:
    code, details = await issue_status(mesh, None)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "sutradhar token create --agent" in details

    key = IssuerKey.load(tmp_path / "issuer.pem")
    then = datetime.now(UTC) - timedelta(hours=3)
    expired = TokenIssuer.for_mesh(key, TD, lambda: then).mint(
        SpiffeId.agent(TD, unique, "echo"), unique, "agent", timedelta(hours=1)).token
    revoked = await mint(mesh, namespace=unique, agent_id="echo")
    async with mesh.registry_client() as registry:
        await tokens_pb2_grpc.TokenServiceStub(registry.channel).RevokeToken(
            tokens_pb2.RevokeTokenRequest(namespace=unique, id=revoked.record.id), timeout=10)
    claims = jwt.decode(revoked.token, options={"verify_signature": False})
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    hs256 = f"{head}.{body}.{_b64(hmac.new(key.public_pem(), signing_input, hashlib.sha256).digest())}"
    none = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{body}."
    forged = f"{head}.{body}.{_b64(b'x' * 32)}"

    for token, says in ((expired, "expired"), (hs256, "not allowed"), (none, "not allowed"),
                        (forged, "not allowed"), ("garbage", "not a well-formed JWT")):
        code, details = await issue_status(mesh, bearer(token))
        assert code == grpc.StatusCode.UNAUTHENTICATED, (says, details)
        assert says in details and token not in details

    async def refused_once_revoked() -> bool:
        code, details = await issue_status(mesh, bearer(revoked.token))
        return code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in details

    await eventually(refused_once_revoked, within=10, period=0.2, what="the revoked token refused")


async def test_the_bootstrap_port_serves_issue_certificate_only(mesh: SecureMesh, unique: str) -> None:
    token = (await mint(mesh, namespace=unique, role="admin", subject_name="root")).token
    async with bootstrap_channel(mesh) as channel:
        for call in (
            registry_pb2_grpc.RegistryServiceStub(channel).ListAgents(
                registry_pb2.ListAgentsRequest(namespace=unique), metadata=bearer(token), timeout=5),
            tokens_pb2_grpc.TokenServiceStub(channel).CreateToken(
                tokens_pb2.CreateTokenRequest(namespace=unique, role="admin"), metadata=bearer(token), timeout=5),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    # and it presents the registry's certificate: a client expecting another identity gets nothing
    credentials = grpc.ssl_channel_credentials(root_certificates=bundle(mesh))
    async with grpc.aio.secure_channel(bootstrap_address(mesh), credentials,
                                       options=expected_peer_options(service("router"))) as wrong:
        with pytest.raises(grpc.aio.AioRpcError) as unverified:
            await health_pb2_grpc.HealthStub(wrong).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert unverified.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_certificate_lifetimes_are_bounded(mesh: SecureMesh, unique: str) -> None:
    user = await mint(mesh, namespace=unique, role="viewer", subject_name="ci", ttl=timedelta(minutes=10))
    material = await bootstrap_certificate(bootstrap_address(mesh), user.token, bundle(mesh), TD)
    assert material.identity == SpiffeId.user(TD, unique, "ci")
    token_end = user.record.expire_time.ToDatetime(UTC)
    assert material.not_after <= token_end
    assert material.not_after >= token_end - timedelta(seconds=30)
    # the user certificate alone carries no role, so it renews nothing (its token does)
    with pytest.raises(PermissionDenied):
        await renew_certificate(mesh.registry.address, TlsSource(material=material), "")

    agent = await mint(mesh, namespace=unique, agent_id="echo", ttl=timedelta(minutes=10))
    issued = await bootstrap_certificate(bootstrap_address(mesh), agent.token, bundle(mesh), TD)
    now = datetime.now(UTC)
    assert now + WORKLOAD_LIFETIME - timedelta(minutes=1) <= issued.not_after <= now + WORKLOAD_LIFETIME


async def test_each_issuance_leaves_one_audit_record_without_the_token(mesh: SecureMesh, unique: str) -> None:
    minted = await mint(mesh, namespace=unique, agent_id="echo")
    identity = SpiffeId.agent(TD, unique, "echo")
    for _ in range(2):
        async with bootstrap_channel(mesh) as channel:
            await issue_certificate(channel, token=minted.token)
    code, _ = await issue_status(mesh, bearer(minted.token),
                                 csr(names=[x509.UniformResourceIdentifier(str(SpiffeId.agent(TD, unique, "x")))]))
    assert code == grpc.StatusCode.PERMISSION_DENIED

    async def three() -> list[audit_pb2.AuditEvent]:
        events = await audit_events(mesh, str(identity))
        return events if len(events) == 3 else []

    events = await eventually(three, within=10, period=0.2, what="three IssueCertificate records")
    for event in events:
        assert (event.verb, event.resource, event.namespace, event.name) == ("create", "certificates", unique, "echo")
        assert minted.record.id in event.principal and minted.token not in str(event)
    assert sorted(e.status_code for e in events) == ["OK", "OK", "PERMISSION_DENIED"]


async def test_login_makes_a_context_that_may_do_what_the_token_allows(
    mesh: SecureMesh, unique: str, tmp_path: Path
) -> None:
    minted = await mint(mesh, namespace=unique, role="viewer", subject_name="ci")
    token_file = write_token(tmp_path / "ci.token", minted.token)
    ca_file = tmp_path / "mesh-ca.pem"
    ca_file.write_bytes(bundle(mesh))
    credentials = tmp_path / "config" / "credentials.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUTRADHAR_")}
    env["SUTRADHAR_CREDENTIALS"] = str(credentials)

    async def cli(*argv: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sutradhar.cli.main", *argv, env=env, cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await cli("--registry", mesh.registry.address, "login", "--token-file", str(token_file),
                               "--bootstrap", bootstrap_address(mesh), "--ca-file", str(ca_file), "--context", "ci")
    assert code == 0, err
    assert f"logged in as spiffe://{TD}/ns/{unique}/user/ci (context ci)" in out
    assert minted.token not in out + err
    # the CLI, with that context (current now): the agents it may view, and nothing else
    code, out, err = await cli("agents", "list", "-n", unique, "-o", "json")
    assert code == 0, err
    code, out, err = await cli("agents", "list", "-n", "default")
    assert code == 1 and "PERMISSION_DENIED" in err and "user/ci" in err, err
    code, out, err = await cli("agents", "delete", "echo", "-n", unique)
    assert code == 1 and "PERMISSION_DENIED" in err, err

    saved = CredentialFile.load(credentials)
    context = saved.context()
    assert context is not None and saved.current == "ci"
    assert context.endpoints["registry"] == mesh.registry.address and context.token_file == token_file
    assert context.bootstrap == bootstrap_address(mesh) and context.namespace == unique
    assert context.client_key is not None and context.client_key.parent == credentials.parent / "ci"
    assert stat.S_IMODE(os.stat(context.client_key).st_mode) == 0o600
    assert minted.token not in credentials.read_text()

    creds = context.credentials()
    assert creds.tls is not None and creds.token == minted.token
    async with RegistryClient(mesh.registry.address, tls=creds.tls, expected=service("registry")) as registry:
        stub = registry_pb2_grpc.RegistryServiceStub(registry.channel)
        listed = await stub.ListAgents(registry_pb2.ListAgentsRequest(namespace=unique),
                                       metadata=bearer(minted.token), timeout=10)
        assert list(listed.agents) == []
        for call in (
            stub.ListAgents(registry_pb2.ListAgentsRequest(namespace="default"), metadata=bearer(minted.token),
                            timeout=10),
            stub.DeregisterAgent(registry_pb2.DeregisterAgentRequest(namespace=unique, id="echo"),
                                 metadata=bearer(minted.token), timeout=10),
            # the certificate alone carries no role
            stub.ListAgents(registry_pb2.ListAgentsRequest(namespace=unique), timeout=10),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_unauthenticated_bootstrap_names_the_port(mesh: SecureMesh, tmp_path: Path) -> None:
    with pytest.raises(Unauthenticated) as refused:
        await bootstrap_certificate(bootstrap_address(mesh), "not-a-token", bundle(mesh), TD)
    assert "not a well-formed JWT" in str(refused.value)



async def test_a_bootstrap_at_the_mutual_tls_port_is_told_its_token_needs_the_token_port(
    mesh: SecureMesh, unique: str
) -> None:
    """The registry's mTLS port closes the connection of a client with no certificate; gRPC says only
    "Socket closed"."""
    agent = await mint(mesh, namespace=unique, agent_id="echo", ttl=timedelta(minutes=10))
    with pytest.raises(Unavailable) as refused:
        await bootstrap_certificate(mesh.registry.address, agent.token, bundle(mesh), TD)
    message = refused.value.message
    assert message.startswith(CERTIFICATE_REFUSED) and "a token at the mesh's token port" in message
    assert agent.token not in message
