"""A container replica in a secured mesh: it serves with its own identity from a read-only
mount, is reached through the router over mTLS, and runs unprivileged (a root scheduler hands
its certificate files to the image's user instead of running the container as root)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest

from sutradhar._identity import SpiffeId
from sutradhar._values import to_struct
from sutradhar.services.scheduler.runtimes.container_config import CONTAINER_USER
from sutradhar.v1 import registry_pb2, scheduler_pb2
from tests import docker_support
from tests.docker_support import DOCKER_TEST_TIMEOUT
from tests.secure_support import TD, SecureEtcd, SecureMesh, secure_mesh
from tests.support import eventually

docker_engine = docker_support.docker_engine  # fixtures
agent_image = docker_support.agent_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(DOCKER_TEST_TIMEOUT)]

SERVING = registry_pb2.INSTANCE_STATE_SERVING


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    async with secure_mesh(secure_etcd, tmp_path) as m:
        yield m


async def test_a_container_replica_serves_its_own_identity_unprivileged(
    docker_engine: object, agent_image: str, mesh: SecureMesh, unique: str
) -> None:
    async with mesh.registry_client() as registry, mesh.scheduler_client() as scheduler:
        await registry.register_agent(registry_pb2.Agent(
            id="boxed", namespace=unique, type="boxed", version="1.0.0", runtime="container",
            config=to_struct({"image": agent_image, "command": ["examples.echo_agent:EchoAgent"]}),
            resources=registry_pb2.Resources(cpu="500m", memory="256Mi"),
        ))
        await scheduler.create_deployment(scheduler_pb2.Deployment(
            name="boxed", namespace=unique, spec=scheduler_pb2.DeploymentSpec(agent_id="boxed", replicas=1),
        ))

        async def serving() -> list[registry_pb2.Instance]:
            found = (await registry.list_instances(namespace=unique, agent_id="boxed")).instances
            return [i for i in found if i.state == SERVING]

        try:
            [instance] = await eventually(serving, within=90, period=0.5, what="the container replica serves")
            assert instance.identity == str(SpiffeId.agent(TD, unique, "boxed", instance.id))
            async with mesh.router_client() as router:
                result = await router.execute("boxed", {"text": "boxed"}, namespace=unique, timeout=20)
            assert result.success and result.metadata.instance_id == instance.id

            client = docker.from_env()
            [container] = [c for c in client.containers.list() if instance.id in c.name]
            user = container.attrs["Config"]["User"]
            if os.geteuid() == 0:
                assert user == f"{CONTAINER_USER[0]}:{CONTAINER_USER[1]}"  # not root
                assert mesh.scheduler is not None
                key = mesh.scheduler.config.state_dir / "tls" / unique / instance.id / "key.pem"
                assert (key.stat().st_uid, key.stat().st_mode & 0o777) == (CONTAINER_USER[0], 0o600)
            else:
                assert user == f"{os.getuid()}:{os.getgid()}"
        finally:
            await scheduler.delete_deployment("boxed", namespace=unique, wait=True)
