"""Conformance suite for the Agent contract, runnable against any agent endpoint.

::

    python -m sutradhar.conformance 127.0.0.1:PORT [-o json] [--payload JSON] [--slow-payload JSON]

It speaks only the public wire contract (sutradhar.v1.AgentService,
grpc.health.v1, server reflection), so it checks agents written in any
language. Each check prints one row of a pass/fail table; the exit code is 0
only when every check passes.

The checks send `--payload` (default ``{"text": "conformance"}``) for normal
tasks and `--slow-payload` (default ``{"sleep": 5, "text": "..."}``) where a
long task is needed (deadline and cancel), all with `--task-type` (default
empty), except the malformed-input check, whose odd payload goes with the
unknown type "no-such-task-type" (a result or INVALID_ARGUMENT both pass). An
agent that ignores the slow payload and answers at once still passes: the
checks verify that the agent honours the deadline or the cancel *when* it is
still working, by watching its in-flight count go back down, so they test
deadlines and cancels only when the agent is kept busy by the slow payload.
Only gRPC agents can be checked; agents that speak the HTTP JSON form cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sutradhar._names import is_dns_label
from sutradhar._semver import is_valid_version
from sutradhar._values import JSON, to_value
from sutradhar.v1 import agent_pb2, agent_pb2_grpc

AGENT_SERVICE = "sutradhar.v1.AgentService"
DEFAULT_PAYLOAD: JSON = {"text": "conformance"}
DEFAULT_SLOW_PAYLOAD: JSON = {"sleep": 5, "text": "conformance slow task"}


class CheckFailed(Exception):
    """A check's expectation did not hold."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    """Short name of the check."""
    passed: bool
    """True when the expectation held."""
    detail: str
    """What was observed (or why it failed)."""
    seconds: float
    """How long the check took."""


@dataclass
class _Target:
    channel: grpc.aio.Channel
    agent: agent_pb2_grpc.AgentServiceStub
    task_type: str
    payload: JSON
    slow_payload: JSON
    timeout: float

    def task(self, payload: JSON, task_id: str) -> agent_pb2.Task:
        return agent_pb2.Task(id=task_id, type=self.task_type, payload=to_value(payload))

    async def in_flight(self) -> int:
        return (await self.agent.Metrics(agent_pb2.MetricsRequest(), timeout=self.timeout)).in_flight

    async def wait_in_flight_at_most(self, limit: int, within: float) -> int:
        deadline = time.monotonic() + within
        current = await self.in_flight()
        while current > limit and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            current = await self.in_flight()
        return current


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _check_result(result: agent_pb2.Result) -> str:
    """Validate a Result message; returns a short description."""
    if result.success:
        _expect(result.HasField("data"), "success result has no data")
        outcome = "success with data"
    else:
        _expect(bool(result.error.code), "failed result has no error.code")
        outcome = f"failure {result.error.code}"
    meta = result.metadata
    _expect(meta.HasField("latency"), "metadata.latency is not set")
    _expect(bool(meta.instance_id), "metadata.instance_id is empty")
    return f"{outcome}; instance {meta.instance_id}; latency {meta.latency.ToTimedelta().total_seconds() * 1000:.2f} ms"


async def check_describe(t: _Target) -> str:
    """Describe returns a DNS-1123 id and type and a semantic version."""
    d = await t.agent.Describe(agent_pb2.DescribeRequest(), timeout=t.timeout)
    _expect(is_dns_label(d.id), f"id {d.id!r} is not a DNS-1123 label")
    _expect(is_dns_label(d.type), f"type {d.type!r} is not a DNS-1123 label")
    _expect(is_valid_version(d.version), f"version {d.version!r} is not a semantic version")
    return f"{d.id} type={d.type} version={d.version} capabilities={list(d.capabilities)}"


async def check_health(t: _Target) -> str:
    """grpc.health.v1 Check("") answers SERVING."""
    stub = health_pb2_grpc.HealthStub(t.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=t.timeout)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    _expect(response.status == health_pb2.HealthCheckResponse.SERVING, f"status {status}")
    return status


