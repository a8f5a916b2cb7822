"""The health service with the rest of the mesh: a real registry (bad probe
specs refused, naming the field), a real router fed by the registry's watch,
SDK echo agents as child processes (drain while a task is in flight, death),
and the `sutradhar health/drain/enable` commands as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from test_health_support import FAIL_BOUND, NOT_SERVING, PERIOD, SERVING, is_state, readiness_passing, wait_for

from sutradhar import RegistryClient, RouterClient
from sutradhar._errors import InvalidArgument
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.testing import spawn_agent
from sutradhar.v1 import registry_pb2
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def mesh(etcd):
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    router = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address, etcd=etcd))
    await router.start()
    assert await router.wait_synced(timedelta(seconds=10))
    health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd, member_ttl=timedelta(seconds=2),
                                       flush_interval=timedelta(seconds=1)))
    await health.start()
    reg = RegistryClient(registry.address)
    client = RouterClient(router.address)
    try:
        yield {"registry": registry, "router": router, "health": health, "reg": reg, "client": client}
    finally:
        await client.close()
        await reg.close()
        await health.stop()
        await router.stop(timedelta(seconds=1))
        await registry.stop()


def _agent(ns: str, agent_id: str, **readiness) -> registry_pb2.Agent:
    agent = registry_pb2.Agent(id=agent_id, namespace=ns, type="echo", version="1.0.0", runtime="process")
    spec = agent.probes.readiness
    spec.kind = "grpc"
    spec.period.FromTimedelta(timedelta(seconds=PERIOD))
    spec.timeout.FromTimedelta(timedelta(milliseconds=200))
    spec.failure_threshold = 3
    spec.success_threshold = 1
    for name, value in readiness.items():
        target = getattr(spec, name)
        if isinstance(value, timedelta):
            target.FromTimedelta(value)
        else:
            setattr(spec, name, value)
    return agent


@pytest.mark.parametrize(("change", "field"), [
    ({"period": timedelta(seconds=-1)}, "agent.probes.readiness.period"),
    ({"period": timedelta(milliseconds=10)}, "agent.probes.readiness.period"),
    ({"timeout": timedelta(seconds=-2)}, "agent.probes.readiness.timeout"),
    ({"failure_threshold": -1}, "agent.probes.readiness.failure_threshold"),
    ({"success_threshold": -3}, "agent.probes.readiness.success_threshold"),
    ({"kind": "udp"}, "agent.probes.readiness.kind"),
    ({"kind": "http", "http_path": "health"}, "agent.probes.readiness.http_path"),
])
async def test_bad_probe_spec_is_refused_naming_the_field(mesh, unique, change, field):
    with pytest.raises(InvalidArgument) as err:
        await mesh["reg"].register_agent(_agent(unique, "echo", **change))
    assert field in err.value.message


async def test_bad_liveness_success_threshold_is_refused(mesh, unique):
    agent = _agent(unique, "echo")
    agent.probes.liveness.success_threshold = 2
    with pytest.raises(InvalidArgument) as err:
        await mesh["reg"].register_agent(agent)
    assert "agent.probes.liveness.success_threshold" in err.value.message


def _spawn_echo():
    return spawn_agent([sys.executable, str(ROOT / "examples" / "echo_agent.py"), "--port", "0", "--insecure"])


async def _wait_router(mesh, ns: str, instance_id: str, routable: bool) -> None:
    router: RouterServer = mesh["router"]

    def seen() -> bool:
        backend = router.view.backends.get((ns, instance_id))
        return backend is not None and router.view.routable(backend) == routable

    await eventually(seen, within=5, period=0.02, what=f"router never saw {instance_id} routable={routable}")


async def test_drained_instance_finishes_in_flight_work_and_gets_no_new_tasks(mesh, unique, store):
    ns = unique
    reg: RegistryClient = mesh["reg"]
    client: RouterClient = mesh["client"]
    health: HealthServer = mesh["health"]
    a, b = await asyncio.gather(asyncio.to_thread(_spawn_echo), asyncio.to_thread(_spawn_echo))
    try:
        await reg.register_agent(_agent(ns, "echo"))
        for iid, proc, slot in (("e-a", a, "a"), ("e-b", b, "b")):
            await reg.register_instance(registry_pb2.Instance(
                id=iid, namespace=ns, agent_id="echo", endpoint=proc.address, runtime="process", state=SERVING,
                labels={"slot": slot}), ttl=timedelta(seconds=60))
        for iid in ("e-a", "e-b"):
            await wait_for(store, ns, iid, lambda i: readiness_passing(i) and i.health.prober == health.member_id, 5)
            await _wait_router(mesh, ns, iid, True)

        # A long task lands on e-a; e-a is drained while it runs.
        slow = asyncio.create_task(client.execute("echo", {"sleep": 1.5}, namespace=ns, labels="slot=a",
                                                  timeout=timedelta(seconds=10)))
        await asyncio.sleep(0.3)
        manager = health.manager
        drained = await manager.set_drained(ns, "e-a", True)
        assert drained.state == registry_pb2.INSTANCE_STATE_DRAINING
        await _wait_router(mesh, ns, "e-a", False)
        assert not slow.done()
        pids = []
        for i in range(12):
            result = await client.execute("echo", {"n": i}, namespace=ns, timeout=timedelta(seconds=5))
            assert result.success
            pids.append(result.data["pid"])
        assert set(pids) == {b.pid}, "a drained instance got new tasks"
        done = await slow
        assert done.success and done.data["pid"] == a.pid, "the in-flight task did not finish on e-a"
        # Probes go on and keep passing, yet the drain holds.
        await asyncio.sleep(PERIOD * 3)
        assert (await reg.get_instance("e-a", namespace=ns)).state == registry_pb2.INSTANCE_STATE_DRAINING

        await manager.set_drained(ns, "e-a", False)
        await _wait_router(mesh, ns, "e-a", True)
        pids = {(await client.execute("echo", {}, namespace=ns, strategy="round-robin")).data["pid"]
                for _ in range(6)}
        assert a.pid in pids

        # The SDK agent process dies: out of rotation within the bound.
        b.proc.kill()
        b.wait()
        took = await wait_for(store, ns, "e-b", is_state(NOT_SERVING), FAIL_BOUND + 1)
        assert took <= FAIL_BOUND
        await _wait_router(mesh, ns, "e-b", False)
    finally:
        a.__exit__()
        b.__exit__()


def _cli(mesh, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sutradhar.cli.main", "--health", mesh["health"].address, *args],
        capture_output=True, text=True, timeout=30,
    )


async def test_cli_health_drain_enable_and_watch(mesh, unique, store):
    ns = unique
    reg: RegistryClient = mesh["reg"]
    a = await asyncio.to_thread(_spawn_echo)
    watch = None
    try:
        await reg.register_agent(_agent(ns, "echo"))
        await reg.register_instance(registry_pb2.Instance(
            id="c1", namespace=ns, agent_id="echo", endpoint=a.address, runtime="process", state=SERVING),
            ttl=timedelta(seconds=60))
        await wait_for(store, ns, "c1", readiness_passing, 5)

        out = await asyncio.to_thread(_cli, mesh, "health", "-n", ns)
        assert out.returncode == 0, out.stderr
        assert "HEALTHY" in out.stdout and "echo" in out.stdout
        out = await asyncio.to_thread(_cli, mesh, "health", "echo", "-n", ns, "-o", "json")
        data = json.loads(out.stdout)
        assert data["serving"] == 1 and data["instances"][0]["id"] == "c1"

        watch = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "sutradhar.cli.main", "--health", mesh["health"].address,
             "health", "echo", "-n", ns, "--watch"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        lines: list[str] = []

        def read_until(marker: str) -> None:
            assert watch is not None and watch.stdout is not None
            for line in watch.stdout:
                lines.append(line)
                if marker in line:
                    return

        await asyncio.to_thread(read_until, "watching health events")
        out = await asyncio.to_thread(_cli, mesh, "drain", "c1", "-n", ns)
        assert out.returncode == 0 and "drained" in out.stdout, out.stderr
        await asyncio.wait_for(asyncio.to_thread(read_until, "SERVING -> DRAINING"), 10)
        assert any("DRAINED" in line for line in lines)
        out = await asyncio.to_thread(_cli, mesh, "enable", "c1", "-n", ns, "-o", "json")
        assert json.loads(out.stdout)["state"] == "INSTANCE_STATE_SERVING"
        await asyncio.wait_for(asyncio.to_thread(read_until, "DRAINING -> SERVING"), 10)

        out = await asyncio.to_thread(_cli, mesh, "drain", "nope", "-n", ns)
        assert out.returncode == 1 and "NOT_FOUND" in out.stderr
        out = await asyncio.to_thread(_cli, mesh, "health", "--members")
        assert mesh["health"].member_id in out.stdout
    finally:
        if watch is not None:
            watch.kill()
            watch.wait(5)
        a.__exit__()


async def test_health_api_rejects_missing_ids(mesh):
    from sutradhar.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(mesh["health"].address) as ch:
        stub = health_pb2_grpc.HealthServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAgentHealth(health_pb2.GetAgentHealthRequest(namespace="default"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "agent_id" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAgentHealth(health_pb2.GetAgentHealthRequest(namespace="default", agent_id="nope-x"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.DrainInstance(health_pb2.DrainInstanceRequest(instance_id="Not/An/Id"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "instance_id" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetInstanceHealth(health_pb2.GetInstanceHealthRequest(namespace="*", instance_id="x"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "namespace" in err.value.details()
