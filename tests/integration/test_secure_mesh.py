"""A secured mesh end to end: registry, router, health and scheduler with mutual TLS and
certificates of a real CA, replicas the scheduler starts with identities of their own, and
what an attacker on the network gets: nothing.

- a process replica serves with its own identity (bound to namespace, agent id and instance
  id) and is reached through the router, or directly by a DirectClient with a certificate
  the registry allows; it refuses other callers;
- a hijacked endpoint (an instance registered with identity X, then a holder of a valid
  certificate of identity Y answering on its port) gets no task, and health reports it not
  serving with a message naming both identities;
- plaintext and untrusted-CA clients are refused by a service;
- replica certificates renewed every few seconds keep the replica routable with no failed call.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from examples.echo_agent import EchoAgent
from sutradhar._agent import Result, Task
from sutradhar._clients import AgentClient, RegistryClient
from sutradhar._direct import DirectClient
from sutradhar._errors import InvalidArgument, PermissionDenied, Unavailable
from sutradhar._identity import SpiffeId
from sutradhar._serve import AgentServer
from sutradhar._tls import TlsFiles, TlsSource
from sutradhar.v1 import registry_pb2, scheduler_pb2
from tests.secure_support import ADMIN, TD, Pki, SecureEtcd, SecureMesh, secure_mesh, service
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
ECHO = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]
SERVING = registry_pb2.INSTANCE_STATE_SERVING
NOT_SERVING = registry_pb2.INSTANCE_STATE_NOT_SERVING
pytestmark = pytest.mark.timeout(120)


def agent_definition(namespace: str, agent_id: str = "echo") -> registry_pb2.Agent:
    return json_format.ParseDict({
        "id": agent_id, "namespace": namespace, "type": "echo", "version": "1.0.0", "runtime": "process",
        "capabilities": ["echo"],
        "config": {"command": ECHO, "workdir": str(ROOT)},
        "probes": {"readiness": {"period": "0.25s", "timeout": "0.5s", "failureThreshold": 2,
                                 "successThreshold": 1}},
    }, registry_pb2.Agent())


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    async with secure_mesh(secure_etcd, tmp_path) as m:
        yield m


async def deploy(
    mesh: SecureMesh, namespace: str, name: str = "echo", replicas: int = 1
) -> list[registry_pb2.Instance]:
    async with mesh.registry_client() as registry, mesh.scheduler_client() as scheduler:
        await registry.register_agent(agent_definition(namespace))
        await scheduler.create_deployment(scheduler_pb2.Deployment(
            name=name, namespace=namespace,
            spec=scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=replicas),
        ))

        async def serving() -> list[registry_pb2.Instance]:
            found = (await registry.list_instances(namespace=namespace, agent_id="echo")).instances
            ready = [i for i in found if i.state == SERVING]
            return ready if len(ready) == replicas else []

        return await eventually(serving, within=40, period=0.2, what=f"{replicas} serving replica(s) of {name}")


async def test_a_replica_serves_with_its_own_identity_and_is_reached_through_the_router(
    mesh: SecureMesh, unique: str
) -> None:
    [instance] = await deploy(mesh, unique)
    expected = SpiffeId.agent(TD, unique, "echo", instance.id)
    assert instance.identity == str(expected)
    async with mesh.router_client() as router:
        result = await router.execute("echo", {"text": "hi"}, namespace=unique, timeout=10)
    assert result.success and result.data["echo"] == {"text": "hi"}
    assert result.metadata.instance_id == instance.id
    # a DirectClient with a certificate calls the replica itself (the replica reviews its access)
    async with DirectClient(mesh.router.address, registry=mesh.registry.address, tls=mesh.client_source(ADMIN),
                            expected=service("router")) as caller:
        assert await caller.wait_synced(timeout=10)
        result = await caller.execute("echo", {"text": "hi"}, namespace=unique, timeout=10)
        assert result.success and result.metadata.instance_id == instance.id
        assert caller.stats().fallbacks == {} and caller.stats().direct == 1

    assert mesh.scheduler is not None
    directory = mesh.scheduler.config.state_dir / "tls" / unique / instance.id
    material = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "bundle.pem").load()
    assert material.identity == expected
    assert stat.S_IMODE(os.stat(directory / "key.pem").st_mode) == 0o600

    # the replica itself takes calls from mesh services, and from callers the registry allows only
    stranger = SpiffeId.user(TD, unique, "stranger")
    async with AgentClient(instance.endpoint, tls=mesh.client_source(stranger), expected=expected) as direct:
        with pytest.raises(PermissionDenied) as refused:
            await direct.execute({"text": "hi"}, timeout=5)
    assert str(stranger) in str(refused.value) and "access review" in str(refused.value)
    async with AgentClient(instance.endpoint) as plaintext:
        with pytest.raises(Unavailable):
            await plaintext.describe(timeout=3)

    # its files go with it
    async with mesh.scheduler_client() as scheduler:
        await scheduler.delete_deployment("echo", namespace=unique, wait=True, timeout=30)
    await eventually(lambda: not directory.exists(), within=10, what=f"{directory} removed")


class Counting(EchoAgent):
    """An echo agent that counts the tasks it received."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = 0

    async def execute(self, task: Task) -> Result:
        self.tasks += 1
        return await super().execute(task)


async def define_agent(mesh: SecureMesh, namespace: str) -> None:
    """The agent's definition, written by the admin (defining what code runs is admin-only)."""
    async with mesh.registry_client() as admin:
        await admin.register_agent(agent_definition(namespace))


