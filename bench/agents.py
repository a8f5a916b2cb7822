"""Benchmark: the TypeScript echo agent against the Python echo agent, direct and through the router,
in the same run.

Starts a private etcd, a registry, one Python echo agent (``examples.echo_agent:EchoAgent`` served by
``python -m sutradhar.serve``, agent id "echo") and one TypeScript echo agent
(``node examples/typescript/dist/echo/agent.js``, agent id "ts-echo"), both registered in namespace
"bench", and a router process, all on 127.0.0.1. Then, from this one client process, with bench/router.py's
load (pre-serialized request bytes on a raw channel, the same task of type "echo" to both):

- sequential: `--sequential` calls one after the other -> p50 / p99;
- throughput: `--concurrency` calls in flight, `--calls` calls or `--seconds` at most -> rps.

Targets: "py-direct" and "ts-direct" call the agent's ``AgentService/Execute``; "py-routed" and
"ts-routed" call the router's ``RouterService/Execute`` with a selector naming the agent id. Every target
is measured `--rounds` times, interleaved (the language that goes first alternates from round to round),
and the best round counts. "server cpu/call" is the CPU per call of the agent process (direct rows) or of
the router (routed rows) in the throughput phase. The table ends with TypeScript against Python per
path (best rounds and the median of the per-round ratios). Writes bench/results/agents.json.

The TypeScript SDK and examples must be built first:
``(cd sdk/typescript && npm ci && npm run build) && (cd examples/typescript && npm ci && npm run build)``.

    .venv/bin/python bench/agents.py [--rounds 2] [--seconds 5] [--sequential 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from router import AGENT_PATH, NAMESPACE, ROUTER_PATH, Proc, free_port, measure, wait_router  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "agents.json"
TS_ECHO = ROOT / "examples" / "typescript" / "dist" / "echo" / "agent.js"
#: language -> the agent id it registers under in namespace "bench"
AGENT_IDS = {"py": "echo", "ts": "ts-echo"}
TARGETS = ("py-direct", "ts-direct", "py-routed", "ts-routed")


def requests() -> dict[str, tuple[str, bytes]]:
    """Per target: the method path and the pre-serialized request (the same task everywhere)."""
    from sutradhar._values import to_value
    from sutradhar.v1 import agent_pb2, router_pb2

    task = agent_pb2.Task(id="bench-task", type="echo", payload=to_value({"message": "hello", "n": 42}))
    out: dict[str, tuple[str, bytes]] = {}
    for lang, agent_id in AGENT_IDS.items():
        out[f"{lang}-direct"] = (AGENT_PATH, agent_pb2.ExecuteRequest(task=task).SerializeToString())
        selector = router_pb2.Selector(namespace=NAMESPACE, agent_type="echo", agent_id=agent_id)
        out[f"{lang}-routed"] = (ROUTER_PATH, router_pb2.RouterServiceExecuteRequest(
            task=task, selector=selector).SerializeToString())
    return out


def order_of(round_no: int) -> list[str]:
    """The targets of a round: direct then routed, the language first alternating by round."""
    langs = ["py", "ts"] if round_no % 2 == 0 else ["ts", "py"]
    return [f"{lang}-{path}" for path in ("direct", "routed") for lang in langs]


def ts_against_py(best: dict[str, dict[str, float]],
                  per_round: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Print and return TypeScript's throughput and p50 relative to Python's, per path."""
    out: dict[str, Any] = {}
    print("\nTypeScript against Python (best rounds; median of per-round ratios):")
    for path in ("direct", "routed"):
        ts, py = best[f"ts-{path}"], best[f"py-{path}"]
        pairs = list(zip(per_round[f"ts-{path}"], per_round[f"py-{path}"], strict=True))
        rps = round(ts["rps"] / py["rps"], 3)
        p50 = round(ts["p50_ms"] / py["p50_ms"], 3)
        rps_median = round(statistics.median(t["rps"] / p["rps"] for t, p in pairs), 3)
        p50_median = round(statistics.median(t["p50_ms"] / p["p50_ms"] for t, p in pairs), 3)
        out[path] = {"rps_ratio": rps, "p50_ratio": p50, "rps_ratio_median": rps_median,
                     "p50_ratio_median": p50_median}
        print(f"  {path:<7} throughput x{rps} (median x{rps_median}), p50 x{p50} (median x{p50_median})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=1000, help="sequential calls for p50/p99")
    parser.add_argument("--calls", type=int, default=20000, help="calls in the throughput phase at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the throughput phase at most")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2,
                        help="measure every target this many times, interleaved; report the best round")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    node = shutil.which("node")
    if node is None:
        parser.error("node (>= 18) is needed: apt-get install -y nodejs npm")
    if not TS_ECHO.exists():
        parser.error(f"{TS_ECHO.relative_to(ROOT)} is missing: build the TypeScript SDK and examples first "
                     "(see this file's docstring)")
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()

    from sutradhar.services.common.etcd_server import LocalEtcd

    tmp = Path(tempfile.mkdtemp(prefix="sutradhar-bench-agents-"))
    procs: list[Proc] = []
    etcd = LocalEtcd(tmp / "etcd", client_port=free_port(), log_path=tmp / "etcd.log")
    py = sys.executable
    best: dict[str, dict[str, float]] = {}
    per_round: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
    try:
        etcd.start()
        registry = Proc("registry", [py, "-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd",
                                     etcd.endpoint, "--log-level", "WARNING"], ready=r"listening on (\S+)")
        procs.append(registry)
        agents = {
            "py": Proc("py-echo", [py, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
                                   "--registry", registry.address, "--namespace", NAMESPACE,
                                   "--instance-id", "py-echo-0"], ready=r"listening on (\S+)"),
            "ts": Proc("ts-echo", [node, str(TS_ECHO)], ready=r"listening on (\S+)", env={
                "SUTRADHAR_INSECURE": "1", "SUTRADHAR_PORT": "0", "SUTRADHAR_REGISTRY": registry.address,
                "SUTRADHAR_NAMESPACE": NAMESPACE, "SUTRADHAR_INSTANCE_ID": "ts-echo-0",
                "SUTRADHAR_AGENT_ID": AGENT_IDS["ts"]}),
        }
        procs.extend(agents.values())
        router = Proc("router", [py, "-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                                 registry.address, "--etcd", etcd.endpoint, "--log-level", "WARNING"],
                      ready=r"listening on (\S+)")
        procs.append(router)
        asyncio.run(wait_router(router.address, len(agents)))
        how = requests()
        for round_no in range(args.rounds):
            for target in order_of(round_no):
                lang, path = target.split("-")
                server = agents[lang] if path == "direct" else router
                method, request = how[target]
                r = asyncio.run(measure(server.address, method, request, sequential=args.sequential,
                                        calls=args.calls, seconds=args.seconds, concurrency=args.concurrency,
                                        proxy_pid=server.pid))
                if r["errors"]:
                    raise RuntimeError(f"{target}: {r['errors']} of {r['calls']} calls failed")
                print(f"round {round_no + 1} {target:<10} {r['rps']:>8.0f} rps  p50 {r['p50_ms']:.3f} ms  "
                      f"p99 {r['p99_ms']:.3f} ms", flush=True)
                per_round[target].append(dict(r))
                kept = best.setdefault(target, dict(r))
                kept["rps"] = max(kept["rps"], r["rps"])
                if r["p50_ms"] < kept["p50_ms"]:
                    kept["p50_ms"], kept["p99_ms"] = r["p50_ms"], r["p99_ms"]
                kept["proxy_cpu_us"] = min(kept["proxy_cpu_us"], r["proxy_cpu_us"])
                kept["client_cpu_us"] = min(kept["client_cpu_us"], r["client_cpu_us"])
    finally:
        for proc in reversed(procs):
            proc.stop()
        etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'target':<10} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'server cpu/call':>16} {'client cpu/call':>16}")
    for target in TARGETS:
        r = best[target]
        print(f"{target:<10} {r['rps']:>9.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['proxy_cpu_us']:>13.0f} us"
              f" {r['client_cpu_us']:>13.0f} us")
    out: dict[str, Any] = {t: {"rps": best[t]["rps"], "p50_ms": best[t]["p50_ms"], "p99_ms": best[t]["p99_ms"],
                               "server_cpu_us": best[t]["proxy_cpu_us"], "client_cpu_us": best[t]["client_cpu_us"]}
                           for t in TARGETS}
    out["ts_against_py"] = ts_against_py(best, per_round)
    out["run"] = {"rounds": args.rounds, "seconds": args.seconds, "sequential": args.sequential,
                  "concurrency": args.concurrency, "cpus": os.cpu_count(), "python": platform.python_version(),
                  "node": node_version}
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"(1 replica each, {args.concurrency} in flight, {os.cpu_count()} cpus, Python {platform.python_version()},"
          f" Node {node_version})")
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
