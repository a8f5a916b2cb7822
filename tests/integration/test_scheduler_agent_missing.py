"""A deployment whose agent is deleted (`agents delete --force`) while its
replicas run, against a real etcd, registry and child processes: one clear
ReplicaFailure/AgentNotFound condition, the replicas stopped (they cannot be
registered) without being counted as crashes or backing off, and recovery
once the agent is registered again."""

from __future__ import annotations

import asyncio

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
    run_cli,
    scheduler,
)

from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest


async def _ready(api, namespace, name, n):
    d = await get(api, namespace, name)
    s = d.status
    running = [r for r in s.replica_statuses if r.phase == P.REPLICA_PHASE_RUNNING]
    return d if s.ready_replicas == n and s.replicas == n and len(running) == n else None


async def test_deleted_agent_is_one_condition_not_a_crash_loop(api, registry, scheduler, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "orphan", replicas=2)))
    d = await eventually(lambda: _ready(api, namespace, "orphan", 2))
    revision, version = d.status.current_revision, d.status.current_version
    pids = [int(r.native_id) for r in d.status.replica_statuses]

    await registry_client.deregister_agent("echo", namespace=namespace, force=True)

    async def stopped():
        d = await condition_true(api, namespace, "orphan", "ReplicaFailure")
        if d is None or d.status.replicas or any(pid_alive(p) for p in pids):
            return None
        return d

    await eventually(stopped)
    # longer than the keep-alive period (instance TTL / 3) and the back-off: whatever
    # would count a crash, back off or restart has had its chance
    await asyncio.sleep(3)
    d = await get(api, namespace, "orphan")
    failure = condition(d, "ReplicaFailure")
    assert failure.reason == "AgentNotFound"
    assert failure.message == (
        f"agent 'echo' is not registered in namespace '{namespace}'; register it again "
        "(sutradhar deploy -f / agents register) or undeploy")
    assert condition(d, "CrashLoopBackOff").status == P.CONDITION_STATUS_FALSE
    assert condition(d, "FailedToStart").status == P.CONDITION_STATUS_FALSE
    assert "next restart" not in " ".join(c.message for c in d.status.conditions)
    progressing = condition(d, "Progressing")
    assert progressing.reason == "AgentNotFound"
    assert "revision  " not in progressing.message and "(version )" not in progressing.message
    assert "'echo'" in progressing.message
    assert (d.status.current_revision, d.status.current_version) == (revision, version)
    assert list(d.status.replica_statuses) == []
    reasons = [e.reason for e in d.status.events]
    assert "Crashed" not in reasons and "Restarted" not in reasons, reasons
    stops = [e for e in d.status.events if e.reason == "Stopped"]
    assert len(stops) == 2 and all("agent 'echo' is not registered" in e.message for e in stops), stops
    assert await ready_instances(registry_client, namespace, "orphan") == []

    code, out = await run_cli(registry, scheduler, "deployments", "get", "orphan", "-n", namespace)
    assert code == 0, out
    assert "AgentNotFound" in out and "revision  (version )" not in out and "next restart" not in out

    # registered again: the deployment recovers on its own
    await registry_client.register_agent(echo_agent(namespace))
    d = await eventually(lambda: _ready(api, namespace, "orphan", 2))
    assert condition(d, "ReplicaFailure").status == P.CONDITION_STATUS_FALSE
    assert condition(d, "Progressing").reason == "NewReplicaSetAvailable"
    assert len(await ready_instances(registry_client, namespace, "orphan")) == 2
    assert all(r.restarts == 0 for r in d.status.replica_statuses)