async def test_a_hijacked_endpoint_gets_no_task_and_health_names_the_identity_mismatch(
    mesh: SecureMesh, unique: str
) -> None:
    registered = SpiffeId.agent(TD, unique, "echo", "victim")
    impostor_identity = SpiffeId.agent(TD, unique, "echo", "impostor")
    impostor_files = mesh.pki.issue(impostor_identity)
    impostor = Counting()
    server = AgentServer(
        impostor, host="127.0.0.1", port=0, instance_id="impostor", trust_domain=TD,
        tls_cert_file=impostor_files.certificate, tls_key_file=impostor_files.private_key,
        tls_ca_file=impostor_files.trust_bundle,
    )
    async with server, mesh.registry_client(service("scheduler")) as registry:
        await define_agent(mesh, unique)
        await registry.register_instance(registry_pb2.Instance(
            id="victim", namespace=unique, agent_id="echo", endpoint=server.address, identity=str(registered),
        ), ttl=timedelta(seconds=30))

        async with mesh.health_client() as health:
            async def reported() -> registry_pb2.Instance | None:
                found = await health.get_instance_health("victim", namespace=unique)
                readiness = found.health.readiness
                return found if found.state == NOT_SERVING and "identity mismatch" in readiness.last_message else None

            found = await eventually(reported, within=15, period=0.2, what="health reports the identity mismatch")
        message = found.health.readiness.last_message
        assert str(impostor_identity) in message and str(registered) in message

        async with mesh.router_client() as router:
            # not routable (NOT_SERVING), and the router would not complete a handshake with it anyway
            with pytest.raises(Unavailable):
                await router.execute("echo", {"text": "steal"}, namespace=unique, timeout=5)
        engine_transport = mesh.router.engine.transport(mesh.router.view.backends[(unique, "victim")])
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await engine_transport.execute(b"", 3)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert impostor.tasks == 0


async def test_an_instance_without_identity_gets_no_task_in_a_secured_mesh(mesh: SecureMesh, unique: str) -> None:
    async with mesh.registry_client(service("scheduler")) as registry:
        await define_agent(mesh, unique)
        await registry.register_instance(registry_pb2.Instance(
            id="anonymous", namespace=unique, agent_id="echo", endpoint="127.0.0.1:9",
        ), ttl=timedelta(seconds=30))
    async with mesh.health_client() as health:
        async def reported() -> str:
            found = await health.get_instance_health("anonymous", namespace=unique)
            return found.health.readiness.last_message if found.state == NOT_SERVING else ""

        message = await eventually(reported, within=15, period=0.2, what="health refuses the anonymous instance")
    assert "instance 'anonymous' (127.0.0.1:9) registered no identity" in message


async def test_plaintext_and_untrusted_clients_are_refused_and_a_bad_identity_is_invalid(
    mesh: SecureMesh, tmp_path: Path, unique: str
) -> None:
    async with RegistryClient(mesh.registry.address) as plaintext:
        with pytest.raises(Unavailable):
            await plaintext.list_agents(namespace=unique, timeout=3)
    foreign = Pki.foreign(tmp_path)
    # trusts the mesh (so it would accept the registry) but holds a certificate of another CA
    files = foreign.issue(ADMIN, trust_bundle=mesh.pki.ca.bundle_pem())
    async with RegistryClient(mesh.registry.address, tls=TlsSource(files), expected=service("registry")) as other:
        with pytest.raises(Unavailable):
            await other.list_agents(namespace=unique, timeout=3)
    async with mesh.registry_client() as trusted:
        assert list((await trusted.list_agents(namespace=unique, timeout=3)).agents) == []
        await trusted.register_agent(agent_definition(unique))
        with pytest.raises(InvalidArgument) as bad:
            await trusted.register_instance(registry_pb2.Instance(
                id="r1", namespace=unique, agent_id="echo", endpoint="127.0.0.1:9",
                identity=str(SpiffeId.agent(TD, unique, "other", "r1")),
            ))
    assert str(bad.value).startswith("instance.identity ") and "names agent 'other', not 'echo'" in str(bad.value)


async def test_replica_certificates_renewed_every_few_seconds_fail_no_routed_call(
    secure_etcd: SecureEtcd, tmp_path: Path, unique: str
) -> None:
    async with secure_mesh(secure_etcd, tmp_path, replica_cert_lifetime=timedelta(seconds=6)) as mesh:
        [instance] = await deploy(mesh, unique)
        assert mesh.scheduler is not None
        directory = mesh.scheduler.config.state_dir / "tls" / unique / instance.id
        files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "bundle.pem")
        first = files.load().not_after
        failures: list[BaseException] = []
        done = 0
        async with mesh.router_client() as router:
            loop = asyncio.get_running_loop()
            end = loop.time() + 10  # past the first certificate's end
            while loop.time() < end:
                try:
                    result = await router.execute("echo", {"n": done}, namespace=unique, timeout=5)
                    assert result.success
                    done += 1
                except Exception as err:
                    failures.append(err)
                await asyncio.sleep(0.02)
        assert failures == []
        assert done > 50
        later = files.load()
        assert later.not_after > first and later.identity == SpiffeId.agent(TD, unique, "echo", instance.id)
        async with mesh.health_client() as health:
            assert (await health.get_instance_health(instance.id, namespace=unique)).state == SERVING
