"""Benchmark: one health member probing N instances at a 1 s period.

Starts a private etcd, a few child processes that each serve many ports with
a grpc.aio `grpc.health.v1` servicer (all on 127.0.0.1), registers one agent
and N instances directly in etcd, then runs a health member in this process
for a bounded time and measures:

- probe lag: actual start - scheduled time of every probe (p50, p99, max);
- probes per second and failed probes;
- etcd writes per second (state changes + bookkeeping flushes);
- CPU time of this process (the member) per wall second.

With ``--compare-tasks`` it also runs the naive design (one asyncio task per
instance, each with its own sleep loop) over the same endpoints, for the
record. Prints a table and writes bench/results/health.json.

    .venv/bin/python bench/health.py [--instances 1000] [--period 1] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "health.json"


# -- child: many ports of grpc.health.v1 ------------------------------------------


async def serve_ports(count: int) -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    ports = [server.add_insecure_port("127.0.0.1:0") for _ in range(count)]
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    print(json.dumps(ports), flush=True)
    # Runs until the parent closes stdin (bounded by the parent's run time).
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await server.stop(0)


# -- parent --------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def register(store, n: int, endpoints: list[str], period: float, ns: str) -> int:
    from google.protobuf import json_format

    from sutradhar.services.common import keys
    from sutradhar.v1 import registry_pb2

    agent = json_format.ParseDict(
        {"id": "bench", "namespace": ns, "type": "bench", "version": "1.0.0", "runtime": "process",
         "probes": {"readiness": {"kind": "grpc", "period": f"{period}s", "timeout": "1s"}}},
        registry_pb2.Agent(),
    )
    await store.put(keys.agent_key(ns, "bench"), keys.encode(agent))
    lease = await store.grant_lease(timedelta(seconds=600))
    past = datetime.now(UTC) - timedelta(minutes=5)
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        inst = registry_pb2.Instance(id=f"b{i:04d}", namespace=ns, agent_id="bench", endpoint=endpoints[i],
                                     runtime="process", state=registry_pb2.INSTANCE_STATE_SERVING, lease_id=lease)
        inst.register_time.FromDatetime(past)
        async with sem:
            await store.put(keys.instance_key(ns, inst.id), keys.encode(inst), lease=lease)

    await asyncio.gather(*(one(i) for i in range(n)))
    return lease


async def run_member(etcd: str, seconds: float, warmup: float, flush: float) -> dict:
    from sutradhar.services.health import HealthConfig, HealthServer
    from sutradhar.services.health.schedule import LagStats

    server = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd, member_ttl=timedelta(seconds=5),
                                       flush_interval=timedelta(seconds=flush)))
    await server.start()
    manager = server.manager
    try:
        await asyncio.sleep(warmup)
        manager.scheduler.stats = LagStats(window=10**7)
        writes0, commits0, cpu0, t0 = manager.writes, manager.commits, cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        stats = manager.scheduler.stats
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds() - cpu0
        lags = list(stats.lags)
        failing = sum(1 for t in manager.targets.values()
                      if t.trackers[next(iter(t.trackers))].last_result == 2)
        return {
            "design": "one heap scheduler (this service)",
            "instances_probed": len(manager.targets),
            "probes": stats.started,
            "probes_per_second": round(stats.started / elapsed, 1),
            "lag_p50_ms": round(pct(lags, 0.50) * 1000, 2),
            "lag_p99_ms": round(pct(lags, 0.99) * 1000, 2),
            "lag_max_ms": round(max(lags, default=0.0) * 1000, 2),
            "lag_mean_ms": round(statistics.fmean(lags) * 1000, 2) if lags else 0.0,
            "instances_failing_last_probe": failing,
            "instance_writes_per_second": round((manager.writes - writes0) / elapsed, 1),
            "etcd_transactions_per_second": round((manager.commits - commits0) / elapsed, 1),
            "cpu_percent_of_one_core": round(100 * cpu / elapsed, 1),
        }
    finally:
        await server.stop()


async def run_tasks(endpoints: list[str], period: float, seconds: float, warmup: float) -> dict:
    """The naive design: one task per instance, each sleeping its own period."""
    from sutradhar.services.common.probing import Probers
    from sutradhar.services.health.probes import ProbeSettings

    probers = Probers(member_id="bench-tasks")
    settings = ProbeSettings(kind="grpc", period=timedelta(seconds=period))
    lags: list[float] = []
    record = [False]
    ok = [0, 0]

    async def loop(endpoint: str, offset: float) -> None:
        due = time.monotonic() + offset
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            start = time.monotonic()
            if record[0]:
                lags.append(start - due)
            out = await probers.check(endpoint, settings)
            ok[0 if out.ok else 1] += 1
            due += period
            while due < time.monotonic():
                due += period

    tasks = [asyncio.create_task(loop(ep, period * i / len(endpoints))) for i, ep in enumerate(endpoints)]
    try:
        await asyncio.sleep(warmup)
        record[0] = True
        cpu0, t0 = cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        record[0] = False
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds() - cpu0
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await probers.close()
    return {
        "design": "one task per instance with its own sleep (for comparison)",
        "probes": len(lags),
        "probes_per_second": round(len(lags) / elapsed, 1),
        "lag_p50_ms": round(pct(lags, 0.50) * 1000, 2),
        "lag_p99_ms": round(pct(lags, 0.99) * 1000, 2),
        "lag_max_ms": round(max(lags, default=0.0) * 1000, 2),
        "cpu_percent_of_one_core": round(100 * cpu / elapsed, 1),
    }


async def main_async(args: argparse.Namespace) -> dict:
    from sutradhar.services.common.etcd_server import LocalEtcd, free_port
    from sutradhar.services.common.store import EtcdEndpoint, Store

    tmp = Path(tempfile.mkdtemp(prefix="sutradhar-bench-health-"))
    etcd = LocalEtcd(tmp / "data", client_port=free_port(), log_path=tmp / "etcd.log")
    etcd.start()
    children: list[subprocess.Popen[str]] = []
    try:
        per = -(-args.instances // args.processes)
        endpoints: list[str] = []
        for _ in range(args.processes):
            child = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
                [sys.executable, __file__, "--serve-ports", str(per)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            children.append(child)
        for child in children:
            assert child.stdout is not None
            endpoints += [f"127.0.0.1:{p}" for p in json.loads(child.stdout.readline())]
        endpoints = endpoints[: args.instances]
        store = Store(EtcdEndpoint.parse(etcd.endpoint))
        t0 = time.monotonic()
        await register(store, args.instances, endpoints, args.period, "bench")
        register_s = time.monotonic() - t0
        await store.close()
        result: dict = {
            "benchmark": "health",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1m_at_start": round(os.getloadavg()[0], 2)},
            "instances": args.instances,
            "endpoint_processes": args.processes,
            "period_s": args.period,
            "measured_s": args.seconds,
            "warmup_s": args.warmup,
            "register_instances_s": round(register_s, 2),
            "flush_interval_s": args.flush_interval,
            "member": await run_member(etcd.endpoint, args.seconds, args.warmup, args.flush_interval),
        }
        if args.compare_tasks:
            result["tasks_per_instance"] = await run_tasks(endpoints, args.period, args.seconds, args.warmup)
        result["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        return result
    finally:
        for child in children:
            try:
                if child.stdin:
                    child.stdin.close()
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(result: dict) -> None:
    rows = [result["member"]] + ([result["tasks_per_instance"]] if "tasks_per_instance" in result else [])
    print(f"health bench: {result['instances']} instances, period {result['period_s']}s, "
          f"{result['measured_s']}s measured after {result['warmup_s']}s warm-up "
          f"(load average {result['machine']['load_average_1m_at_start']} -> "
          f"{result['machine']['load_average_1m_at_end']} on {result['machine']['cpus']} cores)")
    head = f"{'design':<58} {'probes/s':>9} {'lag p50':>9} {'lag p99':>9} {'lag max':>9} {'cpu %':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['design']:<58} {r['probes_per_second']:>9} {r['lag_p50_ms']:>7}ms {r['lag_p99_ms']:>7}ms "
              f"{r['lag_max_ms']:>7}ms {r['cpu_percent_of_one_core']:>7}")
    m = result["member"]
    print(f"member: {m['instance_writes_per_second']} instance writes/s in "
          f"{m['etcd_transactions_per_second']} etcd transactions/s; failing instances: "
          f"{m['instances_failing_last_probe']}; instances probed: {m['instances_probed']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4, help="endpoint processes")
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--flush-interval", type=float, default=10.0, help="member's bookkeeping flush (s)")
    parser.add_argument("--compare-tasks", action="store_true")
    parser.add_argument("--serve-ports", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.serve_ports:
        asyncio.run(serve_ports(args.serve_ports))
        return 0
    result = asyncio.run(main_async(args))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
