"""The health service against real instances: gRPC health servers written here
(healthy, failing, hanging, slow, dead, back), an SDK agent whose
check_health() flips, the stdlib HTTP echo agent as a child process, a TCP
listener, real etcd. Periods are 250 ms so each case takes a few seconds.

End-to-end bounds from issue 4: an instance that starts failing is
NOT_SERVING within period x failure_threshold + 1 s, and SERVING again within
period x success_threshold + 1 s of recovering.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from test_health_support import (
    DRAINING,
    FAIL_BOUND,
    FAILURES,
    NOT_SERVING,
    PERIOD,
    RECOVER_BOUND,
    SERVING,
    HealthEndpoint,
    endpoint,
    health,
    health_stub,
    is_state,
    probe_spec,
    put_agent,
    put_instance,
    readiness_passing,
    stored,
    wait_for,
)

from sutradhar import Agent
from sutradhar.services.common import keys
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.testing import run_agent, spawn_agent
from sutradhar.v1 import health_pb2, registry_pb2

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["endpoint", "health", "health_stub"]  # fixtures used by name


# -- the cases ----------------------------------------------------------------


async def test_grpc_instance_fails_and_recovers_within_bounds(store, unique, health, endpoint):
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc"))
    lease = await put_instance(store, ns, "i1", "echo", endpoint.address)
    try:
        await wait_for(store, ns, "i1", lambda i: readiness_passing(i) and i.health.prober == health.member_id, 3)
        endpoint.servicer.mode = "fail"
        took = await wait_for(store, ns, "i1", is_state(NOT_SERVING), FAIL_BOUND + 1)
        assert took <= FAIL_BOUND, f"NOT_SERVING after {took:.2f}s (bound {FAIL_BOUND}s)"
        inst = await stored(store, ns, "i1")
        assert inst.health.readiness.result == registry_pb2.PROBE_RESULT_FAILURE
        assert inst.health.readiness.consecutive_failures >= FAILURES
        assert "NOT_SERVING" in inst.health.readiness.last_message
        endpoint.servicer.mode = "ok"
        took = await wait_for(store, ns, "i1", is_state(SERVING), RECOVER_BOUND + 1)
        assert took <= RECOVER_BOUND, f"SERVING after {took:.2f}s (bound {RECOVER_BOUND}s)"
        kv = await store.get(keys.instance_key(ns, "i1"))
        assert kv.lease == lease, "the health service must keep the instance's lease"
    finally:
        await store.revoke_lease(lease)


async def test_hanging_probe_times_out_and_slow_one_within_timeout_passes(store, unique, health, endpoint):
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc"))
    lease = await put_instance(store, ns, "i1", "echo", endpoint.address)
    try:
        await wait_for(store, ns, "i1", readiness_passing, 3)
        endpoint.servicer.mode, endpoint.servicer.delay = "slow", 0.06
        await asyncio.sleep(PERIOD * 5)
        inst = await stored(store, ns, "i1")
        assert inst.state == SERVING
        assert inst.health.readiness.last_latency.ToTimedelta() >= timedelta(milliseconds=50)
        endpoint.servicer.mode = "hang"
        # A hanging probe fails at its timeout (0.15 s), after its period tick.
        took = await wait_for(store, ns, "i1", is_state(NOT_SERVING), FAIL_BOUND + 1)
        assert took <= FAIL_BOUND + 0.15
        inst = await stored(store, ns, "i1")
        assert "timed out" in inst.health.readiness.last_message
        endpoint.servicer.mode = "ok"
        await wait_for(store, ns, "i1", is_state(SERVING), RECOVER_BOUND + 0.2)
    finally:
        await store.revoke_lease(lease)


async def test_dead_instance_is_not_serving_and_back_when_restarted(store, unique, health, endpoint):
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc"))
    lease = await put_instance(store, ns, "i1", "echo", endpoint.address)
    try:
        await wait_for(store, ns, "i1", readiness_passing, 3)
        await endpoint.stop()
        took = await wait_for(store, ns, "i1", is_state(NOT_SERVING), FAIL_BOUND + 1)
        assert took <= FAIL_BOUND
        assert "UNAVAILABLE" in (await stored(store, ns, "i1")).health.readiness.last_message
        await asyncio.sleep(1.5)  # dead for a while: no reconnect back-off may delay recovery
        await endpoint.start()  # same port
        took = await wait_for(store, ns, "i1", is_state(SERVING), RECOVER_BOUND + 1)
        assert took <= RECOVER_BOUND
    finally:
        await store.revoke_lease(lease)


async def test_http_agent_flips_unhealthy_recovers_and_dies(store, unique, health):
    ns = unique
    agent = spawn_agent([sys.executable, str(ROOT / "examples" / "http_echo_agent.py"), "--port", "0"])
    url = f"http://{agent.address}"
    await put_agent(store, ns, "web", runtime="http", readiness=probe_spec())
    lease = await put_instance(store, ns, "w1", "web", url, runtime="http")
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            await wait_for(store, ns, "w1",
                           readiness_passing, 3)
            await client.post(f"{url}/admin/health", json={"healthy": False})
            took = await wait_for(store, ns, "w1", is_state(NOT_SERVING), FAIL_BOUND + 1)
            assert took <= FAIL_BOUND
            assert "HTTP 503" in (await stored(store, ns, "w1")).health.readiness.last_message
            await client.post(f"{url}/admin/health", json={"healthy": True})
            took = await wait_for(store, ns, "w1", is_state(SERVING), RECOVER_BOUND + 1)
            assert took <= RECOVER_BOUND
        agent.proc.kill()
        agent.wait()
        took = await wait_for(store, ns, "w1", is_state(NOT_SERVING), FAIL_BOUND + 1)
        assert took <= FAIL_BOUND
    finally:
        agent.__exit__()
        await store.revoke_lease(lease)


async def test_tcp_probe(store, unique, health):
    ns = unique

    async def accept(reader, writer):
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await put_agent(store, ns, "raw", readiness=probe_spec("tcp"))
    lease = await put_instance(store, ns, "r1", "raw", f"127.0.0.1:{port}")
    try:
        await wait_for(store, ns, "r1", readiness_passing, 3)
        server.close()
        await server.wait_closed()
        took = await wait_for(store, ns, "r1", is_state(NOT_SERVING), FAIL_BOUND + 1)
        assert took <= FAIL_BOUND
    finally:
        server.close()
        await store.revoke_lease(lease)


async def test_liveness_failure_requests_restart_and_is_streamed(store, unique, health, health_stub, endpoint):
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc"),
                    liveness=probe_spec("grpc", successThreshold=1, failureThreshold=2))
    stream = health_stub.WatchHealth(
        health_pb2.WatchHealthRequest(namespace=ns, agent_id="echo", include_current=True))
    synced = await stream.read()  # nothing exists yet: SYNCED comes first
    assert synced.event.type == health_pb2.HEALTH_EVENT_TYPE_SYNCED
    lease = await put_instance(store, ns, "i1", "echo", endpoint.address)
    try:
        await wait_for(store, ns, "i1", lambda i: i.health.liveness.result == registry_pb2.PROBE_RESULT_SUCCESS, 3)
        assert not (await stored(store, ns, "i1")).health.restart_requested
        endpoint.servicer.mode = "fail"
        await wait_for(store, ns, "i1", lambda i: i.health.restart_requested, PERIOD * 2 + 1)
        seen: list[int] = []
        async with asyncio.timeout(5):
            while True:
                reply = await stream.read()
                seen.append(reply.event.type)
                if reply.event.type == health_pb2.HEALTH_EVENT_TYPE_RESTART_REQUESTED:
                    assert reply.event.instance_id == "i1" and reply.event.probe == "liveness"
                    break
        assert health_pb2.HEALTH_EVENT_TYPE_INSTANCE_ADDED in seen
        assert health_pb2.HEALTH_EVENT_TYPE_PROBE_FAILED in seen
    finally:
        stream.cancel()
        await store.revoke_lease(lease)


async def test_vanished_instance_is_not_recreated(store, unique, health, endpoint):
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc"))
    lease = await put_instance(store, ns, "i1", "echo", endpoint.address)
    await wait_for(store, ns, "i1", lambda i: i.health.prober == health.member_id, 3)
    await store.revoke_lease(lease)  # as when the instance's lease lapses
    calls = endpoint.servicer.calls
    await asyncio.sleep(PERIOD * 4 + 1.2)  # past a flush interval
    assert await stored(store, ns, "i1") is None
    assert endpoint.servicer.calls <= calls + 1
    assert keys.instance_key(ns, "i1") not in health.manager.targets


async def test_drain_enable_aggregate_and_watch(store, unique, health, health_stub, endpoint):
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc"))
    other = HealthEndpoint()
    await other.start()
    other.servicer.mode = "fail"
    leases = [await put_instance(store, ns, "i1", "echo", endpoint.address),
              await put_instance(store, ns, "i2", "echo", other.address)]
    try:
        await wait_for(store, ns, "i1", readiness_passing, 3)
        await wait_for(store, ns, "i2", is_state(NOT_SERVING), FAIL_BOUND + 1)
        reply = await health_stub.GetAgentHealth(health_pb2.GetAgentHealthRequest(namespace=ns, agent_id="echo"))
        h = reply.health
        assert h.status == health_pb2.AGENT_HEALTH_STATUS_DEGRADED
        assert (h.total, h.serving, h.not_serving) == (2, 1, 1)
        assert [i.id for i in h.instances] == ["i1", "i2"]

        stream = health_stub.WatchHealth(health_pb2.WatchHealthRequest(namespace=ns, include_current=True))
        first = [await stream.read(), await stream.read(), await stream.read()]
        assert [e.event.type for e in first] == [health_pb2.HEALTH_EVENT_TYPE_CURRENT] * 2 + [
            health_pb2.HEALTH_EVENT_TYPE_SYNCED]
        assert {e.event.instance_id: e.event.state for e in first[:2]} == {"i1": SERVING, "i2": NOT_SERVING}

        drained = await health_stub.DrainInstance(health_pb2.DrainInstanceRequest(namespace=ns, instance_id="i1"))
        assert drained.instance.drained and drained.instance.state == DRAINING
        # Probes keep passing, but the drain holds.
        await asyncio.sleep(PERIOD * 4)
        inst = await stored(store, ns, "i1")
        assert inst.drained and inst.state == DRAINING
        assert inst.health.readiness.result == registry_pb2.PROBE_RESULT_SUCCESS
        types = []
        async with asyncio.timeout(3):
            while health_pb2.HEALTH_EVENT_TYPE_STATE_CHANGED not in types:
                ev = (await stream.read()).event
                types.append(ev.type)
        assert health_pb2.HEALTH_EVENT_TYPE_DRAINED in types
        h = (await health_stub.GetAgentHealth(health_pb2.GetAgentHealthRequest(namespace=ns, agent_id="echo"))).health
        assert h.status == health_pb2.AGENT_HEALTH_STATUS_UNHEALTHY and h.draining == 1

        enabled = await health_stub.EnableInstance(health_pb2.EnableInstanceRequest(namespace=ns, instance_id="i1"))
        assert not enabled.instance.drained and enabled.instance.state == SERVING
        # Enabling a failing instance restores NOT_SERVING, not SERVING.
        await health_stub.DrainInstance(health_pb2.DrainInstanceRequest(namespace=ns, instance_id="i2"))
        back = await health_stub.EnableInstance(health_pb2.EnableInstanceRequest(namespace=ns, instance_id="i2"))
        assert back.instance.state == NOT_SERVING
        stream.cancel()

        listed = await health_stub.ListAgentHealth(health_pb2.ListAgentHealthRequest(namespace=ns))
        assert [(a.agent_id, a.total) for a in listed.agents] == [("echo", 2)]
        members = await health_stub.ListMembers(health_pb2.ListMembersRequest())
        assert health.member_id in [m.id for m in members.members]

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_stub.DrainInstance(health_pb2.DrainInstanceRequest(namespace=ns, instance_id="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_stub.GetInstanceHealth(health_pb2.GetInstanceHealthRequest(namespace="Bad_NS",
                                                                                    instance_id="i1"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        for lease in leases:
            await store.revoke_lease(lease)
        await other.stop()


class FlakyAgent(Agent):
    """An SDK agent whose check_health() answers what the test says."""

    id = "flaky"
    type = "flaky"
    version = "1.0.0"

    def __init__(self) -> None:
        self.healthy = True

    async def execute(self, task):
        return {"ok": True}

    async def check_health(self) -> bool:
        return self.healthy


async def test_sdk_agent_check_health_drives_readiness(store, unique, health):
    ns = unique
    agent = FlakyAgent()
    poll = 0.05  # how often the SDK server calls check_health()
    async with run_agent(agent, health_period=timedelta(seconds=poll)) as address:
        await put_agent(store, ns, "flaky", readiness=probe_spec())
        lease = await put_instance(store, ns, "f1", "flaky", address)
        try:
            await wait_for(store, ns, "f1", readiness_passing, 3)
            agent.healthy = False
            took = await wait_for(store, ns, "f1", is_state(NOT_SERVING), FAIL_BOUND + poll + 1)
            assert took <= FAIL_BOUND + poll
            agent.healthy = True
            took = await wait_for(store, ns, "f1", is_state(SERVING), RECOVER_BOUND + poll + 1)
            assert took <= RECOVER_BOUND + poll
        finally:
            await store.revoke_lease(lease)


async def test_steady_probes_are_not_written_one_by_one(store, unique, health, endpoint):
    """Eight passing probes in two seconds cost at most the periodic flushes
    (flush interval 1 s in these tests), not a write per probe."""
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc", timeout="1s"))  # no spurious flips
    lease = await put_instance(store, ns, "i1", "echo", endpoint.address)
    try:
        await wait_for(store, ns, "i1", lambda i: readiness_passing(i) and i.health.prober == health.member_id, 3)
        calls = endpoint.servicer.calls
        start = await store.revision()
        await asyncio.sleep(2.0)
        probes = endpoint.servicer.calls - calls
        end = await store.revision()
        seen: list[int] = []

        async def collect() -> None:
            async for ev in store.watch(keys.instance_key(ns, "i1"), start_revision=start + 1):
                seen.append(ev.revision)

        replay = asyncio.create_task(collect())
        await asyncio.sleep(0.5)  # the watch replays the past at once
        replay.cancel()
        await asyncio.gather(replay, return_exceptions=True)
        writes = len([r for r in seen if r <= end])
        assert probes >= 6
        assert 1 <= writes <= 3, f"{writes} writes for {probes} probes"
        inst = await stored(store, ns, "i1")
        assert inst.health.readiness.consecutive_successes >= 4  # the flushed count keeps growing
    finally:
        await store.revoke_lease(lease)


async def test_probe_spec_changes_apply_to_running_instances(store, unique, health, endpoint):
    """The member follows agent definitions: a disabled readiness probe sends
    nothing; enabling it with a short period starts probing at once."""
    ns = unique
    await put_agent(store, ns, "echo", readiness=probe_spec("grpc", disabled=True))
    lease = await put_instance(store, ns, "i1", "echo", endpoint.address)
    try:
        await asyncio.sleep(PERIOD * 3)
        assert endpoint.servicer.calls == 0
        assert (await stored(store, ns, "i1")).state == SERVING  # as registered
        await put_agent(store, ns, "echo", readiness=probe_spec("grpc"))
        await wait_for(store, ns, "i1", readiness_passing, 2)
        endpoint.servicer.mode = "fail"
        await wait_for(store, ns, "i1", is_state(NOT_SERVING), FAIL_BOUND + 1)
    finally:
        await store.revoke_lease(lease)


async def test_an_instance_seen_before_its_agent_is_probed_by_the_agents_spec(store, unique, etcd):
    """The agents and instances watches are separate streams, so a member can
    see an instance before the agent definition written ahead of it. Here the
    agents watch lags by 3 s: the member reads the definition itself, so a
    disabled probe sends nothing and an enabled one runs at its own period,
    not at the defaults (CI caught the disabled probe being sent once)."""
    ns = unique
    server = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd, member_ttl=timedelta(seconds=2),
                                       flush_interval=timedelta(seconds=1)))
    on_time = server.manager._agent_event
    server.manager._agent_event = (  # type: ignore[method-assign]
        lambda ev: asyncio.get_running_loop().call_later(3.0, on_time, ev))
    quiet, probed = HealthEndpoint(), HealthEndpoint()
    await quiet.start()
    await probed.start()
    await server.start()
    leases: list[int] = []
    try:
        await put_agent(store, ns, "off", readiness=probe_spec("grpc", disabled=True))
        await put_agent(store, ns, "on", readiness=probe_spec("grpc"))
        leases.append(await put_instance(store, ns, "i-off", "off", quiet.address))
        leases.append(await put_instance(store, ns, "i-on", "on", probed.address))
        await wait_for(store, ns, "i-on", readiness_passing, 2)
        assert (ns, "off") not in server.manager.agents, "the agents watch was meant to lag still"
        await asyncio.sleep(PERIOD * 4)
        assert probed.servicer.calls >= 4  # its own 0.25 s period, not the default 10 s
        assert quiet.servicer.calls == 0
        assert (await stored(store, ns, "i-off")).state == SERVING  # as registered
    finally:
        for lease in leases:
            await store.revoke_lease(lease)
        await server.stop()
        await probed.stop()
        await quiet.stop()
