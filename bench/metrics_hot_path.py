"""Micro-benchmark: what Prometheus metrics add to each routed call and each agent task, in CPU.

`bench/router.py --targets sutradhar,metrics` measures the whole router with and without metrics, but
its CPU-per-call ratio moves by ±10 % between rounds on a shared 2-core machine, more than the
metrics can cost. This measures the metrics' own work per call, in one process without a network,
so the figure does not depend on what else the machine does:

- ``router attempt OK``: `RouterMetrics.attempt` for an attempt that ended OK (the pre-bound
  request counter and latency histogram of the instance: what every routed call does once);
- ``router attempt UNAVAILABLE``: the same for a failed attempt (a per-code child, bound once);
- ``agent task``: `AgentPrometheus.task_done` (what an SDK agent does per task);
- ``router scrape, N instances``: one `/metrics` rendering of a router that knows N instances
  (in the metrics thread, not on the call path; reported per scrape).

Every variant runs `--rounds` times; the best round counts. With `--router-cpu-us` (the router's CPU
per routed call that `bench/router.py` prints for the `sutradhar` row, about 370 µs on this machine),
the table also gives the per-call cost as a share of it. Prints a table and writes
bench/results/metrics-hot-path.json.

    .venv/bin/python bench/metrics_hot_path.py [--calls 200000] [--rounds 5] [--router-cpu-us 370]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import grpc
from prometheus_client import generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "metrics-hot-path.json"

from sutradhar._prometheus import AgentPrometheus  # noqa: E402
from sutradhar._routing.backend import Backend  # noqa: E402
from sutradhar.services.common.metrics_router import RouterMetrics  # noqa: E402


def best_ns(fn: Callable[[], object], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def router_metrics(instances: int) -> tuple[RouterMetrics, list[Backend]]:
    """RouterMetrics over a view of `instances` serving instances of 8 agents (the router's own Backend)."""
    backends = []
    for i in range(instances):
        backend = Backend("default", f"agent-{i % 8}-{i:05d}")
        backend.agent_id = backend.agent_type = f"agent-{i % 8}"
        backend.state = "INSTANCE_STATE_SERVING"
        backends.append(backend)
    view = SimpleNamespace(backends={b.key: b for b in backends}, agents={("default", f"agent-{i}"): object()
                                                                          for i in range(8)})
    metrics = RouterMetrics(view)
    for backend in backends:
        metrics.attempt(backend, grpc.StatusCode.OK, 0.001)
    return metrics, backends


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--router-cpu-us", type=float, default=None,
                        help="the router's CPU per routed call from bench/router.py, for the share column")
    args = parser.parse_args(argv)

    metrics, (backend, *_) = router_metrics(1)
    agent = AgentPrometheus(agent="echo", namespace="default", task_types=["echo"], in_flight=lambda: 0)
    ok, unavailable = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE
    rows: dict[str, dict[str, float]] = {
        "router attempt OK": {"ns_per_call": best_ns(lambda: metrics.attempt(backend, ok, 0.00042),
                                                     args.calls, args.rounds)},
        "router attempt UNAVAILABLE": {"ns_per_call": best_ns(lambda: metrics.attempt(backend, unavailable, 0.002),
                                                              args.calls, args.rounds)},
        "agent task": {"ns_per_call": best_ns(lambda: agent.task_done("echo", True, 0.0003),
                                              args.calls, args.rounds)},
    }
    for instances in (10, 100):
        registry = router_metrics(instances)[0].registry
        rows[f"router scrape, {instances} instances"] = {
            "ns_per_scrape": best_ns(partial(generate_latest, registry), max(1, args.calls // 2000), args.rounds)}
    if args.router_cpu_us:
        for row in rows.values():
            if "ns_per_call" in row:
                row["share_of_router_cpu_per_call"] = round(row["ns_per_call"] / (args.router_cpu_us * 1000), 5)

    print(f"{'variant':<32} {'per call / scrape':>18} {'share of router CPU/call':>26}")
    for name, row in rows.items():
        per = row.get("ns_per_call", row.get("ns_per_scrape", 0.0))
        unit = "ns" if "ns_per_call" in row else "ns/scrape"
        share = row.get("share_of_router_cpu_per_call")
        print(f"{name:<32} {per:>12.0f} {unit:<9} {'' if share is None else f'{share * 100:.2f} %':>22}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "calls": args.calls, "rounds": args.rounds, "router_cpu_us": args.router_cpu_us, "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
