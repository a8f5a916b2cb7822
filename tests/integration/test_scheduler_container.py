"""Container deployments through the scheduler against a real Docker engine:
ready replicas registered on 127.0.0.1 ports, scaling, and nothing left after
undeploy."""

from __future__ import annotations

import pytest
from test_scheduler_support import (
    api,
    deployment,
    eventually,
    get,
    namespace,
    ready_instances,
    registry,
    registry_client,
    scheduler,
)

from sutradhar._clients import AgentClient
from sutradhar._values import to_struct
from sutradhar.services.scheduler.runtimes.container import ContainerRuntime
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P
from tests import docker_support
from tests.docker_support import DOCKER_TEST_TIMEOUT

docker_engine = docker_support.docker_engine  # fixtures
agent_image = docker_support.agent_image

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest
pytestmark = [pytest.mark.docker, pytest.mark.timeout(DOCKER_TEST_TIMEOUT)]


async def test_container_deployment(docker_engine, agent_image, api, registry_client, namespace):
    await registry_client.register_agent(registry_pb2.Agent(
        id="boxed", namespace=namespace, type="echo", version="1.0.0", runtime="container",
        config=to_struct({"image": agent_image, "command": ["examples.echo_agent:EchoAgent"]}),
        resources=registry_pb2.Resources(cpu="500m", memory="256Mi"),
    ))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "boxed", "boxed", 2)))
    instances = await eventually(lambda: _n(ready_instances(registry_client, namespace, "boxed"), 2), within=60)
    for inst in instances:
        assert inst.endpoint.startswith("127.0.0.1:") and inst.runtime == "container"
        async with AgentClient(inst.endpoint) as agent:
            assert (await agent.describe()).type == "echo"

    await api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="boxed", replicas=3))
    await eventually(lambda: _n(ready_instances(registry_client, namespace, "boxed"), 3), within=60)
    d = await get(api, namespace, "boxed")
    assert len(d.status.replica_statuses) == 3

    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="boxed", wait=True))
    runtime = ContainerRuntime()
    try:
        assert await runtime.list(namespace) == []
    finally:
        await runtime.close()
    assert await ready_instances(registry_client, namespace, "boxed") == []


async def test_missing_image_is_a_condition(docker_engine, api, registry_client, namespace):
    await registry_client.register_agent(registry_pb2.Agent(
        id="ghost", namespace=namespace, type="echo", version="1.0.0", runtime="container",
        config=to_struct({"image": "sutradhar/no-such-image:0.0.0"}),
    ))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "ghost", "ghost", 1)))

    async def failed():
        d = await get(api, namespace, "ghost")
        c = next((c for c in d.status.conditions if c.type == "FailedToStart"), None)
        return d if c is not None and c.status == P.CONDITION_STATUS_TRUE else None

    d = await eventually(failed, within=30)
    message = next(c.message for c in d.status.conditions if c.type == "FailedToStart")
    assert "sutradhar/no-such-image:0.0.0" in message
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="ghost", wait=True))


async def _n(items, n):
    found = await items
    return found if len(found) == n else None
