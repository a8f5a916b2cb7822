"""Failover with real processes: a router process, three echo agent processes
registered through the SDK, steady load, one agent SIGKILLed. No client
call may fail, and the dead instance gets no traffic one second after its
death — long before its 10 s lease lapses. The load runs through the router and,
as a parity test, routed by the caller itself (`DirectClient`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from sutradhar import DirectClient, RouterClient
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.testing import spawn_agent
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]


async def _stats(client: RouterClient, ns: str) -> dict[str, object]:
    """Per-instance stats as the router sees them, or as a DirectClient does (its own calls)."""
    found = client.stats(namespace=ns) if isinstance(client, DirectClient) else await client.get_stats(namespace=ns)
    return {s.instance_id: s for s in found.instances}


async def _instances(client: RouterClient, ns: str, n: int) -> bool:
    """Whether the router's stats show `n` instances in `ns`."""
    return len(await _stats(client, ns)) == n


@pytest.mark.parametrize("path", ["router", "direct"])
async def test_sigkilled_replica_fails_no_call_and_gets_no_traffic_after_one_second(etcd, unique, path):
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    procs = []
    try:
        commands = [[sys.executable, "-m", "sutradhar.services.router", "--insecure", "--port", "0",
                     "--registry", registry.address, "--log-level", "WARNING"]]
        commands += [[sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
                      "--registry", registry.address, "--namespace", unique,
                      "--instance-id", f"echo-{i}", "--ttl", "10"] for i in range(3)]
        procs.extend(await asyncio.gather(
            *[asyncio.to_thread(spawn_agent, command, cwd=str(ROOT)) for command in commands]))
        router = procs[0]
        agents = {f"echo-{i}": p for i, p in enumerate(procs[1:])}
        client = RouterClient(router.address) if path == "router" else \
            DirectClient(router.address, registry=registry.address)
        async with client:
            await eventually(lambda: _instances(client, unique, 3), within=10, what=f"the {path} sees 3 instances")
            served: Counter[str] = Counter()
            failures: list[BaseException] = []
            stop = asyncio.Event()

            async def worker() -> None:
                while not stop.is_set():
                    try:
                        result = await client.execute("echo", {"n": 1}, namespace=unique,
                                                      timeout=timedelta(seconds=5))
                        assert result.success
                        served[result.metadata.instance_id] += 1
                    except Exception as err:  # every failure is a test failure
                        failures.append(err)

            workers = [asyncio.create_task(worker()) for _ in range(8)]
            await asyncio.sleep(1.0)
            assert set(served) == set(agents), served  # all three take traffic
            victim = "echo-1"
            os.kill(agents[victim].pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await asyncio.sleep(1.0)
            sent_after_1s = (await _stats(client, unique))[victim].requests
            served_at_1s = sum(served.values())
            await asyncio.sleep(1.5)
            stop.set()
            await asyncio.gather(*workers)
            final = await _stats(client, unique)
            assert not failures, failures[:3]
            assert sum(served.values()) - served_at_1s > 20  # the load went on
            assert final[victim].requests == sent_after_1s  # no traffic after the first second
            assert final[victim].ejected or final[victim].breaker != 1
            # the registry still lists it: its lease has not lapsed, the router found out by itself
            assert time.monotonic() - killed_at < 9
            assert victim in final and final[victim].state == "SERVING"
            assert all(s.in_flight == 0 for s in final.values())
            if isinstance(client, DirectClient):
                assert client.stats().fallbacks == {} and client.stats().direct == sum(served.values())
    finally:
        for proc in procs:
            proc.signal(signal.SIGTERM)
        for proc in procs:
            await asyncio.to_thread(proc.stop, timedelta(seconds=5))
        await registry.stop()


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_router_starts_without_registry_answers_unavailable_then_catches_up(etcd, unique, event_loop):
    from sutradhar._errors import Unavailable
    from sutradhar.services.common.etcd_server import free_port

    port = free_port()
    router = await asyncio.to_thread(
        spawn_agent, [sys.executable, "-m", "sutradhar.services.router", "--insecure", "--port", "0",
            "--event-loop", event_loop,
                      "--registry", f"127.0.0.1:{port}", "--log-level", "ERROR"], cwd=str(ROOT))
    assert any(f"(event loop: {event_loop})" in line for line in router.output), router.output
    registry = RegistryServer(RegistryConfig(insecure=True, port=port, etcd=etcd))
    agent = None
    try:
        async with RouterClient(router.address) as client:
            try:
                await client.execute("echo", 1, namespace=unique, timeout=timedelta(seconds=2))
            except Unavailable as err:
                assert "registry" in err.message
            else:
                raise AssertionError("routed without a registry")
            await registry.start()
            agent = await asyncio.to_thread(
                spawn_agent, [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
                              "--registry", registry.address, "--namespace", unique], cwd=str(ROOT))
            result = await eventually(
                lambda: client.execute("echo", 1, namespace=unique, timeout=timedelta(seconds=2)),
                within=10, period=0.1, ignoring=(Unavailable,))
            assert result.success
            assert router.proc.poll() is None
    finally:
        for proc in (agent, router):
            if proc is not None:
                await asyncio.to_thread(proc.stop, timedelta(seconds=5))
        await registry.stop()


async def _health(address: str, service: str) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2)
    return reply.status


