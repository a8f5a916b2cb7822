"""The process runtime on its own (ports, limits, logs, stop, adoption) and the
http / in-process runtimes through the scheduler."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from test_scheduler_support import (
    api,
    deployment,
    eventually,
    get,
    namespace,
    pid_alive,
    registry,
    registry_client,
    scheduler,
)

from sutradhar._errors import InvalidArgument
from sutradhar._values import to_struct
from sutradhar.services.scheduler.runtimes.base import ReplicaPhase, ReplicaSpec
from sutradhar.services.scheduler.runtimes.process import ProcessRuntime
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest


def spec(command, *, replica="r1", memory="", **config) -> ReplicaSpec:
    agent = registry_pb2.Agent(
        id="tool", namespace="ns", type="tool", version="1.0.0", runtime="process",
        config=to_struct({"command": command, **config}),
    )
    agent.resources.memory = memory
    return ReplicaSpec(namespace="ns", deployment="dep", replica_id=replica, revision="abc", agent=agent,
                       insecure=True)


async def test_process_runtime_port_env_logs_and_group_stop(tmp_path: Path):
    rt = ProcessRuntime(tmp_path, log_max_bytes=200, log_backups=2)
    script = "echo port=$SUTRADHAR_PORT arg={port} id=$SUTRADHAR_INSTANCE_ID; sleep 60 & sleep 60"
    replica = await rt.start(spec(["sh", "-c", script]))
    try:
        port = int(replica.endpoint.rsplit(":", 1)[1])
        expected = f"port={port} arg={port} id=r1"
        await eventually(lambda: _contains(_lines(rt, replica), expected), within=5)
        assert (await rt.inspect(replica)).phase is ReplicaPhase.RUNNING
        pid = int(replica.native_id)
        assert os.getpgid(pid) == pid  # its own process group
        # a second runtime over the same state dir adopts it (what a new leader does)
        adopted = await ProcessRuntime(tmp_path).list("ns")
        assert [(r.replica_id, r.native_id, r.phase) for r in adopted] == [("r1", str(pid), ReplicaPhase.RUNNING)]
        assert adopted[0].labels["sutradhar.deployment"] == "dep"
        # rotation by copy-and-truncate keeps the writer's file descriptor valid
        with rt.log_path(replica).open("a") as f:
            f.write("x" * 500 + "\n")
        assert rt.rotate_logs() == 1
        assert rt.log_path(replica).with_name("output.log.1").exists()
        children = await eventually(lambda: _at_least(_group(pid), 3), within=5)  # sh and two sleeps
        await rt.stop(replica, grace=timedelta(seconds=2))
        await eventually(lambda: _none_alive(children), within=3)  # the whole group went
        assert (await rt.inspect(replica)).phase is ReplicaPhase.EXITED
        assert await rt.list("ns") == []
        await rt.stop(replica)  # idempotent
    finally:
        await rt.stop(replica, grace=timedelta(seconds=0))


async def test_process_runtime_exit_code_and_message(tmp_path: Path):
    rt = ProcessRuntime(tmp_path)
    replica = await rt.start(spec(["sh", "-c", "echo 'cannot open model' >&2; exit 7"]))
    exited = await eventually(lambda: _exited(rt, replica), within=5)
    assert exited.exit_code == 7
    assert "exited with code 7" in exited.message and "cannot open model" in exited.message
    await rt.stop(replica)


async def test_process_runtime_bad_input(tmp_path: Path):
    rt = ProcessRuntime(tmp_path)
    with pytest.raises(InvalidArgument, match="command 'no-such-binary' not found"):
        await rt.start(spec(["no-such-binary"]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidArgument, match=f"port {port} is already in use") as err:
            await rt.start(spec(["sleep", "5"], port=port))
        assert err.value.field == "agent.config.port"
    with pytest.raises(InvalidArgument) as err:
        await rt.start(spec(["sleep", "5"], limits={"cpu_seconds": -1}))
    assert err.value.field == "agent.config.limits.cpu_seconds"
    with pytest.raises(InvalidArgument) as err:
        await rt.start(spec(["sleep", "5"], memory="2Ki"))
    assert err.value.field == "resources.memory"
    assert await rt.list() == []


async def test_replica_env_is_its_own_not_the_schedulers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SUTRADHAR_ROUTER", "127.0.0.1:1")  # the scheduler's own settings stay its own
    monkeypatch.setenv("SUTRADHAR_CONTAINER_SCOPE", "scheduler-only")
    monkeypatch.setenv("LANG_TEST_KEEP", "kept")  # the rest of the environment is inherited
    rt = ProcessRuntime(tmp_path)
    script = ("echo router=${SUTRADHAR_ROUTER:-unset} scope=${SUTRADHAR_CONTAINER_SCOPE:-unset} "
              "keep=$LANG_TEST_KEEP agent=$SUTRADHAR_AGENT_ID@$SUTRADHAR_AGENT_VERSION; sleep 30")
    replica = await rt.start(spec(["sh", "-c", script]))
    try:
        await eventually(lambda: _contains(_lines(rt, replica),
                                           "router=unset scope=unset keep=kept agent=tool@1.0.0"), within=5)
    finally:
        await rt.stop(replica, grace=timedelta(seconds=1))


async def test_process_runtime_applies_rlimits(tmp_path: Path):
    rt = ProcessRuntime(tmp_path)
    replica = await rt.start(spec(["sleep", "30"], memory="512Mi", limits={"cpu_seconds": 100, "open_files": 64}))
    try:
        # prlimit sets the limits, then execs the command in place (same pid)
        await eventually(lambda: _runs(replica.native_id, "sleep"), within=5)
        limits = _read(f"/proc/{replica.native_id}/limits")
        assert _limit(limits, "Max data size") == str(512 * 1024 * 1024), limits
        assert _limit(limits, "Max address space") == "unlimited", limits  # V8 reserves gigabytes of it
        assert _limit(limits, "Max cpu time") == "100", limits
        assert _limit(limits, "Max open files") == "64", limits
    finally:
        await rt.stop(replica, grace=timedelta(seconds=1))


async def test_the_memory_limit_bounds_memory_written_not_address_space_reserved(tmp_path: Path):
    rt = ProcessRuntime(tmp_path)
    # 64 MiB reserved (PROT_NONE, 0) and never touched: fine under a 48Mi limit (RLIMIT_AS refused it, as Node's V8)
    reserve = ("import mmap; m = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, "
               "prot=0); print('reserved')")
    reserved = await rt.start(spec([sys.executable, "-c", reserve], replica="reserve", memory="48Mi"))
    done = await eventually(lambda: _exited(rt, reserved), within=10)
    assert done.exit_code == 0, await _lines(rt, reserved)
    # 64 MiB written: refused under the same limit
    write = "bytearray(64 << 20)"
    written = await rt.start(spec([sys.executable, "-c", write], replica="write", memory="48Mi"))
    refused = await eventually(lambda: _exited(rt, written), within=10)
    assert refused.exit_code == 1 and "MemoryError" in await _lines(rt, written), refused
    await rt.stop(reserved)
    await rt.stop(written)


async def test_limited_replicas_survive_being_spawned_while_grpc_is_busy(tmp_path: Path):
    """Regression: limits were once set by a Python preexec_fn, which runs between
    fork and exec while gRPC's threads are mid-call (gRPC then skips its fork
    handlers) and killed fresh replicas with SIGSEGV: 4 of 24 here, one of two
    under `sutradhar up`."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    stop = asyncio.Event()

    async def load() -> None:  # keep gRPC's threads busy, as in the scheduler
        while not stop.is_set():
            await stub.Check(health_pb2.HealthCheckRequest())

    callers = [asyncio.create_task(load()) for _ in range(8)]
    rt = ProcessRuntime(tmp_path)
    replicas = []
    try:
        for i in range(24):
            replicas.append(await rt.start(spec([sys.executable, "-c", "import time; time.sleep(30)"],
                                                replica=f"r{i}", memory="512Mi", limits={"open_files": 256})))
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.5)
        phases = [(r.replica_id, (await rt.inspect(r)).phase) for r in replicas]
        assert all(phase is ReplicaPhase.RUNNING for _, phase in phases), phases
    finally:
        stop.set()
        await asyncio.gather(*callers, return_exceptions=True)
        await channel.close()
        await server.stop(0)
        for r in replicas:
            await rt.stop(r, grace=timedelta(seconds=1))


