"""Fixtures and helpers shared by the scheduler's integration tests (no tests here).

A real registry and a real scheduler run in the test process on port 0 over
the session etcd; replicas are real child processes (the echo agent). Every
test works in its own namespace and, on teardown, deletes its deployments and
kills whatever replica processes are left (by pid, from the process records).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_registry_support import registry

from sutradhar._clients import RegistryClient
from sutradhar._values import to_struct
from sutradhar.services.common import keys
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.registry import RegistryServer
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.server import SchedulerServer
from sutradhar.v1 import registry_pb2, scheduler_pb2, scheduler_pb2_grpc
from tests import support

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["registry"]  # re-exported fixture

ECHO_COMMAND = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]

eventually = functools.partial(support.eventually, within=20.0, period=0.1)
"""`tests.support.eventually` with the scheduler suites' bounds: 20 s, every 0.1 s (a call may pass others)."""


def fast_config(etcd: str, registry: str, state_dir: Path, **overrides: object) -> SchedulerConfig:
    """Scheduler settings with short periods for tests."""
    values: dict[str, object] = dict(
        insecure=True, port=0, etcd=etcd, registry=registry, state_dir=state_dir,
        # named after the test (its tmp dir), so a leader that outlives its test is named in failures
        member_id=f"{state_dir.parent.name[:40]}-{uuid.uuid4().hex[:4]}",
        election_ttl=timedelta(seconds=2), instance_ttl=timedelta(seconds=6),
        resync_period=timedelta(seconds=2), stop_grace=timedelta(seconds=3),
        drain_delay=timedelta(milliseconds=100), backoff_base=timedelta(milliseconds=300),
        backoff_max=timedelta(seconds=2), autoscale_period=timedelta(milliseconds=300),
        monitor_period=timedelta(milliseconds=100),
    )
    values.update(overrides)
    return SchedulerConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def registry_client(registry: RegistryServer) -> AsyncIterator[RegistryClient]:
    client = RegistryClient(registry.address)
    try:
        yield client
    finally:
        await client.close()