async def check_reflection(t: _Target) -> str:
    """Server reflection lists sutradhar.v1.AgentService."""
    stub = reflection_pb2_grpc.ServerReflectionStub(t.channel)
    call = stub.ServerReflectionInfo(timeout=t.timeout)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    names: list[str] = []
    async for response in call:
        names.extend(s.name for s in response.list_services_response.service)
    _expect(AGENT_SERVICE in names, f"{AGENT_SERVICE} not listed (got {names})")
    return ", ".join(sorted(names))


async def check_execute(t: _Target) -> str:
    """Execute returns a Result with data or an error, and metadata set."""
    response = await t.agent.Execute(
        agent_pb2.ExecuteRequest(task=t.task(t.payload, "conformance-execute")), timeout=t.timeout
    )
    _expect(response.HasField("result"), "response carries no result")
    return _check_result(response.result)


async def check_deadline(t: _Target) -> str:
    """A short deadline ends the call in time and the agent stops the work."""
    baseline = await t.in_flight()
    started = time.monotonic()
    code = grpc.StatusCode.OK
    try:
        request = agent_pb2.ExecuteRequest(task=t.task(t.slow_payload, "conformance-deadline"))
        await t.agent.Execute(request, timeout=0.3)
    except grpc.RpcError as err:
        code = err.code()
    elapsed = time.monotonic() - started
    _expect(code in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED), f"call ended with {code.name}")
    _expect(elapsed < 1.5, f"call took {elapsed:.2f}s with a 0.3s deadline")
    left = await t.wait_in_flight_at_most(baseline, within=2.0)
    _expect(left <= baseline, f"{left - baseline} task(s) still running 2s after the deadline")
    return f"{code.name} after {elapsed * 1000:.0f} ms; in-flight back to {left}"


async def check_stream(t: _Target) -> str:
    """ExecuteStream ends with exactly one result, as the last event."""
    call = t.agent.ExecuteStream(
        agent_pb2.ExecuteStreamRequest(task=t.task(t.payload, "conformance-stream")), timeout=t.timeout
    )
    kinds = [msg.WhichOneof("event") async for msg in call]
    _expect(kinds.count("result") == 1, f"{kinds.count('result')} result events")
    _expect(kinds[-1] == "result", f"last event is {kinds[-1]!r}")
    _expect(None not in kinds, "an event carries nothing")
    return f"{len(kinds)} events: " + ", ".join(f"{k}={kinds.count(k)}" for k in ("progress", "partial", "result"))


async def check_stream_cancel(t: _Target) -> str:
    """A client cancel of ExecuteStream is accepted and stops the agent's work."""
    baseline = await t.in_flight()
    call = t.agent.ExecuteStream(
        agent_pb2.ExecuteStreamRequest(task=t.task(t.slow_payload, "conformance-cancel")), timeout=t.timeout
    )
    await asyncio.sleep(0.2)
    call.cancel()
    try:
        async for _ in call:
            pass
    except asyncio.CancelledError:
        pass
    except grpc.RpcError as err:
        _expect(err.code() == grpc.StatusCode.CANCELLED, f"cancelled stream ended with {err.code().name}")
    left = await t.wait_in_flight_at_most(baseline, within=2.0)
    _expect(left <= baseline, f"{left - baseline} task(s) still running 2s after the cancel")
    d = await t.agent.Describe(agent_pb2.DescribeRequest(), timeout=t.timeout)
    return f"cancelled; in-flight back to {left}; {d.id} still answers"


async def check_metrics(t: _Target) -> str:
    """Metrics' requests_total grows after a call."""
    before = await t.agent.Metrics(agent_pb2.MetricsRequest(), timeout=t.timeout)
    await t.agent.Execute(agent_pb2.ExecuteRequest(task=t.task(t.payload, "conformance-metrics")), timeout=t.timeout)
    after = await t.agent.Metrics(agent_pb2.MetricsRequest(), timeout=t.timeout)
    grew = f"requests_total {before.requests_total} -> {after.requests_total}"
    _expect(after.requests_total > before.requests_total, grew)
    _expect(after.HasField("uptime") and after.uptime.ToTimedelta() > timedelta(0), "uptime is not set")
    return f"{grew}, errors_total {after.errors_total}"


