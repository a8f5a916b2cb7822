"""The autoscaler under a load ramp through the router.

    .venv/bin/python bench/autoscale.py [--target 2] [--max 8] [--down-window 15] [--stage-seconds 10]

Runs a mesh in this process (private etcd, registry, one router that publishes
its per-instance load to etcd, the scheduler with a 1 s autoscale period) and
an autoscaled process deployment of the echo agent (each task sleeps 0.25 s,
so each caller keeps about one task in flight). The number of concurrent
callers ramps up and back down in stages; every half second the benchmark
records the callers, the in-flight load the routers report, and the desired
and ready replica counts.

Writes bench/results/autoscale.json and bench/results/autoscale.png (load and
replicas over time; needs matplotlib from the `bench` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from google.protobuf import duration_pb2  # noqa: E402
from scheduler import NAMESPACE, Mesh, process_agent  # noqa: E402

from sutradhar._clients import RouterClient  # noqa: E402
from sutradhar._credentials import Credentials  # noqa: E402
from sutradhar.services.common import keys  # noqa: E402
from sutradhar.services.common.store import EtcdEndpoint, Store  # noqa: E402
from sutradhar.v1 import scheduler_pb2 as P  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "autoscale.json"
PLOT = ROOT / "bench" / "results" / "autoscale.png"
RAMP = (1, 2, 4, 8, 12, 16, 12, 8, 4, 2, 1, 0)
TASK_SECONDS = 0.25


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="sutradhar-bench-autoscale-"))
    samples: list[dict[str, Any]] = []
    calls = failures = 0
    try:
        async with Mesh(workdir, router_etcd=True, autoscale_period=timedelta(seconds=1)) as mesh:
            await mesh.registry_client.update_agent(process_agent("busy"), allow_missing=True)
            policy = P.AutoscalePolicy(
                min_replicas=1, max_replicas=args.max, target_in_flight=args.target,
                scale_down_window=duration_pb2.Duration(seconds=args.down_window))
            d = P.Deployment(name="busy", namespace=NAMESPACE,
                             spec=P.DeploymentSpec(agent_id="busy", replicas=1, autoscale=policy))
            await mesh.api.CreateDeployment(P.CreateDeploymentRequest(deployment=d))
            await mesh.wait("busy", ready=1)
            await asyncio.sleep(1.5)
            store = Store(EtcdEndpoint.parse(mesh.etcd.endpoint))
            callers: list[asyncio.Task[None]] = []
            target_callers = 0

            async def caller(index: int) -> None:
                nonlocal calls, failures
                async with RouterClient(mesh.router.address, credentials=Credentials.insecure()) as client:
                    while index < target_callers:
                        calls += 1
                        try:
                            result = await client.execute("busy", {"sleep": TASK_SECONDS}, namespace=NAMESPACE,
                                                          timeout=timedelta(seconds=10))
                            failures += 0 if result.success else 1
                        except Exception:
                            failures += 1

            async def sample(start: float) -> None:
                while True:
                    reply = await mesh.api.GetDeployment(P.GetDeploymentRequest(namespace=NAMESPACE, name="busy"))
                    dep = reply.deployment
                    live = {r.id for r in dep.status.replica_statuses if r.phase == P.REPLICA_PHASE_RUNNING}
                    kvs, _ = await store.list(f"{keys.ROOT}{keys.LOAD}/{NAMESPACE}/")
                    in_flight = sum(float(json.loads(kv.value).get("in_flight", 0)) for kv in kvs
                                    if kv.key.rsplit("/", 2)[-2] in live)
                    samples.append({
                        "t": round(time.monotonic() - start, 2), "callers": target_callers,
                        "in_flight": round(in_flight, 2), "desired": dep.spec.replicas,
                        "ready": dep.status.ready_replicas,
                        "per_replica": dep.status.autoscale.current_in_flight,
                    })
                    await asyncio.sleep(0.5)

            start = time.monotonic()
            sampler = asyncio.create_task(sample(start))
            try:
                for level in RAMP:
                    target_callers = level
                    callers = [c for c in callers if not c.done()]
                    for i in range(len(callers), level):
                        callers.append(asyncio.create_task(caller(i)))
                    print(f"  t={time.monotonic() - start:5.1f}s callers={level:2d} "
                          f"replicas={samples[-1]['desired'] if samples else 1}", file=sys.stderr)
                    await asyncio.sleep(args.stage_seconds)
                target_callers = 0
                await asyncio.sleep(args.down_window + 5)
            finally:
                target_callers = 0
                await asyncio.gather(*callers)
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            reply = await mesh.api.GetDeployment(P.GetDeploymentRequest(namespace=NAMESPACE, name="busy"))
            events = [{"t": round(e.time.ToDatetime().timestamp() - (time.time() - (time.monotonic() - start)), 1),
                       "message": e.message}
                      for e in reply.deployment.status.events if e.reason == "Scaled"]
            await mesh.api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=NAMESPACE, name="busy", wait=True))
            await store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    desired = [s["desired"] for s in samples]
    changes = [b - a for a, b in itertools.pairwise(desired) if b != a]
    reversals = sum(1 for a, b in itertools.pairwise(changes) if (a > 0) != (b > 0))
    return {
        "benchmark": "autoscale",
        "what": "desired/ready replicas of an autoscaled process deployment under a ramp of concurrent callers "
                "through the router (each task sleeps 0.25 s)",
        "policy": {"min": 1, "max": args.max, "target_in_flight": args.target, "tolerance": 0.1,
                   "scale_up_window_s": 0, "scale_down_window_s": args.down_window, "autoscale_period_s": 1},
        "ramp_callers": list(RAMP), "stage_seconds": args.stage_seconds,
        "calls": calls, "failed_calls": failures,
        "max_replicas_reached": max(desired), "replica_changes": len(changes),
        "direction_reversals": reversals,
        "scale_events": events,
        "samples": samples,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def plot(result: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: pip install -e '.[bench]' for the plot", file=sys.stderr)
        return False
    s = result["samples"]
    t = [x["t"] for x in s]
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot(t, [x["callers"] for x in s], label="concurrent callers", color="tab:gray", linestyle="--")
    ax.plot(t, [x["in_flight"] for x in s], label="in-flight (routers' report)", color="tab:orange")
    ax.set_xlabel("seconds")
    ax.set_ylabel("load")
    ax2 = ax.twinx()
    ax2.step(t, [x["desired"] for x in s], where="post", label="desired replicas", color="tab:blue")
    ax2.step(t, [x["ready"] for x in s], where="post", label="ready replicas", color="tab:green", linestyle=":")
    ax2.set_ylabel("replicas")
    ax2.set_ylim(0, result["policy"]["max"] + 1)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left")
    p = result["policy"]
    ax.set_title(f"autoscaling: target {p['target_in_flight']:g} in flight per replica, "
                 f"scale-down window {p['scale_down_window_s']} s")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=2.0, help="target in-flight tasks per replica")
    p.add_argument("--max", type=int, default=8, help="max replicas")
    p.add_argument("--down-window", type=int, default=15, help="scale-down stabilization window, seconds")
    p.add_argument("--stage-seconds", type=float, default=8.0, help="seconds per ramp stage")
    args = p.parse_args()
    result = asyncio.run(run(args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    plotted = plot(result)
    print(f"{'t (s)':>6} {'callers':>8} {'in-flight':>10} {'desired':>8} {'ready':>6}")
    for x in result["samples"][::4]:
        print(f"{x['t']:>6.1f} {x['callers']:>8} {x['in_flight']:>10.2f} {x['desired']:>8} {x['ready']:>6}")
    print(f"max replicas {result['max_replicas_reached']}, {result['replica_changes']} changes, "
          f"{result['direction_reversals']} direction reversals, {result['failed_calls']} failed of "
          f"{result['calls']} calls")
    print(f"wrote {RESULTS.relative_to(ROOT)}" + (f" and {PLOT.relative_to(ROOT)}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