def kill_recorded(state_dir: Path) -> list[int]:
    """SIGKILL every replica process group recorded under `state_dir`; return the pids."""
    pids = []
    for record in state_dir.glob("process/*/*/record.json"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(json.loads(record.read_text())["pid"])
            pids.append(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    return pids


async def wait_leader(server: SchedulerServer, within: float = 10.0) -> None:
    await support.eventually(
        lambda: server.is_leader, within=within,
        what=lambda: f"scheduler {server.member_id} did not become leader (the leader: {server.election.leader_id!r})",
    )
    await server.controller._adopted.wait()


@pytest.fixture
async def scheduler(etcd: str, registry: RegistryServer, tmp_path: Path) -> AsyncIterator[SchedulerServer]:
    """A leading SchedulerServer with fast test settings and its own state dir."""
    server = SchedulerServer(fast_config(etcd, registry.address, tmp_path / "state"))
    await server.start()
    try:
        await wait_leader(server)
        yield server
    finally:
        await server.stop(timedelta(seconds=1))
        kill_recorded(tmp_path / "state")


@contextlib.asynccontextmanager
async def leading_scheduler(
    etcd: str, registry_address: str, state_dir: Path
) -> AsyncIterator[tuple[SchedulerServer, scheduler_pb2_grpc.SchedulerServiceStub]]:
    """A SchedulerServer of the test's own (fast settings, `state_dir`), once it leads,
    with a stub on it; stopped (its replicas left for the next leader) on exit."""
    import grpc

    server = SchedulerServer(fast_config(etcd, registry_address, state_dir))
    await server.start()
    try:
        await wait_leader(server)
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield server, scheduler_pb2_grpc.SchedulerServiceStub(channel)
    finally:
        await server.stop(timedelta(seconds=1))


@pytest.fixture
async def api(scheduler: SchedulerServer) -> AsyncIterator[scheduler_pb2_grpc.SchedulerServiceStub]:
    import grpc

    async with grpc.aio.insecure_channel(scheduler.address) as channel:
        yield scheduler_pb2_grpc.SchedulerServiceStub(channel)


@pytest.fixture
async def namespace(etcd: str, unique: str) -> AsyncIterator[str]:
    """A fresh namespace; its deployments are removed afterwards (replicas stop first)."""
    yield unique
    store = Store(EtcdEndpoint.parse(etcd))
    try:
        kvs, _ = await store.list(keys.kind_prefix(keys.DEPLOYMENTS, unique))
        for kv in kvs:
            await store.delete(kv.key)
        await store.delete_prefix(keys.kind_prefix(keys.INSTANCES, unique))
        await store.delete_prefix(keys.kind_prefix(keys.AGENTS, unique))
    finally:
        await store.close()


def echo_agent(namespace: str, agent_id: str = "echo", version: str = "1.0.0", **config: object) -> registry_pb2.Agent:
    """A process agent running the example EchoAgent."""
    cfg: dict[str, object] = {"command": ECHO_COMMAND, "workdir": str(ROOT)}
    cfg.update(config)
    return registry_pb2.Agent(
        id=agent_id, namespace=namespace, type="echo", version=version, runtime="process",
        capabilities=["echo"], config=to_struct(cfg),
    )


def deployment(namespace: str, name: str, agent_id: str = "echo", replicas: int = 2,
               **spec: object) -> scheduler_pb2.Deployment:
    return scheduler_pb2.Deployment(
        name=name, namespace=namespace,
        spec=scheduler_pb2.DeploymentSpec(agent_id=agent_id, replicas=replicas, **spec),  # type: ignore[arg-type]
    )


async def get(api: scheduler_pb2_grpc.SchedulerServiceStub, namespace: str, name: str) -> scheduler_pb2.Deployment:
    reply = await api.GetDeployment(scheduler_pb2.GetDeploymentRequest(namespace=namespace, name=name))
    return reply.deployment


async def ready_instances(client: RegistryClient, namespace: str, deployment_name: str) -> list[registry_pb2.Instance]:
    reply = await client.list_instances(namespace=namespace, labels={"sutradhar.deployment": deployment_name})
    return [i for i in reply.instances if i.state == registry_pb2.INSTANCE_STATE_SERVING]


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def condition(d: scheduler_pb2.Deployment, ctype: str) -> scheduler_pb2.DeploymentCondition | None:
    for c in d.status.conditions:
        if c.type == ctype:
            return c
    return None


async def condition_true(api: scheduler_pb2_grpc.SchedulerServiceStub, namespace: str, name: str,
                         ctype: str) -> scheduler_pb2.Deployment | None:
    """The deployment when its `ctype` condition is true, else None."""
    d = await get(api, namespace, name)
    c = condition(d, ctype)
    return d if c is not None and c.status == scheduler_pb2.CONDITION_STATUS_TRUE else None


class SchedulerProcess:
    """`python -m sutradhar.services.scheduler` as a child process (for SIGKILL tests)."""

    def __init__(self, etcd: str, registry: str, state_dir: Path, member_id: str, election_ttl: float = 2.0) -> None:
        import subprocess

        self.member_id = member_id
        self.log_path = state_dir.parent / f"scheduler-{member_id}.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sutradhar.services.scheduler", "--insecure", "--port", "0", "--etcd", etcd,
             "--registry", registry, "--state-dir", str(state_dir), "--member-id", member_id,
             "--election-ttl", str(election_ttl), "--instance-ttl", "6", "--backoff-base", "0.3",
             "--stop-grace", "3", "--drain-delay", "0.05", "--resync-period", "2"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        self.address = ""

    async def wait_listening(self, within: float = 20.0) -> str:
        def listening() -> str:
            for line in self.log_path.read_text().splitlines():
                if "scheduler listening on " in line:
                    return line.rsplit(" ", 1)[-1]
            assert self.proc.poll() is None, self.log_path.read_text()
            return ""

        try:
            self.address = await support.eventually(listening, within=within)
        except AssertionError:
            raise AssertionError(f"scheduler {self.member_id} did not start:\n{self.log_path.read_text()}") from None
        return self.address

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        self._log.close()


async def current_leader(store: Store) -> str:
    """Member id of the scheduler leader (lowest create revision), or ""."""
    from sutradhar.services.scheduler.election import election_prefix

    kvs, _ = await store.list(election_prefix("scheduler"))
    if not kvs:
        return ""
    return min(kvs, key=lambda kv: kv.create_revision).value.decode()


def recorded_pids(state_dir: Path, namespace: str) -> set[int]:
    """Pids of the replica processes recorded in `namespace`."""
    pids = set()
    for record in state_dir.glob(f"process/{namespace}/*/record.json"):
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(json.loads(record.read_text())["pid"]))
    return pids


async def run_cli(registry: object, scheduler: object, *args: str, within: float = 90) -> tuple[int, str]:
    """Run `sutradhar ARGS` against these servers as a user would; (exit code, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sutradhar.cli.main", "--registry", registry.address,  # type: ignore[attr-defined]
        "--scheduler", scheduler.address, *args,  # type: ignore[attr-defined]
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), within)
    return proc.returncode or 0, out.decode()
