"""Container deployments through the scheduler against a real Docker engine:
ready replicas registered on 127.0.0.1 ports, scaling, and nothing left after
undeploy."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from test_scheduler_support import (
    api,
    deployment,
    eventually,
    get,
    leading_scheduler,
    namespace,
    ready_instances,
    registry,
    registry_client,
    run_cli,
    scheduler,
)

from sutradhar._clients import AgentClient
from sutradhar._labels import METRICS_PORT_LABEL
from sutradhar._values import to_struct
from sutradhar.services.scheduler.runtimes.container import ContainerRuntime
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P
from tests import docker_support
from tests.docker_support import DOCKER_TEST_TIMEOUT, SESSION_SCOPE

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
            assert (await agent.execute({"hello": "box"})).success
        # the /metrics port the scheduler gave the container, published on loopback, found by its label
        metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{inst.labels[METRICS_PORT_LABEL]}/metrics")
        counted = [line for line in metrics.splitlines() if line.startswith("sutradhar_agent_tasks_total{")
                   and 'agent="boxed"' in line and 'outcome="success"' in line and not line.endswith(" 0.0")]
        assert len(counted) == 1 and counted[0].endswith(" 1.0"), metrics

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


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


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


async def test_names_short_ids_and_adoption_of_containers_named_the_old_way(
        docker_engine, agent_image, etcd, registry, registry_client, namespace, tmp_path):
    await registry_client.register_agent(registry_pb2.Agent(
        id="qa-ctr", namespace=namespace, type="echo", version="1.0.0", runtime="container",
        config=to_struct({"image": agent_image, "command": ["examples.echo_agent:EchoAgent"]}),
        resources=registry_pb2.Resources(cpu="500m", memory="256Mi"),
    ))
    state = tmp_path / "state"
    async with leading_scheduler(etcd, registry.address, state) as (first, stub):
        await stub.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "qa-ctr", "qa-ctr", 1)))
        await eventually(lambda: _n(ready_instances(registry_client, namespace, "qa-ctr"), 1), within=60)
        rs = (await get(stub, namespace, "qa-ctr")).status.replica_statuses[0]
        full = rs.native_id
        assert len(full) == 64

        # the name does not repeat the deployment (the replica id starts with it); the labels stay
        attrs = docker_engine.api.inspect_container(full)
        assert attrs["Name"] == f"/sutradhar-{SESSION_SCOPE}-{namespace}-{rs.id}"
        assert rs.id.startswith("qa-ctr-") and "qa-ctr-qa-ctr" not in attrs["Name"]
        labels = attrs["Config"]["Labels"]
        assert (labels["sutradhar.scope"], labels["sutradhar.namespace"], labels["sutradhar.deployment"],
                labels["sutradhar.replica"]) == (SESSION_SCOPE, namespace, "qa-ctr", rs.id)

        # the table prints the id as docker does; -o json keeps all of it
        code, out = await run_cli(registry, first, "deployments", "get", "qa-ctr", "-n", namespace)
        assert code == 0, out
        assert full[:12] in out and full not in out
        code, out = await run_cli(registry, first, "deployments", "get", "qa-ctr", "-n", namespace, "-o", "json")
        assert code == 0, out
        assert json.loads(out)["status"]["replica_statuses"][0]["native_id"] == full

        # a container named by an older scheduler (<ns>-<deployment>-<replica>) that runs
        # across the upgrade: the next leader adopts it by its labels
        docker_engine.api.rename(full, f"sutradhar-{SESSION_SCOPE}-{namespace}-qa-ctr-{rs.id}")

    async with leading_scheduler(etcd, registry.address, state) as (_, stub):
        async def adopted():
            d = await get(stub, namespace, "qa-ctr")
            s = d.status
            ok = s.ready_replicas == 1 and [r.native_id for r in s.replica_statuses] == [full]
            return d if ok and any(e.reason == "Adopted" for e in s.events) else None

        d = await eventually(adopted, within=30)
        assert not any(e.reason in ("Started", "Crashed") and e.replica != rs.id for e in d.status.events)
        runtime = ContainerRuntime()
        try:
            assert [r.native_id for r in await runtime.list(namespace)] == [full]
            await stub.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="qa-ctr", wait=True))
            assert await runtime.list(namespace) == []
        finally:
            await runtime.close()