async def test_process_runtime_ignores_a_recycled_pid(tmp_path: Path):
    rt = ProcessRuntime(tmp_path)
    replica = await rt.start(spec(["sleep", "30"]))
    try:
        record = rt.log_path(replica).with_name("record.json")
        data = json.loads(record.read_text())
        data["start_ticks"] += 1  # the same pid, but not the same process
        record.write_text(json.dumps(data))
        stranger = await ProcessRuntime(tmp_path).list("ns")
        assert stranger[0].phase is ReplicaPhase.EXITED
    finally:
        await rt.stop(replica, grace=timedelta(seconds=1))


async def test_http_and_in_process_deployments(api, registry_client, namespace):
    from test_scheduler_support import ROOT

    from sutradhar.testing import spawn_agent

    # an http replica is ready once its URL passes the readiness probe: serve both URLs
    command = [sys.executable, str(ROOT / "examples" / "http_echo_agent.py"), "--port", "0"]
    with spawn_agent(command) as first, spawn_agent(command) as second:
        await _http_and_in_process_deployments(
            api, registry_client, namespace, sorted([f"http://{first.address}", f"http://{second.address}"]))


async def _http_and_in_process_deployments(api, registry_client, namespace, urls):
    await registry_client.register_agent(registry_pb2.Agent(
        id="ext", namespace=namespace, type="ext", version="1.0.0", runtime="http",
        config=to_struct({"urls": urls})))
    await registry_client.register_agent(registry_pb2.Agent(
        id="local", namespace=namespace, type="local", version="1.0.0", runtime="in-process",
        config=to_struct({"class": "examples.echo_agent:EchoAgent"})))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "ext", "ext", 1)))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "local", "local", 2)))

    async def endpoints(agent_id, n):
        reply = await registry_client.list_instances(namespace=namespace, agent_id=agent_id)
        found = sorted(i.endpoint for i in reply.instances)
        return found if len(found) == n else None

    assert await eventually(lambda: endpoints("ext", 2)) == urls  # one replica per URL
    assert await eventually(lambda: endpoints("local", 2)) == ["in-process", "in-process"]
    d = await eventually(lambda: _ready(api, namespace, "local", 2))
    assert d.status.available_replicas == 2
    for name in ("ext", "local"):
        await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name=name, wait=True))
    assert await endpoints("ext", 0) == []
    assert await endpoints("local", 0) == []


