"""Deployments of process replicas: deploy, scale, crash and restart, bad
commands, undeploy, against a real etcd, registry and child processes."""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import pytest
from test_scheduler_support import (
    api,
    condition,
    condition_true,
    deployment,
    echo_agent,
    eventually,
    get,
    namespace,
    pid_alive,
    ready_instances,
    registry,
    registry_client,
    scheduler,
)

from sutradhar._clients import AgentClient
from sutradhar._values import to_struct
from sutradhar.services.common.etcd_server import free_port
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest


async def test_deploy_scale_undeploy(api, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace))
    created = await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "web")))
    assert created.deployment.generation == 1

    instances = await eventually(lambda: _n_ready(registry_client, namespace, "web", 2))
    endpoints = {i.endpoint for i in instances}
    assert len(endpoints) == 2
    for inst in instances:
        assert inst.labels["sutradhar.deployment"] == "web"
        assert inst.labels["sutradhar.revision"]
        assert inst.version == "1.0.0"
        async with AgentClient(inst.endpoint) as agent:
            described = await agent.describe()
            assert described.id == "echo"

    await api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="web", replicas=4))
    await eventually(lambda: _n_ready(registry_client, namespace, "web", 4))
    d = await eventually(lambda: _status(api, namespace, "web", ready=4))
    assert any(e.reason == "Scaled" for e in d.status.events)

    await api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="web", replicas=1))
    await eventually(lambda: _n_ready(registry_client, namespace, "web", 1))
    d = await eventually(lambda: _status(api, namespace, "web", ready=1, replicas=1))
    pids = [int(r.native_id) for r in d.status.replica_statuses]
    assert all(pid_alive(p) for p in pids)

    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="web", wait=True))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(api, namespace, "web")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not any(pid_alive(p) for p in pids)
    assert await ready_instances(registry_client, namespace, "web") == []


async def test_killed_replica_is_restarted_with_backoff(api, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "svc", replicas=1)))
    d = await eventually(lambda: _status(api, namespace, "svc", ready=1))
    victim = d.status.replica_statuses[0]
    os.kill(int(victim.native_id), signal.SIGKILL)

    async def restarted():
        d = await get(api, namespace, "svc")
        rs = d.status.replica_statuses
        if len(rs) == 1 and rs[0].restarts >= 1 and rs[0].phase == P.REPLICA_PHASE_RUNNING:
            return d
        return None

    d = await eventually(restarted)
    assert d.status.replica_statuses[0].id == victim.id
    assert d.status.replica_statuses[0].native_id != victim.native_id
    reasons = [e.reason for e in d.status.events]
    assert "Crashed" in reasons and "Restarted" in reasons
    crashed = next(e for e in d.status.events if e.reason == "Crashed")
    assert "SIGKILL" in crashed.message
    await eventually(lambda: _n_ready(registry_client, namespace, "svc", 1))


async def test_crash_loop_is_reported(api, registry_client, namespace):
    agent = echo_agent(namespace, agent_id="crasher", command=["sh", "-c", "echo boom >&2; exit 3"])
    await registry_client.register_agent(agent)
    await api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(namespace, "loop", agent_id="crasher", replicas=1)))

    d = await eventually(lambda: condition_true(api, namespace, "loop", "CrashLoopBackOff"))
    c = condition(d, "CrashLoopBackOff")
    assert "exited with code 3" in c.message and "boom" in c.message
    assert d.status.ready_replicas == 0
    assert d.status.replica_statuses[0].phase == P.REPLICA_PHASE_BACK_OFF


async def test_command_not_found_is_a_condition(api, registry_client, namespace):
    agent = echo_agent(namespace, agent_id="nope", command=["nope-no-such-command"])
    await registry_client.register_agent(agent)
    await api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(namespace, "missing", agent_id="nope", replicas=1)))

    d = await eventually(lambda: condition_true(api, namespace, "missing", "FailedToStart"))
    assert "command 'nope-no-such-command' not found" in condition(d, "FailedToStart").message
    assert any(e.reason == "FailedToStart" for e in d.status.events)


async def test_bad_input(api, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace))
    cases = [
        (deployment(namespace, "x", replicas=1001), grpc.StatusCode.INVALID_ARGUMENT, "spec.replicas"),
        (deployment(namespace, "x", replicas=-1), grpc.StatusCode.INVALID_ARGUMENT, "spec.replicas"),
        (deployment(namespace, "Bad_Name"), grpc.StatusCode.INVALID_ARGUMENT, "deployment.name"),
        (deployment(namespace, "x", agent_id="ghost"), grpc.StatusCode.NOT_FOUND, "ghost"),
        (deployment(namespace, "x", resources={"memory": "1Zi"}), grpc.StatusCode.INVALID_ARGUMENT,
         "spec.resources.memory"),
        (deployment(namespace, "x", strategy={"max_surge": "lots"}), grpc.StatusCode.INVALID_ARGUMENT,
         "spec.strategy.max_surge"),
        (deployment(namespace, "x", autoscale={"min_replicas": 3, "max_replicas": 2, "target_in_flight": 1}),
         grpc.StatusCode.INVALID_ARGUMENT, "spec.autoscale.max_replicas"),
    ]
    for d, code, text in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.CreateDeployment(P.CreateDeploymentRequest(deployment=d))
        assert err.value.code() == code, (text, err.value.details())
        assert text in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="absent", replicas=2))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # a process agent without a command cannot be deployed
    bare = echo_agent(namespace, agent_id="bare")
    del bare.config.fields["command"]
    await registry_client.register_agent(bare)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "y", agent_id="bare")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent.config.command" in err.value.details()