async def test_router_is_not_serving_until_it_has_synced_with_the_registry(etcd, unique):
    from grpc_health.v1 import health_pb2

    from sutradhar.services.common.etcd_server import free_port
    from sutradhar.services.router.server import SERVICE_NAME

    port = free_port()
    router = await asyncio.to_thread(
        spawn_agent, [sys.executable, "-m", "sutradhar.services.router", "--insecure", "--port", "0",
                      "--registry", f"127.0.0.1:{port}", "--log-level", "ERROR"], cwd=str(ROOT))
    registry = RegistryServer(RegistryConfig(insecure=True, port=port, etcd=etcd))
    try:
        for service in ("", SERVICE_NAME):
            assert await _health(router.address, service) == health_pb2.HealthCheckResponse.NOT_SERVING
        await registry.start()
        started = time.monotonic()
        statuses = {}

        async def serving() -> bool:
            nonlocal statuses
            statuses = {s: await _health(router.address, s) for s in ("", SERVICE_NAME)}
            return set(statuses.values()) == {health_pb2.HealthCheckResponse.SERVING}

        await eventually(serving, within=10, period=0.1, what=lambda: f"router SERVING (last: {statuses})")
        assert set(statuses.values()) == {health_pb2.HealthCheckResponse.SERVING}, statuses
        assert time.monotonic() - started < 5  # the watcher retries at most every 2 s
        async with RouterClient(router.address) as client:  # and it routes: no more "not loaded" UNAVAILABLE
            from sutradhar._errors import FailedPrecondition

            with pytest.raises(FailedPrecondition):
                await client.execute("echo", 1, namespace=unique, timeout=timedelta(seconds=2))
    finally:
        await asyncio.to_thread(router.stop, timedelta(seconds=5))
        await registry.stop()


