"""Benchmark: one Python echo agent on the standard asyncio loop against one on uvloop, in the same run.

Starts two ``python -m sutradhar.serve examples.echo_agent:EchoAgent`` processes on 127.0.0.1, one with
``--event-loop asyncio`` and one with ``--event-loop uvloop`` (no registry: they only serve). Then, from
this one client process, with bench/router.py's load (pre-serialized ExecuteRequest bytes on a raw
channel, the same task every call), each agent in an order shuffled every round:

- sequential: `--sequential` calls one after the other -> p50 / p99;
- throughput: `--concurrency` calls in flight for `--seconds` -> rps, and the CPU per call of the agent
  process and of this client in that phase (bench/router.py's `load`).

Every row is the median of the `--rounds` rounds; the table ends with uvloop against asyncio (the median
of the per-round ratios). Writes bench/results/agent-event-loop.json as
``{"asyncio": {...}, "uvloop": {...}, "uvloop_over_asyncio": {...}, "rounds": {...}}``.

    .venv/bin/python bench/agent_event_loop.py [--rounds 6] [--seconds 4] [--sequential 1000]

Needs uvloop (``pip install 'sutradhar[uvloop]'``; the mesh extra has it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from router import AGENT_PATH, ROOT, Proc, load, requests  # bench/ is not a package

LOOPS = ("asyncio", "uvloop")
RESULTS = ROOT / "bench" / "results" / "agent-event-loop.json"
SEED = 20261203


async def measure(address: str, pid: int, request: bytes, *, seconds: float, concurrency: int,
                  sequential: int) -> dict[str, float]:
    """One round against one agent: bench/router.py's `load` (warm-up, sequential latency, then
    throughput with the CPU per call of the agent and of this client) over a raw channel."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(AGENT_PATH, _registered_method=True)
        row = await load(lambda: call(request, timeout=10), grpc.RpcError, sequential=sequential, calls=10**9,
                         seconds=seconds, concurrency=concurrency, agent_pids=[pid])
    return {key: row[key] for key in ("rps", "agents_cpu_us", "client_cpu_us", "p50_ms", "p99_ms", "errors")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        import uvloop  # noqa: F401
    except ImportError:
        print("uvloop is not installed: pip install 'sutradhar[uvloop]'", file=sys.stderr)
        return 2
    request, _ = requests()
    agents: dict[str, Proc] = {}
    try:
        for loop in LOOPS:
            print(f"starting the echo agent on {loop} ...", file=sys.stderr, flush=True)
            agents[loop] = Proc(f"echo-{loop}", [
                sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
                "--port", "0", "--event-loop", loop], ready=r"listening on (\S+)")
        rounds: dict[str, list[dict[str, float]]] = {loop: [] for loop in LOOPS}
        order = list(LOOPS)
        shuffle = random.Random(SEED).shuffle
        for number in range(args.rounds):
            shuffle(order)
            for loop in order:
                row = asyncio.run(measure(agents[loop].address, agents[loop].pid, request, seconds=args.seconds,
                                          concurrency=args.concurrency, sequential=args.sequential))
                rounds[loop].append(row)
                print(f"round {number + 1} {loop:<8} {row['rps']:>7.0f} rps  agent "
                      f"{row['agents_cpu_us']:>6.1f} us/call  p50 {row['p50_ms']:.3f} ms", file=sys.stderr, flush=True)
    finally:
        for proc in agents.values():
            proc.stop()
    keys = ("rps", "agents_cpu_us", "client_cpu_us", "p50_ms", "p99_ms")
    medians = {loop: {k: round(statistics.median(r[k] for r in rounds[loop]), 3) for k in keys} for loop in LOOPS}
    ratios = {k: round(statistics.median(u[k] / a[k] for u, a in zip(rounds["uvloop"], rounds["asyncio"],
                                                                      strict=True)), 3) for k in keys}
    print(f"\n{'loop':<8} {'rps':>7} {'agent cpu/call':>15} {'client cpu/call':>16} {'p50 ms':>7} {'p99 ms':>7}")
    for loop in LOOPS:
        m = medians[loop]
        print(f"{loop:<8} {m['rps']:>7.0f} {m['agents_cpu_us']:>12.1f} us {m['client_cpu_us']:>13.1f} us "
              f"{m['p50_ms']:>7.3f} {m['p99_ms']:>7.3f}")
    print(f"{'uvloop/asyncio':<15} rps x{ratios['rps']:.3f}, agent cpu/call x{ratios['agents_cpu_us']:.3f}, "
          f"p50 x{ratios['p50_ms']:.3f} (medians of the per-round ratios)")
    errors = {loop: sum(r["errors"] for r in rounds[loop]) for loop in LOOPS}
    print(f"({args.rounds} rounds, {args.concurrency} in flight, Python {platform.python_version()}; "
          f"failed calls: {errors['asyncio']} on asyncio, {errors['uvloop']} on uvloop)")
    out: dict[str, Any] = {**medians, "uvloop_over_asyncio": ratios, "rounds": rounds}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
