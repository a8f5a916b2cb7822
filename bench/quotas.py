"""Benchmark: what a quota admission adds to a write (docs/quotas.md, decision 0010).

Starts a local etcd and an insecure registry in this process and times sequential
RegisterAgent + DeregisterAgent pairs (the register is the quota-checked write) in
namespaces that differ only in their quotas:

- ``no quota``: the guard key is read and compared, the quota prefix listed (empty);
- ``agents quota, N agents``: one ResourceQuota (agents: 1000000) in a namespace that
  already holds N agents: the admission also reads the namespace's agent and deployment
  *keys* and bumps the guard in the write's transaction;
- ``cpu quota, N agents``: a quota on cpu (100000 cores): the agents' and deployments'
  values are read as well (the most an admission reads).

Every variant runs `--rounds` times interleaved; the best round's median counts. Prints
a table and writes bench/results/quotas.json as ``{variant: {"p50_ms", "mean_ms",
"added_p50_ms"}}``.

    .venv/bin/python bench/quotas.py [--calls 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "quotas.json"
sys.path.insert(0, str(ROOT))

from sutradhar._clients import QuotaClient, RegistryClient  # noqa: E402
from sutradhar._credentials import Credentials  # noqa: E402
from sutradhar._values import to_struct  # noqa: E402
from sutradhar.services.common.etcd_server import LocalEtcd, free_port  # noqa: E402
from sutradhar.services.registry import RegistryServer  # noqa: E402
from sutradhar.services.registry.config import RegistryConfig  # noqa: E402
from sutradhar.v1 import quota_pb2, registry_pb2  # noqa: E402


def agent(agent_id: str, namespace: str) -> registry_pb2.Agent:
    return registry_pb2.Agent(id=agent_id, namespace=namespace, type="echo", version="1.0.0", runtime="http",
                              config=to_struct({"urls": ["http://127.0.0.1:9/"]}), resources={"cpu": "100m"})


async def one_round(registry: RegistryClient, namespace: str, calls: int) -> list[float]:
    times = []
    for i in range(calls):
        started = time.perf_counter()
        await registry.register_agent(agent(f"bench-{i}", namespace))
        times.append(time.perf_counter() - started)
        await registry.deregister_agent(f"bench-{i}", namespace=namespace)
    return times


async def run(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    root = Path(tempfile.mkdtemp(prefix="sutradhar-bench-quotas-"))
    etcd = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log")
    etcd.start()
    server = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd.endpoint))
    try:
        await server.start()
        variants = {"no quota": ("bench-free", 0, {}),
                    "agents quota, 10 agents": ("bench-a10", 10, {"agents": "1000000"}),
                    "agents quota, 200 agents": ("bench-a200", 200, {"agents": "1000000"}),
                    "cpu quota, 10 agents": ("bench-c10", 10, {"cpu": "100000"}),
                    "cpu quota, 200 agents": ("bench-c200", 200, {"cpu": "100000"})}
        insecure = Credentials.insecure()  # the bench's registry, not a credential file's context
        async with RegistryClient(server.address, credentials=insecure) as registry, \
                QuotaClient(server.address, credentials=insecure) as quotas:
            for namespace, existing, hard in variants.values():
                for i in range(existing):
                    await registry.register_agent(agent(f"held-{i}", namespace))
                if hard:
                    await quotas.apply_quota(quota_pb2.ResourceQuota(
                        namespace=namespace, name="q", spec=quota_pb2.ResourceQuotaSpec(hard=hard)))
            best: dict[str, list[float]] = {}
            for _ in range(rounds):
                for name, (namespace, _existing, _hard) in variants.items():
                    times = await one_round(registry, namespace, calls)
                    if name not in best or statistics.median(times) < statistics.median(best[name]):
                        best[name] = times
        base = statistics.median(best["no quota"])
        return {name: {"p50_ms": round(statistics.median(t) * 1000, 3), "mean_ms": round(statistics.fmean(t) * 1000, 3),
                       "added_p50_ms": round((statistics.median(t) - base) * 1000, 3)}
                for name, t in best.items()}
    finally:
        await server.stop(timedelta(seconds=1))
        etcd.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(run(args.calls, args.rounds))
    print(f"{'variant':<26} {'p50 ms':>8} {'mean ms':>8} {'added p50':>10}")
    for name, r in results.items():
        print(f"{name:<26} {r['p50_ms']:>8.3f} {r['mean_ms']:>8.3f} {r['added_p50_ms']:>+10.3f}")
    RESULTS.write_text(json.dumps({
        "calls": args.calls, "rounds": args.rounds, "cpus": os.cpu_count(), "python": platform.python_version(),
        "results": results,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
