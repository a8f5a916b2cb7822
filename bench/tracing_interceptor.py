"""Benchmark: what unsampled tracing costs a grpc.aio server per call, the contrib
``opentelemetry-instrumentation-grpc`` server interceptor against the router's hand-written
propagation (`services.common.tracing.RouterTracing`), against no tracing at all.

Each mode is a server process on 127.0.0.1 answering a raw-bytes unary method (it returns the
request; no other work, so the tracing is all that differs):

- ``none``: no tracing;
- ``contrib``: ``aio_server_interceptor`` of opentelemetry-instrumentation-grpc, with a tracer
  provider sampling nothing (``ParentBased(TraceIdRatioBased(0))``, the router's unsampled case);
- ``by-hand``: tracing set up from ``OTEL_*`` with ratio 0 and, per call, what the router does:
  ``RouterTracing.start`` on the call's metadata (a new unsampled ``traceparent`` to forward).

One client process sends 64 calls in flight for ``--seconds``; the modes are measured
``--rounds`` times, rotating which goes first, and the best round of each counts. Prints a
table (rps, server CPU per call, cost against ``none``) and writes
bench/results/tracing-interceptor.json. Needs the bench extra (opentelemetry-instrumentation-grpc).

    .venv/bin/python bench/tracing_interceptor.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tracing-interceptor.json"
PATH = "/bench.Echo/Call"
MODES = ("none", "contrib", "by-hand")


async def serve(mode: str) -> None:
    interceptors: list[Any] = []
    start: Any = None
    if mode == "contrib":
        from opentelemetry.instrumentation.grpc import aio_server_interceptor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
        interceptors.append(aio_server_interceptor(tracer_provider=provider))
    elif mode == "by-hand":
        from sutradhar import _tracing
        from sutradhar.services.common.tracing import RouterTracing

        _tracing.setup("bench", {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER_ARG": "0"})
        tracing = RouterTracing.create("127.0.0.1:0")
        assert tracing is not None
        start = tracing.start

    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if start is not None:
            trace = start(context.invocation_metadata(), "")
            assert not trace.sampled
        return request

    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {
        "Call": grpc.unary_unary_rpc_method_handler(call, request_deserializer=None, response_serializer=None),
    })])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(address: str, pid: int, seconds: float, concurrency: int) -> dict[str, float]:
    request = b"\x0a\x05hello" * 8
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(PATH, _registered_method=True)
        for _ in range(500):
            await call(request, timeout=10)
        done = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await call(request, timeout=10)
                done += 1

        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu
    return {"rps": round(done / elapsed, 1), "server_cpu_us": round(cpu / max(1, done) * 1e6, 2), "calls": done}


def start_server(mode: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"listening on (\S+)", line)
        if found:
            return proc, found.group(1)
    raise RuntimeError(f"server {mode} did not start (exit {proc.wait()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    servers = {mode: start_server(mode) for mode in MODES}
    rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for round_no in range(args.rounds):
            order = list(MODES[round_no % len(MODES):] + MODES[:round_no % len(MODES)])
            for mode in order:
                proc, address = servers[mode]
                r = asyncio.run(load(address, proc.pid, args.seconds, args.concurrency))
                rounds[mode].append(r)
                print(f"round {round_no + 1} {mode:<8} {r['rps']:>8.0f} rps  "
                      f"server CPU {r['server_cpu_us']:.1f} us/call", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    best = {mode: {"rps": max(r["rps"] for r in rs), "server_cpu_us": min(r["server_cpu_us"] for r in rs)}
            for mode, rs in rounds.items()}
    base = best["none"]
    print(f"\n{'mode':<8} {'rps':>9} {'cpu/call':>10} {'rps cost':>9} {'+cpu/call':>10}")
    for mode, r in best.items():
        r["rps_cost_pct"] = round((1 - r["rps"] / base["rps"]) * 100, 1)
        r["added_cpu_us"] = round(r["server_cpu_us"] - base["server_cpu_us"], 2)
        print(f"{mode:<8} {r['rps']:>9.0f} {r['server_cpu_us']:>7.1f} us {r['rps_cost_pct']:>8.1f}% "
              f"{r['added_cpu_us']:>+7.1f} us")
    out = {"best": best, "rounds": rounds, "seconds": args.seconds, "concurrency": args.concurrency,
           "cpus": os.cpu_count(), "python": platform.python_version()}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
