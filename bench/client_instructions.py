"""Micro-benchmark: the Python an SDK client runs per call, in instructions, which do not depend on load.

Each client's ``execute`` runs in a loop against a canned answer, so nothing but the SDK's own
work is counted: building the Task, converting it, (for `DirectClient`) the routing engine over
three instances, and decoding the answer into a Result. gRPC is replaced where the client would
hand it a message: the canned stub serializes the request and parses the answer, as gRPC's
(de)serializers would, and a direct client's instances answer the agent's bytes at once.

- ``agent``: `AgentClient.execute` (an ExecuteRequest to one agent);
- ``router``: `RouterClient.execute` (a RouterServiceExecuteRequest to a router);
- ``direct``: `DirectClient.execute` (the engine: selection, accounting, deadline, splicing).

Every client runs under ``valgrind --tool=callgrind`` twice, with `--calls` calls and with none
(after the same 200 calls of warm-up), and the difference of their main threads' instruction
counts over `--calls` is its figure (gRPC's own threads, which run whatever the loop does, are
left out). Prints a table and writes bench/results/client-instructions.json as
``{client: {"instructions_per_call", "us_per_call"}}`` (``us_per_call``: CPU time of the loop
without valgrind, best of 3, which moves with the machine's load; the instructions do not).

    .venv/bin/python bench/client_instructions.py [--calls 1000] [--clients agent,router,direct]

Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "client-instructions.json"
CLIENTS = ("agent", "router", "direct")
WARM_UP = 200
PAYLOAD = {"message": "hello", "n": 42}


def _answer() -> bytes:
    from sutradhar._values import to_value
    from sutradhar.v1 import agent_pb2

    return agent_pb2.ExecuteResponse(result=agent_pb2.Result(
        success=True, data=to_value(PAYLOAD),
        metadata=agent_pb2.ResultMetadata(agent_id="echo", agent_version="1.0.0", instance_id="i0", attempts=1),
    )).SerializeToString()


class _CannedCall:
    """A stub method: serializes the request and parses the canned answer, as gRPC would."""

    def __init__(self, response_type: Any, answer: bytes) -> None:
        self.response_type = response_type
        self.answer = answer

    async def _call(self, request: Any) -> Any:
        request.SerializeToString()
        return self.response_type.FromString(self.answer)

    def __call__(self, request: Any, timeout: float | None = None, **_: Any) -> Any:
        return self._call(request)


class _CannedTransport:
    """A direct client's instance: the agent's answer bytes at once."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    async def execute(self, request: bytes, time_left: float | None, metadata: Any = None) -> bytes:
        return self.answer

    async def close(self, grace: float | None = None) -> None:
        return None


async def _loop(kind: str, calls: int) -> float:
    """Run `calls` calls of client `kind` after the warm-up; the CPU seconds per call."""
    from sutradhar import AgentClient, DirectClient, RouterClient
    from sutradhar._routing import wire
    from sutradhar.v1 import agent_pb2, registry_pb2, router_pb2

    answer = _answer()
    client: Any
    if kind == "agent":
        client = AgentClient("127.0.0.1:1")
        client._stub.Execute = _CannedCall(agent_pb2.ExecuteResponse, answer)

        def call() -> Any:
            return client.execute(PAYLOAD, task_type="echo", timeout=10)
    else:
        if kind == "router":
            client = RouterClient("127.0.0.1:1")
            client._stub.Execute = _CannedCall(router_pb2.RouterServiceExecuteResponse, answer)
        else:
            client = DirectClient("127.0.0.1:1", registry="127.0.0.1:1")
            client.watcher = None  # the view is set here; nothing is watched or reported
            client.view.replace(
                [registry_pb2.Agent(id="echo", namespace="bench", type="echo", version="1.0.0")],
                [registry_pb2.Instance(id=f"i{k}", namespace="bench", agent_id="echo", endpoint=f"127.0.0.1:{k + 1}",
                                       state=registry_pb2.INSTANCE_STATE_SERVING) for k in range(3)])
            for backend in client.view.backends.values():
                backend.transport = _CannedTransport(answer)
                backend.result_metadata = wire.result_metadata_fields(backend.instance_id, 1)

        def call() -> Any:
            return client.execute("echo", PAYLOAD, task_type="echo", namespace="bench", timeout=10)

    try:
        for _ in range(WARM_UP):
            await call()
        started = time.process_time()
        for _ in range(calls):
            await call()
        spent = time.process_time() - started
        if kind == "direct" and client.stats().fallbacks:
            raise RuntimeError(f"the direct client sent calls to the router: {client.stats().fallbacks}")
        return spent / calls if calls else 0.0
    finally:
        await client.close()


def _main_thread_instructions(kind: str, calls: int) -> int:
    """Instructions of the main thread of one run of the loop under callgrind."""
    with tempfile.TemporaryDirectory() as out:
        prefix = Path(out) / "cg"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={prefix}",
             sys.executable, __file__, "--inner", kind, "--calls", str(calls)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        )
        text = Path(f"{prefix}-01").read_text()
    found = re.search(r"^totals:\s+(\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("callgrind wrote no totals for the main thread")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--inner", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.inner:
        asyncio.run(_loop(args.inner, args.calls))
        return 0
    kinds = [k for k in args.clients.split(",") if k]
    unknown = sorted(set(kinds) - set(CLIENTS))
    if unknown:
        parser.error(f"unknown clients {unknown}; choose from {', '.join(CLIENTS)}")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    results: dict[str, dict[str, float]] = {}
    for kind in kinds:
        print(f"{kind}: counting {args.calls} calls under callgrind ...", file=sys.stderr, flush=True)
        per_call = (_main_thread_instructions(kind, args.calls) - _main_thread_instructions(kind, 0)) / args.calls
        seconds = min(asyncio.run(_loop(kind, 20 * args.calls)) for _ in range(3))
        results[kind] = {"instructions_per_call": round(per_call), "us_per_call": round(seconds * 1e6, 2)}
    print(f"\n{'client':<8} {'instructions/call':>18} {'us/call':>8}")
    for kind, row in results.items():
        print(f"{kind:<8} {row['instructions_per_call']:>18,.0f} {row['us_per_call']:>8.2f}")
    print(f"(canned answers, Python {platform.python_version()}; us/call: best of 3 without valgrind)")
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