async def test_get_logs(api, registry_client, namespace):
    from test_scheduler_support import echo_agent

    await registry_client.register_agent(echo_agent(namespace))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "logged", replicas=1)))
    d = await eventually(lambda: _ready(api, namespace, "logged", 1))
    replica = d.status.replica_statuses[0].id
    lines = [r async for r in api.GetLogs(P.GetLogsRequest(namespace=namespace, name="logged", tail=20))]
    assert lines and all(r.replica == replica for r in lines)
    assert any("listening on" in r.line for r in lines)
    # follow: the tail first, then new lines as the replica writes them (here: its shutdown)
    stream = api.GetLogs(P.GetLogsRequest(namespace=namespace, name="logged", tail=1, follow=True))
    first = await stream.read()
    assert first.replica == replica
    stream.cancel()
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="logged", wait=True))


async def _lines(rt, replica):
    return "\n".join([line async for line in rt.logs(replica, tail=10)])


async def _exited(rt, replica):
    r = await rt.inspect(replica)
    return r if r.phase is ReplicaPhase.EXITED else None


async def _ready(api, namespace, name, n):
    d = await get(api, namespace, name)
    return d if d.status.ready_replicas == n else None


def _group(pgid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            out.append(int(stat.parent.name))
    return out


def _limit(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name):
            return line[len(name):].split()[0]
    raise AssertionError(name)




async def _none_alive(pids):
    return not any(pid_alive(p) for p in pids)


def _read(path: str) -> str:
    return Path(path).read_text()


async def _runs(pid: str, program: str) -> bool:
    """Whether process `pid` has exec'd `program` (and is no longer prlimit)."""
    try:
        raw = await asyncio.to_thread(Path(f"/proc/{pid}/cmdline").read_bytes)
    except OSError:
        return False
    argv0 = raw.split(b"\0")[0].decode()
    return Path(argv0).name == program


async def _contains(text, expected):
    return expected in await text


async def _at_least(items, n):
    return items if len(items) >= n else None


async def test_process_agent_with_an_http_readiness_probe(api, registry_client, namespace):
    """Any executable can be a process agent: readiness follows its probe kind (here GET /health)."""
    import sys

    from test_scheduler_support import ROOT

    from sutradhar.v1 import probe_pb2

    agent = registry_pb2.Agent(
        id="web", namespace=namespace, type="web", version="1.0.0", runtime="process",
        config=to_struct({"command": [sys.executable, str(ROOT / "examples" / "http_echo_agent.py")]}),
        probes=probe_pb2.Probes(readiness=probe_pb2.ProbeSpec(kind="http", http_path="/health")),
    )
    await registry_client.register_agent(agent)
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "web", "web", 1)))
    d = await eventually(lambda: _ready(api, namespace, "web", 1))
    import httpx

    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://{d.status.replica_statuses[0].endpoint}/health")
    assert reply.status_code == 200
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="web", wait=True))


async def test_process_runtime_limits_must_be_whole_numbers(tmp_path: Path):
    rt = ProcessRuntime(tmp_path)
    for limits, text in [
        ({"cpu_seconds": -5}, "agent.config.limits.cpu_seconds: -5 is out of range (1 to 10000000)"),
        ({"cpu_seconds": "many"}, 'agent.config.limits.cpu_seconds: "many" must be a whole number of seconds'),
        ({"cpu_seconds": True}, "agent.config.limits.cpu_seconds: True must be a whole number of seconds"),
        ({"cpu_seconds": 1.5}, "agent.config.limits.cpu_seconds: 1.5 must be a whole number of seconds"),
        ({"open_files": "many"}, 'agent.config.limits.open_files: "many" must be a whole number'),
        ({"open_files": 64.5}, "agent.config.limits.open_files: 64.5 must be a whole number"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            await rt.start(spec(["sleep", "5"], limits=limits))
        assert text in err.value.message
    assert await rt.list() == []
