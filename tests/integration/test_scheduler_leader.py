"""Restarts and failover: a restarted scheduler adopts its replicas, two
schedulers elect one leader, and a SIGKILLed leader is replaced within one
lease TTL without duplicating replicas."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import grpc
from test_scheduler_support import (
    SchedulerProcess,
    current_leader,
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
    wait_leader,
)

from sutradhar.services.scheduler.server import SchedulerServer
from sutradhar.v1 import scheduler_pb2 as P
from sutradhar.v1 import scheduler_pb2_grpc

__all__ = ["namespace", "registry", "registry_client"]  # fixtures imported for pytest


async def _ready(api, namespace, name, n):
    d = await get(api, namespace, name)
    return d if d.status.ready_replicas == n and d.status.replicas == n else None


async def test_restarted_scheduler_adopts_instead_of_duplicating(etcd, registry, registry_client, namespace,
                                                                  tmp_path):
    state = tmp_path / "state"
    await registry_client.register_agent(echo_agent(namespace))
    first = SchedulerServer(fast_config(etcd, registry.address, state))
    await first.start()
    second = None
    try:
        await wait_leader(first)
        async with grpc.aio.insecure_channel(first.address) as channel:
            api = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "keep")))
            await eventually(lambda: _ready(api, namespace, "keep", 2))
        pids = recorded_pids(state, namespace)
        instance_ids = {i.id for i in await ready_instances(registry_client, namespace, "keep")}
        assert len(pids) == 2 and len(instance_ids) == 2
        await first.stop(timedelta(seconds=1))  # resigns; replicas keep running
        assert all(pid_alive(p) for p in pids)

        second = SchedulerServer(fast_config(etcd, registry.address, state))
        await second.start()
        await wait_leader(second)
        async with grpc.aio.insecure_channel(second.address) as channel:
            api = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            d = await eventually(lambda: _adopted(api, namespace, "keep", 2))
            assert not any(e.reason == "Started" for e in d.status.events[-4:])
            # hold a while: nothing new is started, the same processes serve
            await asyncio.sleep(1.0)
            assert recorded_pids(state, namespace) == pids
            assert {i.id for i in await ready_instances(registry_client, namespace, "keep")} == instance_ids
            await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="keep", wait=True))
        assert not any(pid_alive(p) for p in pids)
    finally:
        await first.stop(timedelta(seconds=1))
        if second is not None:
            await second.stop(timedelta(seconds=1))
        kill_recorded(state)


async def test_one_leader_and_failover_within_one_ttl(etcd, store, registry, registry_client, namespace, tmp_path):
    ttl = 2.0
    state = tmp_path / "state"
    await registry_client.register_agent(echo_agent(namespace))
    procs = [SchedulerProcess(etcd, registry.address, state, f"m{i}-{namespace}", election_ttl=ttl) for i in range(2)]
    try:
        for p in procs:
            await p.wait_listening()
        leader_id = await eventually(lambda: current_leader(store))
        assert leader_id in {p.member_id for p in procs}
        leader = next(p for p in procs if p.member_id == leader_id)
        follower = next(p for p in procs if p is not leader)

        async with grpc.aio.insecure_channel(follower.address) as channel:
            api = scheduler_pb2_grpc.SchedulerServiceStub(channel)  # any replica serves the API
            await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "ha")))
            await eventually(lambda: _ready(api, namespace, "ha", 2))
            pids = recorded_pids(state, namespace)
            assert len(pids) == 2
            instance_ids = {i.id for i in await ready_instances(registry_client, namespace, "ha")}

            killed_at = time.monotonic()
            leader.kill()
            await eventually(lambda: _is(current_leader(store), follower.member_id), within=ttl + 3, period=0.02)
            takeover = time.monotonic() - killed_at
            # one TTL, plus etcd's 500 ms lease-expiry tick and a loaded machine's scheduling slack
            assert takeover <= ttl + 1.0, f"takeover took {takeover:.2f}s with a {ttl}s TTL"

            # the new leader adopted: same processes, same instances, still registered after the old
            # leader's keep-alives stopped (instance TTL 6 s)
            await asyncio.sleep(6.5)
            assert recorded_pids(state, namespace) == pids
            assert all(pid_alive(p) for p in pids)
            assert {i.id for i in await ready_instances(registry_client, namespace, "ha")} == instance_ids

            await api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="ha", replicas=3))
            await eventually(lambda: _ready(api, namespace, "ha", 3))
            assert len(recorded_pids(state, namespace)) == 3
            await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="ha", wait=True))
    finally:
        for p in procs:
            p.kill()
        kill_recorded(state)


async def _is(value, expected):
    return (await value) == expected


async def _adopted(api, namespace, name, n):
    d = await _ready(api, namespace, name, n)
    return d if d is not None and sum(e.reason == "Adopted" for e in d.status.events) >= n else None


async def test_stop_replicas_after_the_scheduler_leaves_nothing(etcd, registry, registry_client, namespace,
                                                               tmp_path):
    """What `sutradhar down` runs once the scheduler has stopped: no replica outlives the mesh."""
    import subprocess
    import sys

    state = tmp_path / "state"
    await registry_client.register_agent(echo_agent(namespace))
    server = SchedulerServer(fast_config(etcd, registry.address, state))
    await server.start()
    try:
        await wait_leader(server)
        async with grpc.aio.insecure_channel(server.address) as channel:
            api = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "gone")))
            await eventually(lambda: _ready(api, namespace, "gone", 2))
    finally:
        await server.stop(timedelta(seconds=1))
    pids = recorded_pids(state, namespace)
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)  # a stopped scheduler leaves them for adoption
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sutradhar.services.scheduler", "--insecure", "--stop-replicas", "--state-dir",
            str(state),
        "--etcd", etcd, "--stop-grace", "3", stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert b"stopped 2 replica(s)" in err
    await eventually(lambda: _none_alive(pids), within=5)
    assert recorded_pids(state, namespace) == set()


async def _none_alive(pids):
    return not any(pid_alive(p) for p in pids)


async def test_replicas_register_once_the_registry_comes_back(etcd, registry_client, namespace, tmp_path):
    from sutradhar.services.common.etcd_server import free_port
    from sutradhar.services.registry import RegistryConfig, RegistryServer

    await registry_client.register_agent(echo_agent(namespace))
    port = free_port()
    server = SchedulerServer(fast_config(etcd, f"127.0.0.1:{port}", tmp_path / "state"))  # registry not up yet
    await server.start()
    late = None
    try:
        await wait_leader(server)
        async with grpc.aio.insecure_channel(server.address) as channel:
            api = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "late", replicas=1)))

            async def waiting():
                d = await get(api, namespace, "late")
                rs = d.status.replica_statuses
                return d if rs and "registering instance" in rs[0].message else None

            d = await eventually(waiting)
            assert d.status.ready_replicas == 0 and d.status.replica_statuses[0].phase == P.REPLICA_PHASE_STARTING
            late = RegistryServer(RegistryConfig(insecure=True, port=port, etcd=etcd))
            await late.start()
            await eventually(lambda: _ready(api, namespace, "late", 1))
            assert len(await ready_instances(registry_client, namespace, "late")) == 1
            await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="late", wait=True))
    finally:
        await server.stop(timedelta(seconds=1))
        if late is not None:
            await late.stop()
        kill_recorded(tmp_path / "state")
