"""Micro-benchmark: the CPU cost per call of the middleware chain (sutradhar._middleware).

In one process, without a network, it calls a trivial async handler with a
stand-in ServicerContext N times per variant and reports the time per call:

- ``bare``: the handler itself;
- ``errors``: through the chain as every server composes it (the errors stage only);
- ``errors+6``: the errors stage plus six pass-through stages (one per later
  `Stage`: authentication ... metrics), each a wrapping coroutine: the upper
  bound of what the seam costs before the stages do any work;
- ``errors+6 skipped``: six stages that return `call_next` for the method
  (e.g. authentication skipping health checks): composed away, free per call;
- ``rebuilt per call``: composing the errors stage for every call, as
  ErrorInterceptor did (it rebuilt the method handler on each call; this
  leaves out the interceptor's own per-call await, so it flatters it).

Every variant runs `--rounds` times interleaved; the best round counts.
Prints a table and writes bench/results/middleware.json as
``{variant: {"ns_per_call", "added_ns"}}``.

    .venv/bin/python bench/middleware.py [--calls 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from sutradhar._middleware import Chain, Method, Stage, Streaming, Unary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "middleware.json"


class Context:
    """The part of a ServicerContext the errors stage touches (only on failure)."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:  # pragma: no cover - never fails here
        raise RuntimeError(details)


class PassThrough:
    """A stage that wraps and does nothing: the seam's own cost."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def unary(self, method: Method, call_next: Unary) -> Unary:
        async def run(request: Any, context: Any) -> Any:
            return await call_next(request, context)

        return run

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        return call_next


class Skipping(PassThrough):
    """A stage that stays out of the method (returns `call_next`)."""

    def unary(self, method: Method, call_next: Unary) -> Unary:
        return call_next


LATER = [Stage.TRACING, Stage.METRICS, Stage.AUTHENTICATION, Stage.AUDIT, Stage.AUTHORIZATION, Stage.RATE_LIMIT]


async def handle(request: Any, context: Any) -> Any:
    return request


def variants() -> dict[str, Callable[[], Unary]]:
    handler = grpc.unary_unary_rpc_method_handler(handle)

    def composed(chain: Chain) -> Callable[[], Unary]:
        behaviour = chain.handler("bench.v1.S", "M", handler).unary_unary
        return lambda: behaviour

    errors_only = Chain()

    def rebuilt() -> Unary:
        async def call(request: Any, context: Any) -> Any:
            return await errors_only.handler("bench.v1.S", "M", handler).unary_unary(request, context)

        return call

    rebuilt_behaviour = rebuilt()
    return {
        "bare": lambda: handle,
        "errors": composed(errors_only),
        "errors+6": composed(Chain([PassThrough(s) for s in LATER])),
        "errors+6 skipped": composed(Chain([Skipping(s) for s in LATER])),
        "rebuilt per call": lambda: rebuilt_behaviour,
    }


async def time_calls(behaviour: Unary, calls: int) -> float:
    """Seconds per call of `behaviour` over `calls` sequential awaits."""
    context = Context()
    request = object()
    started = time.perf_counter()
    for _ in range(calls):
        await behaviour(request, context)
    return (time.perf_counter() - started) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best counts")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    makers = variants()
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, make in makers.items():
            per_call = asyncio.run(time_calls(make(), args.calls))
            best[name] = min(best.get(name, per_call), per_call)

    bare = best["bare"]
    print(f"{'variant':<18} {'ns/call':>9} {'added ns':>9}")
    out: dict[str, dict[str, float]] = {}
    for name, seconds in best.items():
        ns = seconds * 1e9
        added = (seconds - bare) * 1e9
        out[name] = {"ns_per_call": round(ns, 1), "added_ns": round(added, 1)}
        print(f"{name:<18} {ns:>9.0f} {added:>+9.0f}")
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"({args.calls} calls x {args.rounds} rounds, best round; {os.cpu_count()} cpus, "
          f"Python {platform.python_version()})")
    print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
