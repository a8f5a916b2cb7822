"""`SchedulerClient` and `HealthClient` against real services: typed results,
keyword-only options, timeouts in seconds or as timedelta, and failures raised
as the SDK's errors carrying their code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta

import grpc
import pytest
from test_health_cli_json import services  # noqa: F401 - fixture: a registry and a health service
from test_scheduler_support import (  # noqa: F401 - fixtures
    deployment,
    echo_agent,
    namespace,
    registry,
    registry_client,
    scheduler,
)

from sutradhar import AlreadyExists, HealthClient, InvalidArgument, NotFound, RegistryClient, SchedulerClient
from sutradhar.v1 import health_pb2, registry_pb2, scheduler_pb2


async def test_scheduler_client_manages_a_deployment(scheduler, registry_client, namespace) -> None:  # noqa: F811
    await registry_client.register_agent(echo_agent(namespace))
    async with SchedulerClient(scheduler.address) as client:
        created = await client.create_deployment(deployment(namespace, "web", replicas=0), timeout=5)
        assert isinstance(created, scheduler_pb2.Deployment) and created.spec.replicas == 0
        with pytest.raises(AlreadyExists) as info:
            await client.create_deployment(deployment(namespace, "web", replicas=0))
        assert info.value.code is grpc.StatusCode.ALREADY_EXISTS

        applied = await client.apply_deployment(deployment(namespace, "web", replicas=0), timeout=timedelta(seconds=5))
        assert applied.created is False and applied.deployment.name == "web"
        got = await client.get_deployment("web", namespace=namespace, timeout=5)
        assert got.spec.agent_id == "echo"
        listed = await client.list_deployments(namespace=namespace)
        assert [d.name for d in listed.deployments] == ["web"] and listed.revision > 0

        assert (await client.pause_rollout("web", namespace=namespace)).spec.paused
        assert not (await client.resume_rollout("web", namespace=namespace)).spec.paused
        scaled = await client.scale_deployment("web", 0, namespace=namespace)
        assert scaled.spec.replicas == 0

        watched = client.watch_deployments(namespace=namespace, name="web", include_initial=True)
        first = await asyncio.wait_for(anext(watched), 10)
        await watched.aclose()
        assert first.type == scheduler_pb2.DEPLOYMENT_EVENT_TYPE_PUT and first.deployment.name == "web"

        await client.delete_deployment("web", namespace=namespace, wait=True, timeout=30)
        with pytest.raises(NotFound):
            await client.get_deployment("web", namespace=namespace)
        with pytest.raises(InvalidArgument) as bad:
            await client.scale_deployment("web", -1, namespace=namespace)
        assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(TypeError, match="timeout must be a timedelta or seconds"):
            await client.get_deployment("web", namespace=namespace, timeout="5s")  # type: ignore[arg-type]


async def test_health_client_reads_drains_and_watches(services, unique) -> None:  # noqa: F811
    reg: RegistryClient = services["reg"]
    await reg.register_agent(registry_pb2.Agent(id="lonely", namespace=unique, type="echo", version="1.0.0",
                                                runtime="process"))
    await reg.register_instance(registry_pb2.Instance(id="i1", namespace=unique, agent_id="lonely",
                                                      endpoint="127.0.0.1:1", runtime="process",
                                                      state=registry_pb2.INSTANCE_STATE_SERVING),
                                ttl=timedelta(seconds=30))
    async with HealthClient(services["health"].address) as client:
        agent = await client.get_agent_health("lonely", namespace=unique, timeout=5)
        assert isinstance(agent, health_pb2.AgentHealth) and agent.total == 1
        assert [i.id for i in agent.instances] == ["i1"]
        listed = await client.list_agent_health(namespace=unique, include_instances=True, timeout=timedelta(seconds=5))
        assert [(a.agent_id, [i.id for i in a.instances]) for a in listed.agents] == [("lonely", ["i1"])]
        bare = await client.list_agent_health(namespace=unique)
        assert not bare.agents[0].instances
        assert (await client.get_instance_health("i1", namespace=unique)).agent_id == "lonely"

        events = client.watch_health(namespace=unique, include_current=True)
        while (event := await asyncio.wait_for(anext(events), 10)).type != health_pb2.HEALTH_EVENT_TYPE_SYNCED:
            assert isinstance(event, health_pb2.HealthEvent) and event.type == health_pb2.HEALTH_EVENT_TYPE_CURRENT
        assert (await client.drain_instance("i1", namespace=unique)).drained
        while (event := await asyncio.wait_for(anext(events), 10)).instance_id != "i1":
            pass
        await events.aclose()
        assert not (await client.enable_instance("i1", namespace=unique)).drained
        with pytest.raises(NotFound) as info:
            await client.drain_instance("nope", namespace=unique)
        assert info.value.code is grpc.StatusCode.NOT_FOUND
        members = await client.list_members()
        assert members.answered_by and members.members


async def test_cli_health_instances_shows_every_agents_instances(services, unique) -> None:  # noqa: F811
    reg: RegistryClient = services["reg"]
    for agent_id, instance_id in (("alpha", "a1"), ("beta", "b1")):
        await reg.register_agent(registry_pb2.Agent(id=agent_id, namespace=unique, type="echo", version="1.0.0",
                                                    runtime="process"))
        await reg.register_instance(registry_pb2.Instance(id=instance_id, namespace=unique, agent_id=agent_id,
                                                          endpoint="127.0.0.1:1", runtime="process"),
                                    ttl=timedelta(seconds=30))
    argv = [sys.executable, "-m", "sutradhar.cli.main", "--health", services["health"].address, "health",
            "-n", unique]
    per_instance = await asyncio.to_thread(subprocess.run, [*argv, "--instances"], capture_output=True, text=True,
                                           timeout=30)
    assert per_instance.returncode == 0, per_instance.stderr
    header, *rows = per_instance.stdout.splitlines()
    assert header.split()[:4] == ["NAMESPACE", "AGENT", "INSTANCE", "STATE"]
    assert sorted(row.split()[1:3] for row in rows) == [["alpha", "a1"], ["beta", "b1"]]
    summary = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=30)
    assert summary.stdout.splitlines()[0].split()[:3] == ["NAMESPACE", "AGENT", "STATUS"]  # one row per agent
    assert len(summary.stdout.splitlines()) == 3
