"""Rolling updates under load through the real router: no failed call, both
versions serve during the rollout, undo returns to the previous revision, and
a scheduler SIGKILLed mid-rollout is succeeded by one that finishes it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from test_scheduler_support import (
    ECHO_COMMAND,
    SchedulerProcess,
    api,
    deployment,
    echo_agent,
    eventually,
    fast_config,
    get,
    kill_recorded,
    namespace,
    pid_alive,
    ready_instances,
    recorded_pids,
    registry,
    registry_client,
    scheduler,
    wait_leader,
)

from sutradhar._clients import RouterClient
from sutradhar.services.common.etcd_server import free_port
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.services.scheduler.server import SchedulerServer
from sutradhar.v1 import scheduler_pb2 as P
from sutradhar.v1 import scheduler_pb2_grpc

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest

STRATEGY = P.DeploymentStrategy(max_surge="1", max_unavailable="0")


@pytest.fixture
async def router(etcd, registry) -> AsyncIterator[RouterServer]:
    server = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address, etcd=None))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _rolled(api, namespace, name, n, version):
    d = await get(api, namespace, name)
    s = d.status
    if s.current_version == version and s.updated_replicas == n and s.ready_replicas == n and s.replicas == n:
        return d
    return None


async def _versions(registry_client, namespace, name):
    return sorted(i.version for i in await ready_instances(registry_client, namespace, name))


async def test_rolling_update_under_load_and_undo(api, registry_client, router, namespace):
    await registry_client.register_agent(echo_agent(namespace, version="1.0.0"))
    await api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(namespace, "roll", replicas=3, strategy=STRATEGY)))
    await eventually(lambda: _rolled(api, namespace, "roll", 3, "1.0.0"))
    await eventually(lambda: _count(_versions(registry_client, namespace, "roll"), 3))

    calls = failures = 0
    errors: list[str] = []
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal calls, failures
        async with RouterClient(router.address) as client:
            while not stop.is_set():
                calls += 1
                try:
                    result = await client.execute("echo", {"i": calls}, namespace=namespace,
                                                  timeout=timedelta(seconds=5))
                    if not result.success:
                        failures += 1
                        errors.append(str(result.error))
                except Exception as err:
                    failures += 1
                    errors.append(f"{time.time():.3f} {err!r}")

    seen: set[tuple[str, ...]] = set()

    async def observe() -> None:
        while not stop.is_set():
            seen.add(tuple(sorted(set(await _versions(registry_client, namespace, "roll")))))
            await asyncio.sleep(0.05)

    workers = [asyncio.create_task(load()) for _ in range(4)] + [asyncio.create_task(observe())]
    try:
        await asyncio.sleep(0.5)
        await registry_client.update_agent(echo_agent(namespace, version="1.1.0"))
        await eventually(lambda: _rolled(api, namespace, "roll", 3, "1.1.0"), within=40)
        await eventually(lambda: _equal(_versions(registry_client, namespace, "roll"), ["1.1.0"] * 3))
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert calls > 50
    assert failures == 0, errors[:5]
    assert ("1.0.0", "1.1.0") in seen  # both versions served at once

    d = await get(api, namespace, "roll")
    assert [r.version for r in d.status.revisions] == ["1.0.0", "1.1.0"]
    undone = await api.UndoRollout(P.UndoRolloutRequest(namespace=namespace, name="roll"))
    assert undone.agent.version == "1.0.0"
    d = await eventually(lambda: _rolled(api, namespace, "roll", 3, "1.0.0"), within=40)
    assert d.status.current_revision == d.status.revisions[-1].revision
    await eventually(lambda: _equal(_versions(registry_client, namespace, "roll"), ["1.0.0"] * 3))

    # pause holds a rollout where it is; resume finishes it
    await api.PauseRollout(P.PauseRolloutRequest(namespace=namespace, name="roll"))
    await registry_client.update_agent(echo_agent(namespace, version="1.2.0"))
    await asyncio.sleep(1.0)
    d = await get(api, namespace, "roll")
    assert d.status.updated_replicas <= 1  # at most the one surge replica was in flight
    assert any(c.type == "Paused" and c.status == P.CONDITION_STATUS_TRUE for c in d.status.conditions)
    await api.ResumeRollout(P.ResumeRolloutRequest(namespace=namespace, name="roll"))
    await eventually(lambda: _rolled(api, namespace, "roll", 3, "1.2.0"), within=40)


async def test_scheduler_killed_mid_rollout_resumes(etcd, store, registry, registry_client, namespace, tmp_path):
    state = tmp_path / "state"
    await registry_client.register_agent(echo_agent(namespace, version="1.0.0"))
    first = SchedulerProcess(etcd, registry.address, state, f"a-{namespace}")
    second = None
    try:
        await first.wait_listening()
        async with grpc.aio.insecure_channel(first.address) as channel:
            api1 = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await api1.CreateDeployment(P.CreateDeploymentRequest(
                deployment=deployment(namespace, "mid", replicas=3, strategy=STRATEGY)))
            await eventually(lambda: _rolled(api1, namespace, "mid", 3, "1.0.0"))
            old_pids = recorded_pids(state, namespace)
            # the new version takes about a second to become ready, so the rollout is caught midway
            slow = ["sh", "-c", "sleep 1; exec " + " ".join(ECHO_COMMAND)]
            await registry_client.update_agent(echo_agent(namespace, version="2.0.0", command=slow))
            await eventually(lambda: _midway(api1, namespace, "mid"))
        first.kill()

        second = SchedulerServer(fast_config(etcd, registry.address, state))
        await second.start()
        await wait_leader(second)
        async with grpc.aio.insecure_channel(second.address) as channel:
            api2 = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await eventually(lambda: _rolled(api2, namespace, "mid", 3, "2.0.0"), within=40)
            await eventually(lambda: _equal(_versions(registry_client, namespace, "mid"), ["2.0.0"] * 3))
            assert len(recorded_pids(state, namespace)) == 3
            assert not any(pid_alive(p) for p in old_pids)
            await api2.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="mid", wait=True))
    finally:
        first.kill()
        if second is not None:
            await second.stop(timedelta(seconds=1))
        kill_recorded(state)


async def _midway(api, namespace, name):
    d = await get(api, namespace, name)
    revisions = {r.revision for r in d.status.replica_statuses}
    return d if len(revisions) == 2 else None


async def _count(values, n):
    return len(await values) == n


async def _equal(values, expected):
    return (await values) == expected




async def test_fixed_port_agent_rolls_by_stopping_the_old_replica_first(api, registry_client, namespace):
    port = free_port("127.0.0.1")
    await registry_client.register_agent(echo_agent(namespace, version="1.0.0", port=port))
    await api.ApplyDeployment(P.ApplyDeploymentRequest(deployment=deployment(
        namespace, "pinned", replicas=1, strategy=P.DeploymentStrategy(max_surge="0", max_unavailable="1"))))
    await eventually(lambda: _rolled(api, namespace, "pinned", 1, "1.0.0"))
    await registry_client.update_agent(echo_agent(namespace, version="1.1.0", port=port))
    d = await eventually(lambda: _rolled(api, namespace, "pinned", 1, "1.1.0"), within=30)
    assert d.status.replica_statuses[0].endpoint == f"127.0.0.1:{port}"
    # the new replica waited for the old one to free the port instead of failing to bind it
    assert not [e.message for e in d.status.events if e.reason == "FailedToStart"]
    assert [i.version for i in await ready_instances(registry_client, namespace, "pinned")] == ["1.1.0"]


async def test_agent_gaining_a_fixed_port_is_a_condition_and_runs_one_replica(api, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace, version="1.0.0"))
    await api.ApplyDeployment(P.ApplyDeploymentRequest(deployment=deployment(namespace, "grow", replicas=2)))
    await eventually(lambda: _rolled(api, namespace, "grow", 2, "1.0.0"))
    port = free_port("127.0.0.1")
    await registry_client.update_agent(echo_agent(namespace, version="1.1.0", port=port))

    async def failure():
        d = await get(api, namespace, "grow")
        c = next((c for c in d.status.conditions if c.type == "ReplicaFailure"), None)
        return d if c is not None and c.status == P.CONDITION_STATUS_TRUE and c.reason == "FixedPort" else None

    d = await eventually(failure)
    c = next(c for c in d.status.conditions if c.type == "ReplicaFailure")
    assert "agent.config.port" in c.message and "replicas is 2" in c.message
    d = await eventually(lambda: _rolled(api, namespace, "grow", 1, "1.1.0"), within=30)
    assert d.status.replica_statuses[0].endpoint == f"127.0.0.1:{port}"


async def test_two_versions_serve_at_once_and_weighted_routing_splits_them(api, registry_client, router, namespace):
    """A canary as docs/scheduler.md describes it: two agents of one type at two
    versions, each deployed; the router's weighted strategy splits tasks 90/10."""
    from sutradhar.v1 import routing_pb2

    stable = echo_agent(namespace, "tutor", version="1.4.0")
    stable.routing.CopyFrom(routing_pb2.RoutingPolicy(strategy="weighted", weight=90))
    canary = echo_agent(namespace, "tutor-canary", version="1.5.0")
    canary.routing.CopyFrom(routing_pb2.RoutingPolicy(strategy="weighted", weight=10))
    for agent in (stable, canary):
        await registry_client.register_agent(agent)
        await api.CreateDeployment(P.CreateDeploymentRequest(
            deployment=deployment(namespace, agent.id, agent.id, replicas=2)))
    await eventually(lambda: _rolled(api, namespace, "tutor", 2, "1.4.0"))
    await eventually(lambda: _rolled(api, namespace, "tutor-canary", 2, "1.5.0"))
    served: dict[str, int] = {}
    async with RouterClient(router.address) as client:
        async def routable() -> bool:
            try:
                await client.execute("echo", 1, namespace=namespace, version_range="1.5.0", timeout=5)
                await client.execute("echo", 1, namespace=namespace, version_range="1.4.0", timeout=5)
            except Exception:
                return False
            return True

        await eventually(routable)
        for i in range(100):
            result = await client.execute("echo", {"i": i}, namespace=namespace, timeout=5)
            assert result.success
            served[result.metadata.agent_version] = served.get(result.metadata.agent_version, 0) + 1
    assert served == {"1.4.0": 90, "1.5.0": 10}, served  # smooth weighted round-robin: exact over 100 calls
