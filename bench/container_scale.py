"""How fast the container runtime scales an agent from 3 to 6 ready replicas.

    .venv/bin/python bench/container_scale.py [--rounds 5] [--from 3] [--to 6]

Each round starts `--from` echo-agent containers and waits until they are
ready, then starts `--to - --from` more at once (concurrent `start()` calls)
and measures the seconds until all of them answer grpc.health.v1 SERVING on
their published 127.0.0.1 ports. Also reported: how long the `start()` calls
took (Docker create + start + inspect) apart from the agent's own start-up.
Writes bench/results/container_scale.json. Needs a Docker engine
(scripts/install-docker.sh) and builds the agent image when missing.

`measure_scale(runtime, image, ...)` is the measurement alone, for
bench/scheduler.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from sutradhar._values import to_struct  # noqa: E402
from sutradhar.services.scheduler.runtimes.base import Replica, ReplicaSpec  # noqa: E402
from sutradhar.services.scheduler.runtimes.container import ContainerRuntime  # noqa: E402
from sutradhar.v1 import registry_pb2  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "container_scale.json"


async def wait_ready(endpoint: str, *, within: float = 30.0) -> float:
    """Wait for SERVING at `endpoint`; return the monotonic time it answered."""
    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic()
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.02)
    raise TimeoutError(f"{endpoint} not SERVING within {within} s")


async def _ready_or_explain(runtime: ContainerRuntime, replica: Replica) -> float:
    """wait_ready, and on a time-out say what the container was doing."""
    try:
        return await wait_ready(replica.endpoint)
    except TimeoutError:
        now = await runtime.inspect(replica)
        logs = [line async for line in runtime.logs(replica, tail=10)]
        raise TimeoutError(
            f"{replica.endpoint} ({replica.native_id[:12]}) not SERVING within 30 s: "
            f"phase {now.phase.value}, exit {now.exit_code}, {now.message!r}, logs {logs}"
        ) from None


def _spec(image: str, namespace: str, index: int) -> ReplicaSpec:
    agent = registry_pb2.Agent(
        id="echo", namespace=namespace, type="echo", version="1.0.0", runtime="container",
        config=to_struct({"image": image, "command": ["examples.echo_agent:EchoAgent"]}),
        resources=registry_pb2.Resources(cpu="500m", memory="256Mi"),
    )
    return ReplicaSpec(namespace=namespace, deployment="bench", replica_id=f"bench-{index}",
                       revision="1", agent=agent, labels={"sutradhar.bench": "container-scale"})


@dataclass(frozen=True)
class ScaleRound:
    """One 3 -> 6 measurement."""

    seconds_to_ready: float
    """From the first new start() call to the last new replica SERVING."""
    seconds_in_start: float
    """From the first new start() call until every start() returned (Docker's part)."""
    per_replica_ready: list[float]
    """Each new replica's seconds to SERVING."""


async def measure_scale(runtime: ContainerRuntime, image: str, *, start: int = 3, to: int = 6,
                        namespace: str | None = None) -> ScaleRound:
    """Start `start` replicas and wait for them; then time `to - start` more started at once.

    Stops every replica it started before returning.
    """
    namespace = namespace or f"bench-{uuid.uuid4().hex[:6]}"
    replicas: list[Replica] = []
    try:
        first = await asyncio.gather(*(runtime.start(_spec(image, namespace, i)) for i in range(start)))
        replicas.extend(first)
        await asyncio.gather(*(_ready_or_explain(runtime, r) for r in first))

        began = time.monotonic()

        async def one(index: int) -> tuple[Replica, float]:
            replica = await runtime.start(_spec(image, namespace, index))
            replicas.append(replica)
            return replica, time.monotonic()

        started = await asyncio.gather(*(one(i) for i in range(start, to)))
        in_start = max(t for _, t in started) - began
        ready = await asyncio.gather(*(_ready_or_explain(runtime, r) for r, _ in started))
        return ScaleRound(
            seconds_to_ready=max(ready) - began,
            seconds_in_start=in_start,
            per_replica_ready=[round(t - began, 3) for t in ready],
        )
    finally:
        await asyncio.gather(*(runtime.stop(r) for r in replicas), return_exceptions=True)


async def _main(args: argparse.Namespace) -> int:
    from sutradhar.services.scheduler.images import build_agent_image

    image = build_agent_image(progress=lambda line: print(line, file=sys.stderr)).tags[0]
    # A scope of its own: a scheduler running on this engine (an unscoped mesh)
    # must not adopt and remove the benchmark's containers.
    runtime = ContainerRuntime(scope=f"bench-{uuid.uuid4().hex[:8]}")
    rounds: list[ScaleRound] = []
    try:
        for n in range(args.rounds):
            result = await measure_scale(runtime, image, start=args.start, to=args.to)
            rounds.append(result)
            print(f"round {n + 1}: {args.start} -> {args.to} ready in {result.seconds_to_ready:.2f} s "
                  f"(start() calls {result.seconds_in_start:.2f} s)", file=sys.stderr)
    finally:
        await runtime.close()
    ready = [r.seconds_to_ready for r in rounds]
    in_start = [r.seconds_in_start for r in rounds]
    summary = {
        "benchmark": "container_scale",
        "what": f"seconds from {args.start} to {args.to} ready echo-agent containers "
                f"({args.to - args.start} started concurrently; ready = grpc health SERVING on 127.0.0.1)",
        "target_seconds": 3.0,
        "rounds": args.rounds,
        "image": image,
        "seconds_to_ready": {"min": min(ready), "median": statistics.median(ready), "max": max(ready)},
        "seconds_in_start": {"min": min(in_start), "median": statistics.median(in_start),
                             "max": max(in_start)},
        "per_round": [asdict(r) for r in rounds],
        "machine": {"cpus": os.cpu_count()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'metric':<34}{'min':>8}{'median':>8}{'max':>8}")
    for name, values in (("3->6 ready (s)", ready), ("start() calls (s)", in_start)):
        print(f"{name:<34}{min(values):>8.2f}{statistics.median(values):>8.2f}{max(values):>8.2f}")
    print(f"target < 3.0 s; wrote {RESULTS.relative_to(ROOT)}")
    return 0


def main() -> int:
    """Parse flags and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--from", dest="start", type=int, default=3)
    parser.add_argument("--to", type=int, default=6)
    args = parser.parse_args()
    if not 0 <= args.start < args.to:
        parser.error("--from must be below --to")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
