"""Benchmark: what the SDK's own Python adds to one call's latency, against the CPU it costs in a hot loop.

Starts one ``python -m sutradhar.serve examples.echo_agent:EchoAgent`` on 127.0.0.1 (no registry: it
only serves). From this client process, calls one at a time, each call's variant drawn in an order
shuffled for every `--calls` step (so machine noise falls on every variant alike):

- ``raw``: bench/router.py's pre-serialized ExecuteRequest on a raw channel (no SDK object at all);
- ``raw-sdk-request``: the ExecuteRequest `AgentClient` sends (its task id and deadline), serialized
  once and sent raw: what the request's content costs the agent;
- ``raw+build``: `AgentClient`'s request built before every raw call (`make_task`, `task_to_proto`,
  serialization): the SDK's request conversions on the call's path;
- ``raw+build-twice``: the same request built twice before every raw call: what the second,
  hot, build adds;
- ``agent-client``: ``AgentClient.execute`` (the build, the call, the answer decoded into a Result).

Prints p50 / p90 per variant, each p50 over ``raw``, and beside them the CPU time of the same
conversions in a hot loop (``timeit``, best of 5): the conversions cost several times more on a
call's path, between the gRPC machinery's own work, than in a loop that keeps them in the caches.
Writes bench/results/client-latency.json as ``{variant: {"p50_ms", "p90_ms", "added_p50_ms"},
"hot_us": {...}}``.

    .venv/bin/python bench/client_latency.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from router import AGENT_PATH, ROOT, Proc, interleave, nearest_rank, requests  # bench/ is not a package

RESULTS = ROOT / "bench" / "results" / "client-latency.json"
PAYLOAD = {"message": "hello", "n": 42}
VARIANTS = ("raw", "raw-sdk-request", "raw+build", "raw+build-twice", "agent-client")
WARM_UP = 200
SEED = 20261203


def sdk_request(timeout: float = 10) -> bytes:
    """The ExecuteRequest `AgentClient.execute(PAYLOAD, task_type="echo", timeout=timeout)` sends."""
    from sutradhar._clients import make_task
    from sutradhar._convert import task_to_proto
    from sutradhar.v1 import agent_pb2

    request = agent_pb2.ExecuteRequest()
    task_to_proto(make_task(PAYLOAD, task_type="echo", task_id=None, context=None, timeout=timeout), request.task)
    return request.SerializeToString()


def hot_us(fn: Callable[[], Any]) -> float:
    """Microseconds per call of `fn` in a hot loop (best of 5)."""
    number = 20_000
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


async def measure(address: str, calls: int) -> dict[str, list[float]]:
    from sutradhar import AgentClient
    from sutradhar._credentials import Credentials

    raw_request, _ = requests()
    sdk_bytes = sdk_request(timeout=24 * 3600)  # built once: its deadline must outlast the run
    async with grpc.aio.insecure_channel(address) as channel, \
            AgentClient(address, credentials=Credentials.insecure()) as client:
        call = channel.unary_unary(AGENT_PATH, _registered_method=True)
        senders: dict[str, Callable[[], Awaitable[Any]]] = {
            "raw": lambda: call(raw_request, timeout=10),
            "raw-sdk-request": lambda: call(sdk_bytes, timeout=10),
            "raw+build": lambda: call(sdk_request(), timeout=10),
            "raw+build-twice": lambda: call((sdk_request(), sdk_request())[1], timeout=10),
            "agent-client": lambda: client.execute(PAYLOAD, task_type="echo", timeout=10),
        }
        def progress(step: int) -> None:
            if step % 1000 == 0:
                print(f"{step} of {calls} calls per variant", file=sys.stderr, flush=True)

        seconds = await interleave(senders, calls, SEED, warm_up=WARM_UP, progress=progress)
        return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="sequential calls per variant")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from sutradhar._convert import result_from_proto
    from sutradhar.v1 import agent_pb2

    answer = agent_pb2.ExecuteResponse()
    answer.result.success = True
    answer.result.data.struct_value.update(PAYLOAD)
    hot = {"build": round(hot_us(sdk_request), 2), "result": round(hot_us(lambda: result_from_proto(answer.result)), 2)}

    print("starting the echo agent ...", file=sys.stderr, flush=True)
    agent = Proc("echo", [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
                          "--port", "0"], ready=r"listening on (\S+)")
    try:
        seconds = asyncio.run(measure(agent.address, args.calls))
    finally:
        agent.stop()
    base = statistics.median(seconds["raw"])
    rows = {v: {"p50_ms": round(statistics.median(s) * 1e3, 3), "p90_ms": round(nearest_rank(sorted(s), 0.9) * 1e3, 3),
                "added_p50_ms": round((statistics.median(s) - base) * 1e3, 3)} for v, s in seconds.items()}
    hot_of = {"raw+build": hot["build"], "raw+build-twice": 2 * hot["build"],
              "agent-client": hot["build"] + hot["result"]}
    print(f"\n{'variant':<16} {'p50 ms':>7} {'p90 ms':>7} {'+p50 us':>8} {'hot-loop us':>12}")
    for variant, row in rows.items():
        hot_text = f"{hot_of[variant]:>12.1f}" if variant in hot_of else f"{'-':>12}"
        print(f"{variant:<16} {row['p50_ms']:>7.3f} {row['p90_ms']:>7.3f} {row['added_p50_ms'] * 1e3:>8.0f} {hot_text}")
    print(f"({args.calls} sequential calls per variant, shuffled per step; hot loop: build {hot['build']} us, "
          f"result {hot['result']} us; Python {platform.python_version()})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({**rows, "hot_us": hot, "calls": args.calls}, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
