"""Mutual TLS between real gRPC peers over loopback: certificates of the built-in CA, the
peer's identity checked, plaintext / untrusted / expired / wrong-identity refused, and
certificate rotation under load without a failed call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sutradhar._clients import AgentClient
from sutradhar._credentials import Credentials
from sutradhar._errors import CERTIFICATE_REFUSED, PLAINTEXT_PEER, TLS_SERVICE, Unavailable
from sutradhar._hosting import GrpcHost
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsFiles, TlsSource, secure_channel
from sutradhar.cli.main import _explain
from sutradhar.services.common.authority import CertificateAuthority, Renewal
from sutradhar.v1 import agent_pb2, agent_pb2_grpc

TD = "sutradhar.local"
REGISTRY = SpiffeId.service(TD, "registry")
ROUTER = SpiffeId.service(TD, "router")


class Echo(agent_pb2_grpc.AgentServiceServicer):
    """Answers Describe with the caller's certificate identity, slowly when asked."""

    def __init__(self) -> None:
        self.delay = 0.0

    async def Describe(
        self, request: agent_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DescribeResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        peer = context.auth_context().get("peer_spiffe_id", [b""])[0].decode()
        return agent_pb2.DescribeResponse(id="echo", description=peer)


def files(root: Path, name: str) -> TlsFiles:
    return TlsFiles(root / f"{name}.pem", root / f"{name}-key.pem", root / "bundle.pem")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "pki", TD)