async def check_malformed(t: _Target) -> str:
    """Garbage bytes and an odd payload do not crash the agent."""
    raw = t.channel.unary_unary(f"/{AGENT_SERVICE}/Execute")
    garbage_code = grpc.StatusCode.OK
    try:
        await raw(b"\xff\xff\xff\xff\x0f garbage", timeout=t.timeout)
    except grpc.RpcError as err:
        garbage_code = err.code()
    _expect(garbage_code != grpc.StatusCode.OK, "garbage bytes were accepted as a task")
    odd = [1, "two", {"three": [None, True, {"four": -0.5}]}, [[[[[]]]]]]
    task = agent_pb2.Task(id="conformance-odd", type="no-such-task-type", payload=to_value(odd))
    try:
        response = await t.agent.Execute(agent_pb2.ExecuteRequest(task=task), timeout=t.timeout)
        outcome = _check_result(response.result)
    except grpc.RpcError as err:
        # An agent that declares its task_types refuses the unknown type.
        if err.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        outcome = "INVALID_ARGUMENT (unknown task type)"
    d = await t.agent.Describe(agent_pb2.DescribeRequest(), timeout=t.timeout)
    return f"garbage -> {garbage_code.name}; odd payload -> {outcome.split(';')[0]}; {d.id} still answers"


CHECKS: list[tuple[str, Callable[[_Target], Awaitable[str]]]] = [
    ("describe", check_describe),
    ("health", check_health),
    ("reflection", check_reflection),
    ("execute", check_execute),
    ("deadline", check_deadline),
    ("stream", check_stream),
    ("stream-cancel", check_stream_cancel),
    ("metrics", check_metrics),
    ("malformed-input", check_malformed),
]


async def run_conformance(
    address: str,
    *,
    task_type: str = "",
    payload: JSON = DEFAULT_PAYLOAD,
    slow_payload: JSON = DEFAULT_SLOW_PAYLOAD,
    call_timeout: timedelta = timedelta(seconds=5),
) -> list[CheckResult]:
    """Run every check against the agent at `address`, in order."""
    results: list[CheckResult] = []
    async with grpc.aio.insecure_channel(address) as channel:
        target = _Target(
            channel=channel,
            agent=agent_pb2_grpc.AgentServiceStub(channel),
            task_type=task_type,
            payload=payload,
            slow_payload=slow_payload,
            timeout=call_timeout.total_seconds(),
        )
        for name, check in CHECKS:
            started = time.monotonic()
            try:
                detail = await check(target)
                passed = True
            except CheckFailed as err:
                detail, passed = str(err), False
            except grpc.RpcError as err:
                detail, passed = f"{err.code().name}: {err.details()}", False
            except Exception as err:
                detail, passed = f"{type(err).__name__}: {err}", False
            results.append(CheckResult(name, passed, detail, time.monotonic() - started))
    return results


def format_table(results: Sequence[CheckResult]) -> str:
    """A human table: check, PASS/FAIL, time, detail; then a summary line."""
    width = max(len(r.name) for r in results)
    lines = [f"{'CHECK':<{width}}  RESULT  {'TIME':>8}  DETAIL"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'PASS' if r.passed else 'FAIL':<6}  {r.seconds * 1000:>6.0f}ms  {r.detail}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed}/{len(results)} checks passed")
    return "\n".join(lines)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from err


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; exit 0 only when every check passes."""
    parser = argparse.ArgumentParser(
        prog="python -m sutradhar.conformance", description="Check an agent endpoint against the Agent contract."
    )
    parser.add_argument("address", help="agent endpoint, host:port")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.add_argument("--task-type", default="", help="task type to send")
    parser.add_argument("--payload", type=_json_arg, default=DEFAULT_PAYLOAD, help="payload for normal tasks (JSON)")
    parser.add_argument(
        "--slow-payload", type=_json_arg, default=DEFAULT_SLOW_PAYLOAD, help="payload that keeps the agent busy (JSON)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="per-call timeout in seconds")
    args = parser.parse_args(argv)
    results = asyncio.run(
        run_conformance(
            args.address,
            task_type=args.task_type,
            payload=args.payload,
            slow_payload=args.slow_payload,
            call_timeout=timedelta(seconds=args.timeout),
        )
    )
    if args.output == "json":
        print(json.dumps({"address": args.address, "passed": all(r.passed for r in results),
                          "checks": [asdict(r) for r in results]}, indent=2))
    else:
        print(format_table(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