@pytest.mark.parametrize("path", ["router", "direct"])
async def test_watch_resumes_after_registry_restart(etcd, unique, store, path):
    from sutradhar import RegistryClient
    from sutradhar.services.common.etcd_server import free_port
    from sutradhar.services.router.server import RouterConfig, RouterServer
    from sutradhar.v1 import registry_pb2

    port = free_port()
    registry = RegistryServer(RegistryConfig(insecure=True, port=port, etcd=etcd))
    await registry.start()
    server = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address))
    await server.start()
    # the watcher under test: the router's, or a DirectClient's (the same code over the client's channel)
    direct = DirectClient(server.address, registry=registry.address) if path == "direct" else None
    router = server if direct is None else direct
    try:
        if direct is None:
            assert await server.wait_synced(timedelta(seconds=10))
        else:
            assert await direct.wait_synced(timeout=10)
        async with RegistryClient(registry.address) as reg:
            await reg.register_agent(registry_pb2.Agent(id="echo", namespace=unique, type="echo", version="1.0.0",
                                                        runtime="process"))
        await registry.stop()
        # while the registry is down, a change lands in etcd (as another registry replica would write it)
        instance = registry_pb2.Instance(id="late-1", namespace=unique, agent_id="echo", endpoint="127.0.0.1:9",
                                         runtime="process", state=registry_pb2.INSTANCE_STATE_SERVING)
        from sutradhar.services.common import keys

        await store.put(keys.instance_key(unique, "late-1"), keys.encode(instance))
        seen_before = (unique, "late-1") in router.view.backends
        registry = RegistryServer(RegistryConfig(insecure=True, port=port, etcd=etcd))
        await registry.start()
        await eventually(lambda: (unique, "late-1") in router.view.backends, within=5, what="late-1 in the view")
        assert not seen_before and (unique, "late-1") in router.view.backends
        assert router.watcher is not None and router.watcher.revision > 0
    finally:
        if direct is not None:
            await direct.close()
        await server.stop(timedelta(seconds=1))
        await registry.stop()


async def test_max_attempts_one_keeps_a_sigkilled_in_flight_task_from_running_twice(etcd, unique):
    """At-least-once is the default (the task above is re-sent after a reset);
    an agent whose RoutingPolicy says retry.max_attempts = 1 gets at-most-once:
    the caller sees UNAVAILABLE and no other instance receives the task."""
    from sutradhar import RegistryClient
    from sutradhar._errors import Unavailable
    from sutradhar.services.router.server import RouterConfig, RouterServer
    from sutradhar.v1 import registry_pb2, routing_pb2

    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    router = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address))
    await router.start()
    agents = []
    try:
        async with RegistryClient(registry.address) as reg:
            await reg.register_agent(registry_pb2.Agent(
                id="echo", namespace=unique, type="echo", version="1.0.0", runtime="process",
                routing=routing_pb2.RoutingPolicy(retry=routing_pb2.RetryPolicy(max_attempts=1))))
        agents = list(await asyncio.gather(*[asyncio.to_thread(
            spawn_agent, [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
                          "--registry", registry.address, "--namespace", unique,
                          "--instance-id", f"echo-{i}", "--ttl", "10"], cwd=str(ROOT)) for i in range(2)]))
        async with RouterClient(router.address) as client:
            await eventually(lambda: _instances(client, unique, 2), within=10, what="the router sees 2 instances")
            assert len(await _stats(client, unique)) == 2
            assert router.view.backends[(unique, "echo-0")].policy.retry.max_attempts == 1
            call = asyncio.create_task(client.execute("echo", {"sleep": 3}, namespace=unique,
                                                      timeout=timedelta(seconds=10)))

            async def in_flight() -> list[str]:
                return [iid for iid, s in (await _stats(client, unique)).items() if s.in_flight == 1]

            busy = await eventually(in_flight, within=4, period=0.02, what="one instance has the call in flight")
            assert busy and len(busy) == 1, busy
            victim = busy[0]
            other = "echo-1" if victim == "echo-0" else "echo-0"
            os.kill(agents[int(victim[-1])].pid, signal.SIGKILL)
            with pytest.raises(Unavailable) as err:
                await call
            assert victim in err.value.message and "1 attempt" in err.value.message
            final = await _stats(client, unique)
            assert final[other].requests == 0  # never re-sent
            assert final[victim].requests == 1 and final[victim].errors == 1
    finally:
        for proc in agents:
            await asyncio.to_thread(proc.stop, timedelta(seconds=5))
        await router.stop(timedelta(seconds=1))
        await registry.stop()