@pytest.fixture
async def server(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[tuple[GrpcHost, Echo, Renewal]]:
    renewal = Renewal(ca, REGISTRY, files(tmp_path, "registry"), hosts=["127.0.0.1", "localhost"])
    renewal.renew()
    source = TlsSource(renewal.files, check_interval=timedelta(milliseconds=50))
    host = GrpcHost(service_names=["sutradhar.v1.AgentService"], tls=source)
    echo = Echo()
    host.add_servicer(agent_pb2_grpc.add_AgentServiceServicer_to_server, echo)
    await host.start()
    await host.set_serving()
    try:
        yield host, echo, renewal
    finally:
        await host.stop(timedelta(seconds=0))


def client_source(tmp_path: Path, ca: CertificateAuthority, identity: SpiffeId, **kwargs: object) -> TlsSource:
    target = files(tmp_path, f"client-{identity.name.replace('/', '-')}")
    ca.issue(identity, **kwargs).write(target)  # type: ignore[arg-type]
    return TlsSource(target, check_interval=timedelta(milliseconds=50))


async def describe(channel: object, deadline: float = 5) -> agent_pb2.DescribeResponse:
    stub = agent_pb2_grpc.AgentServiceStub(channel)  # type: ignore[arg-type]
    return await stub.Describe(agent_pb2.DescribeRequest(), timeout=deadline)


async def test_a_client_of_the_ca_reaches_the_server_it_expects_and_the_server_sees_its_identity(
    tmp_path: Path, ca: CertificateAuthority, server: tuple[GrpcHost, Echo, Renewal]
) -> None:
    host, _, _ = server
    async with secure_channel(host.address, client_source(tmp_path, ca, ROUTER), expected=REGISTRY) as channel:
        answer = await describe(channel)
    assert answer.description == str(ROUTER)


async def test_plaintext_is_refused(server: tuple[GrpcHost, Echo, Renewal]) -> None:
    host, _, _ = server
    async with grpc.aio.insecure_channel(host.address) as channel:
        with pytest.raises(grpc.RpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_without_a_certificate_is_refused(
    server: tuple[GrpcHost, Echo, Renewal], ca: CertificateAuthority
) -> None:
    host, _, _ = server
    creds = grpc.ssl_channel_credentials(root_certificates=ca.bundle_pem())
    options = [("grpc.ssl_target_name_override", REGISTRY.dns_name())]
    async with grpc.aio.secure_channel(host.address, creds, options=options) as channel:
        with pytest.raises(grpc.RpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_of_another_ca_is_refused(
    tmp_path: Path, server: tuple[GrpcHost, Echo, Renewal], ca: CertificateAuthority
) -> None:
    host, _, _ = server
    other = CertificateAuthority.create(TD)
    target = files(tmp_path / "other", "router")
    issued = other.issue(ROUTER)
    # the impostor trusts the real CA (so it would accept the server) but presents a foreign certificate
    type(issued)(issued.certificate_chain, issued.private_key, ca.bundle_pem()).write(target)
    async with secure_channel(host.address, TlsSource(target), expected=REGISTRY) as channel:
        with pytest.raises(grpc.RpcError) as err:
            await describe(channel, deadline=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_expired_client_certificate_is_refused(
    tmp_path: Path, server: tuple[GrpcHost, Echo, Renewal], ca: CertificateAuthority
) -> None:
    host, _, _ = server
    long_ago = datetime.now(UTC) - timedelta(days=2)
    source = client_source(tmp_path, ca, ROUTER, now=lambda: long_ago, lifetime=timedelta(hours=1))
    assert source.current().expired()
    async with secure_channel(host.address, source, expected=REGISTRY) as channel:
        with pytest.raises(grpc.RpcError) as err:
            await describe(channel, deadline=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_server_with_another_identity_than_expected_is_refused(
    tmp_path: Path, ca: CertificateAuthority, server: tuple[GrpcHost, Echo, Renewal]
) -> None:
    host, _, _ = server
    source = client_source(tmp_path, ca, ROUTER)
    async with secure_channel(host.address, source, expected=SpiffeId.service(TD, "health")) as channel:
        with pytest.raises(grpc.RpcError) as err:
            await describe(channel, deadline=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_rotating_both_certificates_under_load_fails_no_call(
    tmp_path: Path, ca: CertificateAuthority, server: tuple[GrpcHost, Echo, Renewal]
) -> None:
    host, echo, server_renewal = server
    echo.delay = 0.02
    client_files = files(tmp_path, "router")
    client_renewal = Renewal(ca, ROUTER, client_files)
    client_renewal.renew()
    source = TlsSource(client_files, check_interval=timedelta(milliseconds=50))
    first_serial = source.current().not_after
    failures: list[BaseException] = []
    done = 0
    stop = asyncio.Event()

    async with secure_channel(host.address, source, expected=REGISTRY) as channel:

        async def caller() -> None:
            nonlocal done
            while not stop.is_set():
                try:
                    await describe(channel)
                    done += 1
                except grpc.RpcError as err:
                    failures.append(err)

        callers = [asyncio.create_task(caller()) for _ in range(16)]
        for _ in range(3):
            await asyncio.sleep(0.3)
            server_renewal.renew()
            client_renewal.renew()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*callers)
        generation = source.generation
    assert failures == []
    assert done > 100
    assert generation >= 3, "the client picked up the rotated certificates"
    assert source.current().not_after >= first_serial


async def test_during_a_ca_rotation_old_and_new_certificates_are_trusted_side_by_side(tmp_path: Path) -> None:
    old = CertificateAuthority.create(TD)
    new = CertificateAuthority.create(TD, previous=old)
    assert len(new.bundle) == 2  # the new CA first, the old one kept until its leaves expire
    server_files = files(tmp_path, "registry")
    issued = old.issue(REGISTRY, hosts=["127.0.0.1"])  # not yet renewed: still the old CA's
    type(issued)(issued.certificate_chain, issued.private_key, new.bundle_pem()).write(server_files)
    host = GrpcHost(service_names=["sutradhar.v1.AgentService"], tls=TlsSource(server_files))
    host.add_servicer(agent_pb2_grpc.add_AgentServiceServicer_to_server, Echo())
    await host.start()
    try:
        client_files = files(tmp_path, "router")
        new.issue(ROUTER).write(client_files)  # already renewed: the new CA's, trusting both
        async with secure_channel(host.address, TlsSource(client_files), expected=REGISTRY) as channel:
            assert (await describe(channel)).description == str(ROUTER)
    finally:
        await host.stop(timedelta(seconds=0))


async def test_a_tls_client_reaching_a_plaintext_service_is_told_so_and_the_cli_names_the_context(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    host = GrpcHost(service_names=["sutradhar.v1.AgentService"])  # no TLS: a --insecure service
    host.add_servicer(agent_pb2_grpc.add_AgentServiceServicer_to_server, Echo())
    await host.start()
    await host.set_serving()
    try:
        async with AgentClient(host.address, tls=client_source(tmp_path, ca, ROUTER)) as client:
            with pytest.raises(Unavailable) as failed:
                await client.describe(timeout=3)
    finally:
        await host.stop(timedelta(seconds=0))
    message = failed.value.message
    assert message.startswith(PLAINTEXT_PEER) and "WRONG_VERSION_NUMBER" in message  # gRPC's words follow
    explained = _explain(failed.value)
    assert "hint: the credential context is a secured mesh's" in explained and "--context NAME" in explained
    assert "wants a client certificate" not in explained


async def test_a_plaintext_client_of_a_secured_service_is_told_it_wants_credentials(
    tmp_path: Path, server: tuple[GrpcHost, Echo, Renewal]
) -> None:
    """gRPC says only "Socket closed", which reads like a service that is down."""
    host, _, _ = server
    async with AgentClient(host.address, credentials=Credentials.insecure()) as client:
        with pytest.raises(Unavailable) as failed:
            await client.describe(timeout=3)
    message = failed.value.message
    assert message.startswith(TLS_SERVICE) and message.endswith("Socket closed)")  # gRPC's words follow
    explained = _explain(failed.value)
    assert "hint: this command presented no credentials" in explained and "--context NAME" in explained
    assert "is the mesh running" not in explained
    # the CLI with no credential file: the same error and hint, exit status 1
    env = {**os.environ, "SUTRADHAR_CREDENTIALS": str(tmp_path / "none.yaml")}
    env.pop("SUTRADHAR_CONTEXT", None)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "sutradhar.cli.main", "--registry", host.address, "agents", "list"],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert f"error: {TLS_SERVICE} (" in done.stderr and "(UNAVAILABLE)" in done.stderr
    assert "hint: this command presented no credentials" in done.stderr


@pytest.mark.parametrize("presented", ["another CA's certificate", "an expired certificate", "a token alone"])
async def test_a_tls_client_whose_certificate_the_service_refuses_is_told_so(
    tmp_path: Path, server: tuple[GrpcHost, Echo, Renewal], ca: CertificateAuthority, presented: str
) -> None:
    host, _, _ = server
    if presented == "another CA's certificate":
        target = files(tmp_path / "other", "router")
        issued = CertificateAuthority.create(TD).issue(ROUTER)
        type(issued)(issued.certificate_chain, issued.private_key, ca.bundle_pem()).write(target)
        credentials = Credentials(tls=TlsSource(target))
    elif presented == "an expired certificate":
        long_ago = datetime.now(UTC) - timedelta(days=2)
        credentials = Credentials(tls=client_source(tmp_path, ca, ROUTER, now=lambda: long_ago,
                                                    lifetime=timedelta(hours=1)))
    else:  # the mutual-TLS port, not a token port
        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(ca.bundle_pem())
        credentials = Credentials(token="a-token", trust_bundle=bundle, trust_domain=TD)
    async with AgentClient(host.address, credentials=credentials, expected=REGISTRY) as client:
        with pytest.raises(Unavailable) as failed:
            await client.describe(timeout=3)
    message = failed.value.message
    assert message.startswith(CERTIFICATE_REFUSED) and message.endswith("Socket closed)")
    assert "a-token" not in message
    explained = _explain(failed.value)
    assert "hint: check the credential context this command used" in explained
    assert "is the mesh running" not in explained and "presented no credentials" not in explained
