"""Scheduler benchmarks: scale-out time and failed calls during rolling updates.

    .venv/bin/python bench/scheduler.py [--rounds 5] [--rollouts 3] [--failovers 3] [--no-container]

Runs a whole mesh in this process on loopback (a private etcd, the registry,
one router and the scheduler, default settings), then measures:

1. seconds from `ScaleDeployment(3 -> 6)` until the deployment's status shows
   six ready replicas (ready = gRPC health SERVING and registered), for the
   process runtime (target < 2 s) and the container runtime (target < 3 s; the
   agent image is built when missing; skipped with a note when no Docker
   engine answers);
2. failed client calls while rolling a 4-replica process deployment to a new
   agent version under steady load through the router (8 concurrent callers;
   target 0), over several rollouts;
3. leader failover: two scheduler processes (default 5 s election TTL) share
   the state dir; the leader is SIGKILLed and the seconds until the other one
   leads are measured, and whether the same replica processes keep serving.

Writes bench/results/scheduler.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from sutradhar._clients import RegistryClient, RouterClient  # noqa: E402
from sutradhar._credentials import Credentials  # noqa: E402
from sutradhar._values import to_struct  # noqa: E402
from sutradhar.services.common.etcd_server import LocalEtcd, free_port  # noqa: E402
from sutradhar.services.registry import RegistryConfig, RegistryServer  # noqa: E402
from sutradhar.services.router.server import RouterConfig, RouterServer  # noqa: E402
from sutradhar.services.scheduler.config import SchedulerConfig  # noqa: E402
from sutradhar.services.scheduler.server import SchedulerServer  # noqa: E402
from sutradhar.v1 import registry_pb2, scheduler_pb2_grpc  # noqa: E402
from sutradhar.v1 import scheduler_pb2 as P  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scheduler.json"
NAMESPACE = "bench"
ECHO = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure"]


class Mesh:
    """etcd + registry + router + scheduler in this process."""

    def __init__(self, workdir: Path, *, router_etcd: bool = False, **scheduler: Any) -> None:
        self.workdir = workdir
        self.etcd = LocalEtcd(workdir / "etcd", client_port=free_port(), log_path=workdir / "etcd.log")
        self.router_etcd = router_etcd
        self.scheduler_options = scheduler
        self.scheduler_stopped = False

    async def __aenter__(self) -> Mesh:
        self.etcd.start()
        self.registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=self.etcd.endpoint))
        await self.registry.start()
        self.router = RouterServer(RouterConfig(insecure=True,
            port=0, registry=self.registry.address, etcd=self.etcd.endpoint if self.router_etcd else None))
        await self.router.start()
        self.scheduler = SchedulerServer(SchedulerConfig(insecure=True,
            port=0, etcd=self.etcd.endpoint, registry=self.registry.address, state_dir=self.workdir / "state",
            **self.scheduler_options))
        await self.scheduler.start()
        while not self.scheduler.is_leader:  # noqa: ASYNC110 - polling another component's state
            await asyncio.sleep(0.05)
        self.channel = grpc.aio.insecure_channel(self.scheduler.address)
        self.api = scheduler_pb2_grpc.SchedulerServiceStub(self.channel)
        self.registry_client = RegistryClient(self.registry.address, credentials=Credentials.insecure())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.registry_client.close()
        if not self.scheduler_stopped:
            await self.scheduler.stop(timedelta(seconds=1))
        await self.router.stop()
        await self.registry.stop()
        self.etcd.stop()

    async def status(self, name: str) -> P.DeploymentStatus:
        reply = await self.api.GetDeployment(P.GetDeploymentRequest(namespace=NAMESPACE, name=name))
        return reply.deployment.status

    async def wait(self, name: str, *, ready: int, replicas: int | None = None, version: str = "",
                   within: float = 120.0) -> float:
        """Seconds until the status shows `ready` ready replicas (and no others)."""
        start = time.monotonic()
        while True:
            s = await self.status(name)
            if s.ready_replicas == ready and s.replicas == (ready if replicas is None else replicas) and \
                    (not version or (s.current_version == version and s.updated_replicas == ready)):
                return time.monotonic() - start
            if time.monotonic() - start > within:
                raise TimeoutError(f"{name}: {s.ready_replicas} ready of {ready} after {within}s")
            await asyncio.sleep(0.01)


def process_agent(agent_id: str, version: str = "1.0.0") -> registry_pb2.Agent:
    return registry_pb2.Agent(id=agent_id, namespace=NAMESPACE, type=agent_id, version=version, runtime="process",
                              capabilities=["echo"], config=to_struct({"command": ECHO, "workdir": str(ROOT)}))


async def measure_scale(mesh: Mesh, agent: registry_pb2.Agent, rounds: int) -> list[float]:
    """Seconds from a 3 -> 6 scale to six ready replicas, per round."""
    await mesh.registry_client.update_agent(agent, allow_missing=True)
    name = f"scale-{agent.runtime}"
    d = P.Deployment(name=name, namespace=NAMESPACE, spec=P.DeploymentSpec(agent_id=agent.id, replicas=3))
    await mesh.api.CreateDeployment(P.CreateDeploymentRequest(deployment=d))
    await mesh.wait(name, ready=3)
    out = []
    try:
        for n in range(rounds):
            await mesh.api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=NAMESPACE, name=name, replicas=6))
            seconds = await mesh.wait(name, ready=6)
            out.append(seconds)
            print(f"  {agent.runtime} round {n + 1}: 3 -> 6 ready in {seconds:.2f} s", file=sys.stderr)
            await mesh.api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=NAMESPACE, name=name, replicas=3))
            await mesh.wait(name, ready=3)
    finally:
        await mesh.api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=NAMESPACE, name=name, wait=True))
    return out


class SchedulerProcess:
    """`python -m sutradhar.services.scheduler` as a child (default settings)."""

    def __init__(self, mesh: Mesh, member: str) -> None:
        import subprocess

        self.member = member
        self.log = mesh.workdir / f"scheduler-{member}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sutradhar.services.scheduler", "--insecure", "--port", "0", "--etcd",
                mesh.etcd.endpoint,
             "--registry", mesh.registry.address, "--state-dir", str(mesh.workdir / "state"),
             "--member-id", member],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)

    async def address(self) -> str:
        for _ in range(400):
            for line in self.log.read_text().splitlines():
                if "scheduler listening on" in line:
                    return line.rsplit(" ", 1)[-1]
            await asyncio.sleep(0.05)
        raise TimeoutError(self.log.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


async def measure_failover(mesh: Mesh, rounds: int) -> dict[str, Any]:
    """Two scheduler processes (election TTL 5 s); SIGKILL the leader; seconds until the
    other leads, and whether the replicas stayed the same (adopted, not duplicated)."""
    from sutradhar.services.common import keys
    from sutradhar.services.common.store import EtcdEndpoint, Store
    from sutradhar.services.scheduler.election import election_prefix

    await mesh.scheduler.stop(timedelta(seconds=1))  # only the two processes campaign
    mesh.scheduler_stopped = True
    await mesh.registry_client.update_agent(process_agent("ha"), allow_missing=True)
    store = Store(EtcdEndpoint.parse(mesh.etcd.endpoint))
    procs = {m: SchedulerProcess(mesh, m) for m in ("a", "b")}
    takeovers: list[float] = []
    same_replicas: list[bool] = []

    async def leader() -> str:
        kvs, _ = await store.list(election_prefix("scheduler"))
        return min(kvs, key=lambda kv: kv.create_revision).value.decode() if kvs else ""

    async def status() -> P.DeploymentStatus:
        kv = await store.get(keys.deployment_key(NAMESPACE, "ha"))
        assert kv is not None
        return keys.decode(kv.value, P.Deployment).status

    async def until(check: Any, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while not await check():
            if time.monotonic() > deadline:
                raise TimeoutError("failover benchmark: condition not met")
            await asyncio.sleep(0.01)

    async def ready3() -> bool:
        s = await status()
        return s.ready_replicas == 3 and s.replicas == 3

    try:
        address = await procs["a"].address()
        await procs["b"].address()
        async with grpc.aio.insecure_channel(address) as channel:
            api = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            d = P.Deployment(name="ha", namespace=NAMESPACE, spec=P.DeploymentSpec(agent_id="ha", replicas=3))
            await api.CreateDeployment(P.CreateDeploymentRequest(deployment=d))
        await until(ready3)
        for n in range(rounds):
            before = {r.native_id for r in (await status()).replica_statuses}
            current = await leader()
            other = next(m for m in procs if m != current)
            killed_at = time.monotonic()
            procs[current].kill()

            async def other_leads(expected: str = other) -> bool:
                return await leader() == expected

            await until(other_leads, within=15)
            takeovers.append(time.monotonic() - killed_at)
            await asyncio.sleep(12)  # past the instance TTL: the new leader keeps the same instances alive
            s = await status()
            after = {r.native_id for r in s.replica_statuses}
            same_replicas.append(after == before and s.ready_replicas == 3)
            print(f"  failover {n + 1}: {current} -> {other} in {takeovers[-1]:.2f} s, replicas kept: "
                  f"{same_replicas[-1]}", file=sys.stderr)
            procs[current] = SchedulerProcess(mesh, current)  # back as a follower
            address = await procs[current].address()
        async with grpc.aio.insecure_channel(address) as channel:
            api = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=NAMESPACE, name="ha", wait=True))
    finally:
        for p in procs.values():
            p.kill()
        await store.close()
    return {"what": "seconds from SIGKILL of the leading scheduler process to the other one leading "
                    "(election TTL 5 s), and whether the 3 replicas stayed the same processes",
            "election_ttl_seconds": 5.0, "seconds": _stats(takeovers), "per_round": [round(t, 3) for t in takeovers],
            "replicas_kept": same_replicas}


async def measure_rollouts(mesh: Mesh, rollouts: int, *, callers: int = 8, replicas: int = 4) -> dict[str, Any]:
    """Failed calls through the router while rolling versions under steady load."""
    await mesh.registry_client.update_agent(process_agent("roller", "1.0.0"), allow_missing=True)
    d = P.Deployment(name="roller", namespace=NAMESPACE, spec=P.DeploymentSpec(agent_id="roller", replicas=replicas))
    await mesh.api.CreateDeployment(P.CreateDeploymentRequest(deployment=d))
    await mesh.wait("roller", ready=replicas)
    await asyncio.sleep(1.0)  # routers see every instance
    calls = failures = 0
    errors: list[str] = []
    stop = asyncio.Event()

    async def caller() -> None:
        nonlocal calls, failures
        async with RouterClient(mesh.router.address, credentials=Credentials.insecure()) as client:
            while not stop.is_set():
                calls += 1
                try:
                    result = await client.execute("roller", {"n": calls}, namespace=NAMESPACE,
                                                  timeout=timedelta(seconds=10))
                    if not result.success:
                        failures += 1
                        errors.append(str(result.error))
                except Exception as err:
                    failures += 1
                    errors.append(repr(err))

    tasks = [asyncio.create_task(caller()) for _ in range(callers)]
    durations = []
    started = time.monotonic()
    try:
        await asyncio.sleep(1.0)
        for n in range(rollouts):
            version = f"1.{n + 1}.0"
            t0 = time.monotonic()
            await mesh.registry_client.update_agent(process_agent("roller", version))
            await mesh.wait("roller", ready=replicas, version=version)
            durations.append(time.monotonic() - t0)
            print(f"  rollout to {version}: {durations[-1]:.2f} s, {failures} failed of {calls} so far",
                  file=sys.stderr)
            await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    await mesh.api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=NAMESPACE, name="roller", wait=True))
    return {
        "rollouts": rollouts, "replicas": replicas, "callers": callers, "calls": calls, "failed_calls": failures,
        "calls_per_second": round(calls / elapsed, 1), "rollout_seconds": [round(x, 2) for x in durations],
        "errors": errors[:10], "target_failed_calls": 0,
    }


def _container_image() -> tuple[str, str]:
    """(image, "") or ("", why the container runtime is skipped)."""
    try:
        from sutradhar.services.scheduler.images import build_agent_image
        from sutradhar.services.scheduler.runtimes.container import docker_client

        docker_client()
        return build_agent_image(progress=lambda line: print(line, file=sys.stderr)).tags[0], ""
    except Exception as err:
        return "", f"no Docker engine or image: {type(err).__name__}: {err}"


def _stats(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="sutradhar-bench-scheduler-"))
    from sutradhar.services.scheduler.runtimes.container import SCOPE_ENV

    os.environ[SCOPE_ENV] = f"bench-{uuid.uuid4().hex[:8]}"  # never adopt anyone else's containers
    result: dict[str, Any] = {
        "benchmark": "scheduler",
        "machine": {"cpus": os.cpu_count()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        async with Mesh(workdir) as mesh:
            print("process runtime: scale 3 -> 6", file=sys.stderr)
            seconds = await measure_scale(mesh, process_agent("echo"), args.rounds)
            result["scale_process"] = {"what": "seconds from ScaleDeployment 3 -> 6 to six ready, registered "
                                               "process replicas (echo agent)", "target_seconds": 2.0,
                                       "rounds": len(seconds), "seconds": _stats(seconds),
                                       "per_round": [round(s, 3) for s in seconds]}
            image, why = ("", "skipped by --no-container") if args.no_container else _container_image()
            if image:
                print("container runtime: scale 3 -> 6", file=sys.stderr)
                agent = registry_pb2.Agent(
                    id="boxed", namespace=NAMESPACE, type="boxed", version="1.0.0", runtime="container",
                    capabilities=["echo"],
                    config=to_struct({"image": image, "command": ["examples.echo_agent:EchoAgent"]}))
                seconds = await measure_scale(mesh, agent, args.rounds)
                result["scale_container"] = {"what": "seconds from ScaleDeployment 3 -> 6 to six ready, registered "
                                                     "containers (echo agent image)", "target_seconds": 3.0,
                                             "image": image, "rounds": len(seconds), "seconds": _stats(seconds),
                                             "per_round": [round(s, 3) for s in seconds]}
            else:
                result["scale_container"] = {"skipped": why, "target_seconds": 3.0}
            print("rolling updates under load through the router", file=sys.stderr)
            result["rolling_update"] = await measure_rollouts(mesh, args.rollouts)
            if args.failovers:
                print("leader failover (two scheduler processes)", file=sys.stderr)
                result["failover"] = await measure_failover(mesh, args.failovers)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rollouts", type=int, default=3)
    p.add_argument("--no-container", action="store_true", help="skip the container runtime")
    p.add_argument("--failovers", type=int, default=3, help="leader SIGKILL rounds (0 skips)")
    args = p.parse_args()
    result = asyncio.run(run(args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'measure':<44}{'min':>8}{'median':>8}{'max':>8}  target")
    labels = (("scale_process", "process 3 -> 6 ready (s)"), ("scale_container", "container 3 -> 6 ready (s)"))
    for key, label in labels:
        entry = result[key]
        if "seconds" in entry:
            s = entry["seconds"]
            print(f"{label:<44}{s['min']:>8.2f}{s['median']:>8.2f}{s['max']:>8.2f}  < {entry['target_seconds']:g}")
        else:
            print(f"{label:<44}  skipped: {entry['skipped']}")
    r = result["rolling_update"]
    print(f"{'failed calls during ' + str(r['rollouts']) + ' rolling updates':<44}"
          f"{r['failed_calls']:>8} of {r['calls']} calls  target 0")
    if "failover" in result:
        f = result["failover"]
        s = f["seconds"]
        print(f"{'leader failover after SIGKILL (s), TTL 5 s':<44}{s['min']:>8.2f}{s['median']:>8.2f}{s['max']:>8.2f}"
              f"  <= 5; replicas kept {sum(f['replicas_kept'])}/{len(f['replicas_kept'])}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