async def _n_ready(client, namespace, name, n):
    instances = await ready_instances(client, namespace, name)
    return instances if len(instances) == n else None


async def _status(api, namespace, name, *, ready, replicas=None):
    d = await get(api, namespace, name)
    if d.status.ready_replicas != ready:
        return None
    if replicas is not None and d.status.replicas != replicas:
        return None
    return d


async def test_apply_update_watch(api, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace))
    applied = await api.ApplyDeployment(P.ApplyDeploymentRequest(deployment=deployment(namespace, "w", replicas=0)))
    assert applied.created and applied.deployment.generation == 1
    again = await api.ApplyDeployment(P.ApplyDeploymentRequest(deployment=deployment(namespace, "w", replicas=0)))
    assert not again.created and again.deployment.generation == 1  # unchanged spec, same generation

    stream = api.WatchDeployments(P.WatchDeploymentsRequest(namespace=namespace, name="w", include_initial=True))
    first = await stream.read()
    assert first.type == P.DEPLOYMENT_EVENT_TYPE_PUT and first.deployment.name == "w"

    current = await get(api, namespace, "w")
    stale = deployment(namespace, "w", replicas=1)
    stale.resource_version = current.resource_version - 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.UpdateDeployment(P.UpdateDeploymentRequest(deployment=stale))
    assert err.value.code() == grpc.StatusCode.ABORTED  # a stale resource_version is a Conflict
    fresh = deployment(namespace, "w", replicas=1)
    fresh.resource_version = current.resource_version
    updated = await api.UpdateDeployment(P.UpdateDeploymentRequest(deployment=fresh))
    assert updated.deployment.generation == 2 and updated.deployment.spec.replicas == 1

    async def saw_replicas():
        while True:
            ev = await stream.read()
            if ev.deployment.spec.replicas == 1:
                return ev
    ev = await asyncio.wait_for(saw_replicas(), 10)
    assert ev.type == P.DEPLOYMENT_EVENT_TYPE_PUT
    stream.cancel()
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="w", wait=True))


async def _rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_scale_is_refused_while_deleting_or_autoscaled(api, registry_client, namespace):
    # a replica that ignores SIGTERM keeps the deletion pending for the stop grace (3 s)
    stubborn = echo_agent(namespace, agent_id="stubborn", command=["sh", "-c", "trap '' TERM; exec sleep 60"])
    await registry_client.register_agent(stubborn)
    await api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(namespace, "going", agent_id="stubborn", replicas=1)))

    async def started():
        d = await get(api, namespace, "going")
        return d if any(r.native_id for r in d.status.replica_statuses) else None

    await eventually(started)
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="going"))
    err = await _rpc_error(api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="going",
                                                                         replicas=3)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert "is being deleted" in err.details()
    err = await _rpc_error(api.ApplyDeployment(P.ApplyDeploymentRequest(
        deployment=deployment(namespace, "going", agent_id="stubborn", replicas=3))))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "is being deleted" in err.details()

    await registry_client.register_agent(echo_agent(namespace))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(
        namespace, "auto", replicas=1, autoscale={"min_replicas": 1, "max_replicas": 3, "target_in_flight": 2})))
    err = await _rpc_error(api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="auto",
                                                                         replicas=2)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert "autoscaled between 1 and 3 replicas" in err.details()
    assert "spec.autoscale" in err.details() and "remove spec.autoscale" in err.details()
    assert (await get(api, namespace, "auto")).spec.replicas == 1


async def test_fixed_port_and_container_memory_are_checked_at_apply(api, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace, agent_id="pinned", port=free_port("127.0.0.1")))
    no_surge = P.DeploymentStrategy(max_surge="0", max_unavailable="1")
    for d, text in [
        (deployment(namespace, "p", agent_id="pinned", replicas=2, strategy=no_surge), "replicas is 2"),
        (deployment(namespace, "p", agent_id="pinned", replicas=1), "max_surge: 0 and max_unavailable: 1"),
    ]:
        err = await _rpc_error(api.ApplyDeployment(P.ApplyDeploymentRequest(deployment=d)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert "agent.config.port" in err.details() and text in err.details()
    await api.ApplyDeployment(P.ApplyDeploymentRequest(
        deployment=deployment(namespace, "p", agent_id="pinned", replicas=1, strategy=no_surge)))
    err = await _rpc_error(api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="p", replicas=2)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "agent.config.port" in err.details()
    assert (await get(api, namespace, "p")).spec.replicas == 1
    err = await _rpc_error(api.ApplyDeployment(P.ApplyDeploymentRequest(
        deployment=deployment(namespace, "p", agent_id="pinned", replicas=1, strategy={"max_surge": "0",
                                                                                     "max_unavailable": "0"}))))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "spec.strategy" in err.details()

    box = registry_pb2.Agent(id="box", namespace=namespace, type="echo", version="1.0.0", runtime="container",
                             config=to_struct({"image": "sutradhar-echo:1"}))
    await registry_client.register_agent(box)
    err = await _rpc_error(api.ApplyDeployment(P.ApplyDeploymentRequest(
        deployment=deployment(namespace, "b", agent_id="box", replicas=1, resources={"memory": "5Mi"}))))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "spec.resources.memory" in err.details() and "6Mi" in err.details()
