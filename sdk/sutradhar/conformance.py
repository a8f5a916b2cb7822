"""Conformance suite for the Agent contract, runnable against any agent endpoint.

::

    sutradhar conformance 127.0.0.1:PORT [-o json] [--insecure] [options]   (the CLI, with credentials)
    python -m sutradhar.conformance 127.0.0.1:PORT [-o json] [options]       (plaintext agents only)

It speaks only the public wire contract (sutradhar.v1.AgentService,
grpc.health.v1, server reflection), so it checks agents written in any
language. Each check is one row of a table, PASS, FAIL or SKIP with what was
observed or what to fix; the exit code is 0 only when no check fails.

The checks send `--payload` (default ``{"text": "conformance"}``) for normal
tasks, `--failure-payload` (default ``{"fail": "CONFORMANCE"}``, on which the
example agents fail) where an application failure is wanted, and
`--slow-payload` (default ``{"sleep": 5, "text": "..."}``) where a long task
is needed (deadline, cancel, drain), all with `--task-type` (default empty),
except the malformed-input check, whose odd payload goes with the unknown type
"no-such-task-type" (a result or INVALID_ARGUMENT both pass). An agent that
ignores the slow payload and answers at once still passes: the checks verify
that the agent honours the deadline or the cancel *when* it is still working,
by watching its in-flight count go back down, so they test deadlines and
cancels only when the agent is kept busy by the slow payload. The drain check
runs only with `--drain-pid PID` (the agent's process, on this machine): it
sends SIGTERM and expects health NOT_SERVING before the port closes, new
tasks refused with UNAVAILABLE and the in-flight task finished; it runs last,
since it stops the agent. Only gRPC
agents can be checked; agents that speak the HTTP JSON form cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sutradhar._credentials import Credentials, open_channel
from sutradhar._errors import SutradharError, Unavailable
from sutradhar._identity import SpiffeId
from sutradhar._names import is_dns_label
from sutradhar._semver import is_valid_version
from sutradhar._values import JSON, to_value
from sutradhar.v1 import agent_pb2, agent_pb2_grpc

AGENT_SERVICE = "sutradhar.v1.AgentService"
HEALTH_SERVICE = "grpc.health.v1.Health"
DEFAULT_PAYLOAD: JSON = {"text": "conformance"}
DEFAULT_SLOW_PAYLOAD: JSON = {"sleep": 5, "text": "conformance slow task"}
DEFAULT_FAILURE_PAYLOAD: JSON = {"fail": "CONFORMANCE"}
DEFAULT_CONCURRENCY = 8

PASS: Final = "pass"
FAIL: Final = "fail"
SKIP: Final = "skip"

#: What a secured agent's refusal of the suite's own certificate means, and the fix.
_REFUSED_HINT = (
    "; a secured agent takes AgentService calls from the mesh's router, health and scheduler only: "
    "present one of their certificates (sutradhar conformance --tls-cert-file/--tls-key-file/--tls-ca-file, "
    "e.g. the health service's in the pki/ directory of `sutradhar up`), or check the agent served --insecure"
)


class CheckFailed(Exception):
    """A check's expectation did not hold."""


class CheckSkipped(Exception):
    """A check that was not asked for or cannot run against this agent; the message says why."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    """Short name of the check."""
    status: str
    """PASS, FAIL or SKIP."""
    detail: str
    """What was observed, or why it failed or was skipped."""
    seconds: float
    """How long the check took."""

    @property
    def passed(self) -> bool:
        """True unless the check failed: a skipped check (not asked for) does not fail the suite."""
        return self.status != FAIL

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SuiteOptions:
    """What the suite sends and how long it waits; the defaults suit the example agents."""

    task_type: str = ""
    payload: JSON = field(default_factory=lambda: DEFAULT_PAYLOAD)
    slow_payload: JSON = field(default_factory=lambda: DEFAULT_SLOW_PAYLOAD)
    failure_payload: JSON = field(default_factory=lambda: DEFAULT_FAILURE_PAYLOAD)
    concurrency: int = DEFAULT_CONCURRENCY
    drain_pid: int | None = None
    call_timeout: timedelta = timedelta(seconds=5)


@dataclass
class _Target:
    channel: Any  # a grpc.aio.Channel, or the SDK's RotatingChannel over TLS
    agent: agent_pb2_grpc.AgentServiceStub
    options: SuiteOptions
    timeout: float
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def task(self, payload: JSON, task_id: str, task_type: str | None = None) -> agent_pb2.Task:
        kind = self.options.task_type if task_type is None else task_type
        return agent_pb2.Task(id=f"{task_id}-{self.run}", type=kind, payload=to_value(payload))

    async def execute(self, task: agent_pb2.Task, seconds: float | None = None) -> agent_pb2.Result:
        response = await self.agent.Execute(agent_pb2.ExecuteRequest(task=task), timeout=seconds or self.timeout)
        _expect(response.HasField("result"), "ExecuteResponse carries no result")
        return response.result

    async def describe(self) -> agent_pb2.DescribeResponse:
        return await self.agent.Describe(agent_pb2.DescribeRequest(), timeout=self.timeout)

    async def health(self, service: str) -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)).status

    async def in_flight(self) -> int:
        return (await self.agent.Metrics(agent_pb2.MetricsRequest(), timeout=self.timeout)).in_flight

    async def wait_in_flight(self, done: Callable[[int], bool], within: float) -> int:
        """Poll Metrics.in_flight until `done(in_flight)` or `within` seconds pass; the last count."""
        deadline = time.monotonic() + within
        current = await self.in_flight()
        while not done(current) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            current = await self.in_flight()
        return current

    async def wait_in_flight_at_most(self, limit: int, within: float) -> int:
        return await self.wait_in_flight(lambda n: n <= limit, within)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _status_name(status: int) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)  # type: ignore[arg-type]


def _check_result(result: agent_pb2.Result) -> str:
    """Validate a Result message; returns a short description."""
    if result.success:
        _expect(result.HasField("data"), "success result has no data (set Result.data, e.g. to null)")
        outcome = "success with data"
    else:
        _expect(bool(result.error.code), "failed result has no error.code")
        outcome = f"failure {result.error.code}"
    meta = result.metadata
    _expect(meta.HasField("latency"), "metadata.latency is not set")
    _expect(bool(meta.instance_id), "metadata.instance_id is empty")
    return f"{outcome}; instance {meta.instance_id}; latency {meta.latency.ToTimedelta().total_seconds() * 1000:.2f} ms"


async def _call_code(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status a unary call ends with (OK when it answers)."""
    try:
        await call
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def _stream_code(call: Any) -> grpc.StatusCode:
    """The status a server-streaming call ends with, its messages read and dropped."""
    try:
        async for _ in call:
            pass
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def check_describe(t: _Target) -> str:
    """Describe returns a DNS-1123 id and type, a semantic version and well-formed capabilities."""
    d = await t.describe()
    _expect(is_dns_label(d.id), f"id {d.id!r} is not a DNS-1123 label (lower-case letters, digits, '-')")
    _expect(is_dns_label(d.type), f"type {d.type!r} is not a DNS-1123 label (lower-case letters, digits, '-')")
    _expect(is_valid_version(d.version), f"version {d.version!r} is not a semantic version (e.g. 1.0.0)")
    capabilities = list(d.capabilities)
    _expect(all(c.strip() for c in capabilities), f"capabilities {capabilities} hold an empty name")
    _expect(len(set(capabilities)) == len(capabilities), f"capabilities {capabilities} repeat a name")
    return f"{d.id} type={d.type} version={d.version} capabilities={capabilities}"


async def check_health(t: _Target) -> str:
    """grpc.health.v1 Check answers SERVING for the server ("") and for the AgentService."""
    seen = []
    for service in ("", AGENT_SERVICE):
        status = await t.health(service)
        seen.append(f"{service or '(server)'}: {_status_name(status)}")
        _expect(status == health_pb2.HealthCheckResponse.SERVING,
                f"Check({service!r}) answered {_status_name(status)}, not SERVING, on an agent ready for work")
    return "; ".join(seen)


async def check_health_unknown(t: _Target) -> str:
    """grpc.health.v1 Check of a service the agent does not serve answers NOT_FOUND."""
    service = "no.such.Service"
    try:
        status = await t.health(service)
    except grpc.RpcError as err:
        _expect(err.code() == grpc.StatusCode.NOT_FOUND,
                f"Check({service!r}) ended with {err.code().name}; the health protocol wants NOT_FOUND")
        return f"{service}: NOT_FOUND"
    raise CheckFailed(f"Check({service!r}) answered {_status_name(status)}; the health protocol wants NOT_FOUND")


async def check_reflection(t: _Target) -> str:
    """Server reflection lists sutradhar.v1.AgentService and grpc.health.v1.Health."""
    stub = reflection_pb2_grpc.ServerReflectionStub(t.channel)
    call = stub.ServerReflectionInfo(timeout=t.timeout)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    names: list[str] = []
    async for response in call:
        names.extend(s.name for s in response.list_services_response.service)
    missing = [s for s in (AGENT_SERVICE, HEALTH_SERVICE) if s not in names]
    _expect(not missing, f"reflection does not list {', '.join(missing)} (it lists {names})")
    return ", ".join(sorted(names))


async def check_execute(t: _Target) -> str:
    """Execute of --payload returns a successful Result with data and metadata."""
    result = await t.execute(t.task(t.options.payload, "conformance-execute"))
    _expect(result.success, f"the task failed with {result.error.code}: {result.error.message!r}; "
                            "pass a --payload (and --task-type) your agent succeeds on")
    return _check_result(result)


async def check_execute_failure(t: _Target) -> str:
    """Execute of --failure-payload returns a failed Result with an error code, not a gRPC error."""
    try:
        result = await t.execute(t.task(t.options.failure_payload, "conformance-failure"))
    except grpc.RpcError as err:
        raise CheckFailed(
            f"the call ended with {err.code().name} ({err.details()}); an application failure is a Result "
            "with success false and error.code, sent with status OK (if your agent fails on another payload, "
            "pass it as --failure-payload)"
        ) from None
    _expect(not result.success, f"the task succeeded; pass a --failure-payload your agent fails on "
                                f"(sent {json.dumps(t.options.failure_payload)})")
    return _check_result(result) + (f"; retryable={result.error.retryable}" if result.error.retryable else "")


async def check_task_metadata(t: _Target) -> str:
    """The result's metadata echoes the task id and names the agent, its version and instance, with a latency."""
    d = await t.describe()
    task = t.task(t.options.payload, "conformance-metadata")
    meta = (await t.execute(task)).metadata
    _expect(meta.task_id == task.id, f"metadata.task_id is {meta.task_id!r}, not the task's id {task.id!r}")
    _expect(meta.agent_id == d.id, f"metadata.agent_id is {meta.agent_id!r}, Describe says {d.id!r}")
    _expect(meta.agent_version == d.version,
            f"metadata.agent_version is {meta.agent_version!r}, Describe says {d.version!r}")
    _expect(bool(meta.instance_id), "metadata.instance_id is empty")
    _expect(meta.HasField("latency"), "metadata.latency is not set")
    latency = meta.latency.ToTimedelta()
    _expect(latency >= timedelta(0), f"metadata.latency is negative ({latency})")
    return (f"task_id echoed; agent {meta.agent_id} {meta.agent_version}, instance {meta.instance_id}, "
            f"latency {latency.total_seconds() * 1000:.2f} ms")


async def check_stream(t: _Target) -> str:
    """ExecuteStream sends progress and partial events, then exactly one final result, and nothing after it."""
    task = t.task(t.options.payload, "conformance-stream")
    call = t.agent.ExecuteStream(agent_pb2.ExecuteStreamRequest(task=task), timeout=t.timeout)
    kinds: list[str] = []
    final: agent_pb2.Result | None = None
    try:
        async for msg in call:
            kind = msg.WhichOneof("event")
            _expect(kind is not None, f"event {len(kinds) + 1} carries nothing (set progress, partial or result)")
            assert kind is not None
            _expect(final is None, f"a {kind} event came after the final result (event {len(kinds) + 1}); "
                                   "the result must be the last message and the stream end there")
            kinds.append(kind)
            if kind == "result":
                final = msg.result
    except grpc.RpcError as err:
        if final is not None and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise CheckFailed(f"the stream did not end after its final result (no end within {t.timeout:g}s)") \
                from None
        raise
    _expect(final is not None, f"the stream ended after {len(kinds)} events without a final result")
    assert final is not None
    outcome = _check_result(final)
    _expect(final.metadata.task_id == task.id,
            f"the final result's metadata.task_id is {final.metadata.task_id!r}, not {task.id!r}")
    counts = ", ".join(f"{k}={kinds.count(k)}" for k in ("progress", "partial", "result"))
    return f"{len(kinds)} events ({counts}); final {outcome.split(';')[0]}"


async def check_stream_cancel(t: _Target) -> str:
    """A client cancel of ExecuteStream is accepted and stops the agent's work."""
    baseline = await t.in_flight()
    call = t.agent.ExecuteStream(
        agent_pb2.ExecuteStreamRequest(task=t.task(t.options.slow_payload, "conformance-cancel")), timeout=t.timeout
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
    _expect(left <= baseline, f"{left - baseline} task(s) still running 2s after the cancel; "
                              "a cancelled call must cancel the agent's work")
    d = await t.describe()
    return f"cancelled; in-flight back to {left}; {d.id} still answers"


async def check_deadline(t: _Target) -> str:
    """A short deadline ends the call in time and the agent stops the work."""
    baseline = await t.in_flight()
    started = time.monotonic()
    request = agent_pb2.ExecuteRequest(task=t.task(t.options.slow_payload, "conformance-deadline"))
    code = await _call_code(t.agent.Execute(request, timeout=0.3))
    elapsed = time.monotonic() - started
    _expect(code in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED), f"call ended with {code.name}")
    _expect(elapsed < 1.5, f"call took {elapsed:.2f}s with a 0.3s deadline")
    left = await t.wait_in_flight_at_most(baseline, within=2.0)
    _expect(left <= baseline, f"{left - baseline} task(s) still running 2s after the deadline; "
                              "stop working when the gRPC deadline (or TaskContext.deadline) passes")
    return f"{code.name} after {elapsed * 1000:.0f} ms; in-flight back to {left}"


async def check_concurrency(t: _Target) -> str:
    """N calls in flight at once: N slow tasks run together (Metrics.in_flight reaches N), and N normal
    tasks sent at once are all answered, each result echoing its own task id."""
    n = t.options.concurrency
    if n < 2:
        raise CheckSkipped(f"--concurrency {n}: needs at least 2 calls at once")
    baseline = await t.in_flight()
    busy = [asyncio.ensure_future(t.execute(t.task(t.options.slow_payload, f"conformance-busy-{i}")))
            for i in range(n)]
    try:
        peak = await t.wait_in_flight(lambda c: c - baseline >= n or all(f.done() for f in busy),
                                      within=t.timeout / 2)
        pending = sum(not f.done() for f in busy)
        _expect(peak - baseline >= n or pending == 0,
                f"only {peak - baseline} of {n} slow tasks were in flight at once ({pending} waiting); "
                "run calls concurrently instead of one after another")
    finally:
        await _cancel(busy)
    tasks = [t.task(t.options.payload, f"conformance-concurrent-{i}") for i in range(n)]
    started = time.monotonic()
    outcomes = await asyncio.gather(*(t.execute(task) for task in tasks), return_exceptions=True)
    elapsed = time.monotonic() - started
    errors = [f"call {i}: {_describe_error(o)}" for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    _expect(not errors, f"{len(errors)} of {n} concurrent calls failed: {'; '.join(errors[:3])}")
    results = [o for o in outcomes if isinstance(o, agent_pb2.Result)]
    unsuccessful = [r.error.code for r in results if not r.success]
    _expect(not unsuccessful, f"{len(unsuccessful)} of {n} concurrent tasks failed ({', '.join(unsuccessful[:3])})")
    echoed = [r.metadata.task_id for r in results]
    crossed = [f"{task.id} -> {got!r}" for task, got in zip(tasks, echoed, strict=True) if got != task.id]
    _expect(not crossed, f"results do not echo their own task ids: {', '.join(crossed[:3])}")
    busy_seen = f"{peak - baseline} slow tasks in flight at once" if pending else "slow tasks answered at once"
    return f"{busy_seen}; {n} calls at once all answered in {elapsed * 1000:.0f} ms with distinct task ids"


async def _cancel(calls: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel the calls still running and wait for them (their outcomes are dropped)."""
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


async def check_malformed(t: _Target) -> str:
    """Undecodable bytes are INVALID_ARGUMENT; an empty request and an odd payload do not crash the agent."""
    garbage = b"\xff\xff\xff\xff\x0f garbage"
    codes = {
        "Execute": await _call_code(t.channel.unary_unary(f"/{AGENT_SERVICE}/Execute")(garbage, timeout=t.timeout)),
        "ExecuteStream": await _stream_code(
            t.channel.unary_stream(f"/{AGENT_SERVICE}/ExecuteStream")(garbage, timeout=t.timeout)
        ),
    }
    for method, code in codes.items():
        _expect(code == grpc.StatusCode.INVALID_ARGUMENT,
                f"undecodable bytes to {method} ended with {code.name}; a request that does not decode "
                "is INVALID_ARGUMENT")
    outcomes = []
    odd = [1, "two", {"three": [None, True, {"four": -0.5}]}, [[[[[]]]]]]
    for what, request in (
        ("empty request", agent_pb2.ExecuteRequest()),
        ("odd payload", agent_pb2.ExecuteRequest(task=t.task(odd, "conformance-odd", "no-such-task-type"))),
    ):
        try:
            response = await t.agent.Execute(request, timeout=t.timeout)
            outcome = _check_result(response.result).split(";")[0]
        except grpc.RpcError as err:
            # An agent that declares its task_types refuses the unknown type; one may refuse an empty task.
            _expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT,
                    f"{what} ended with {err.code().name} ({err.details()}); answer a Result or INVALID_ARGUMENT")
            outcome = "INVALID_ARGUMENT" + (" (unknown task type)" if what == "odd payload" else "")
        outcomes.append(f"{what} -> {outcome}")
    d = await t.describe()
    return f"garbage -> INVALID_ARGUMENT; {'; '.join(outcomes)}; {d.id} still answers"


async def check_unknown_method(t: _Target) -> str:
    """A method or service the agent does not have is UNIMPLEMENTED."""
    seen = []
    for path in (f"/{AGENT_SERVICE}/NoSuchMethod", "/sutradhar.v1.NoSuchService/Execute"):
        code = await _call_code(t.channel.unary_unary(path)(b"", timeout=t.timeout))
        _expect(code == grpc.StatusCode.UNIMPLEMENTED, f"{path} ended with {code.name}, not UNIMPLEMENTED")
        seen.append(f"{path} -> UNIMPLEMENTED")
    return "; ".join(seen)


async def check_metrics(t: _Target) -> str:
    """Metrics' requests_total grows after a call; uptime is set; in_flight is not negative."""
    before = await t.agent.Metrics(agent_pb2.MetricsRequest(), timeout=t.timeout)
    await t.execute(t.task(t.options.payload, "conformance-metrics"))
    after = await t.agent.Metrics(agent_pb2.MetricsRequest(), timeout=t.timeout)
    grew = f"requests_total {before.requests_total} -> {after.requests_total}"
    _expect(after.requests_total > before.requests_total, grew)
    _expect(after.HasField("uptime") and after.uptime.ToTimedelta() > timedelta(0), "uptime is not set")
    _expect(after.in_flight >= 0, f"in_flight is {after.in_flight}")
    return f"{grew}, errors_total {after.errors_total}"


async def check_drain(t: _Target) -> str:
    """On SIGTERM (--drain-pid) health turns NOT_SERVING before the port closes and the in-flight task finishes."""
    pid = t.options.drain_pid
    if pid is None:
        raise CheckSkipped("not asked: pass --drain-pid PID (the agent's process on this machine) to check that "
                           "SIGTERM turns health NOT_SERVING before the port closes; it stops the agent")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise CheckFailed(f"--drain-pid {pid}: no such process") from None
    except PermissionError:
        raise CheckFailed(f"--drain-pid {pid}: not allowed to signal it (another user's process)") from None
    baseline = await t.in_flight()
    slow = t.task(t.options.slow_payload, "conformance-drain")
    in_flight = asyncio.ensure_future(t.execute(slow, seconds=max(30.0, t.timeout)))
    try:
        await t.wait_in_flight(lambda n: n > baseline, within=1.0)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + t.timeout
        status = health_pb2.HealthCheckResponse.SERVING
        while time.monotonic() < deadline:
            try:
                status = await t.health("")
            except grpc.RpcError as err:
                raise CheckFailed(
                    f"after SIGTERM health ended with {err.code().name} before it reported NOT_SERVING; on SIGTERM "
                    "report NOT_SERVING first, finish in-flight tasks, then close the port"
                ) from None
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.02)
        _expect(status == health_pb2.HealthCheckResponse.NOT_SERVING,
                f"health still {_status_name(status)} {t.timeout:g}s after SIGTERM")
        code = await _call_code(t.execute(t.task(t.options.payload, "conformance-during-drain")))
        _expect(code == grpc.StatusCode.UNAVAILABLE,
                f"while draining a new task ended with {code.name}; refuse new tasks with UNAVAILABLE, "
                "so that callers send them to another instance")
        try:
            result = await in_flight
        except grpc.RpcError as err:
            raise CheckFailed(f"NOT_SERVING, but the task in flight at SIGTERM ended with {err.code().name} "
                              f"({err.details()}); finish in-flight tasks before stopping") from None
        finished = _check_result(result).split(";")[0]
        closed = await _wait_closed(t, within=t.timeout)
        _expect(closed is not None, f"NOT_SERVING and the in-flight task finished ({finished}), but the agent still "
                                    f"answers {t.timeout:g}s later; stop serving once the in-flight tasks are done")
        assert closed is not None
        return (f"NOT_SERVING after SIGTERM; a new task refused (UNAVAILABLE); the in-flight task finished "
                f"({finished}); port closed {closed * 1000:.0f} ms later")
    finally:
        await _cancel([in_flight])


async def _wait_closed(t: _Target, within: float) -> float | None:
    """Seconds until health calls fail (the port closed), or None when it still answers after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            await t.health("")
        except grpc.RpcError:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


def _describe_error(err: BaseException) -> str:
    if isinstance(err, grpc.RpcError):
        return f"{err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}"


CHECKS: list[tuple[str, Callable[[_Target], Awaitable[str]]]] = [
    ("describe", check_describe),
    ("health", check_health),
    ("health-unknown-service", check_health_unknown),
    ("reflection", check_reflection),
    ("execute", check_execute),
    ("execute-failure", check_execute_failure),
    ("task-metadata", check_task_metadata),
    ("stream", check_stream),
    ("stream-cancel", check_stream_cancel),
    ("deadline", check_deadline),
    ("concurrency", check_concurrency),
    ("malformed-input", check_malformed),
    ("unknown-method", check_unknown_method),
    ("metrics", check_metrics),
    ("drain", check_drain),  # last: it stops the agent
]


async def run_conformance(
    address: str,
    *,
    task_type: str = "",
    payload: JSON = DEFAULT_PAYLOAD,
    slow_payload: JSON = DEFAULT_SLOW_PAYLOAD,
    failure_payload: JSON = DEFAULT_FAILURE_PAYLOAD,
    concurrency: int = DEFAULT_CONCURRENCY,
    drain_pid: int | None = None,
    call_timeout: timedelta = timedelta(seconds=5),
    credentials: Credentials | None = None,
    expected: SpiffeId | None = None,
) -> list[CheckResult]:
    """Run every check against the agent at `address`, in order. With `credentials`
    holding a certificate the channel is mutual TLS and `expected` is the identity the
    agent must present; without, plaintext."""
    options = SuiteOptions(task_type=task_type, payload=payload, slow_payload=slow_payload,
                           failure_payload=failure_payload, concurrency=concurrency, drain_pid=drain_pid,
                           call_timeout=call_timeout)
    results: list[CheckResult] = []
    channel = open_channel(address, credentials or Credentials.insecure(), expected=expected)
    try:
        await _connect(channel, address, call_timeout, secure=expected is not None)
        target = _Target(channel=channel, agent=agent_pb2_grpc.AgentServiceStub(channel), options=options,
                         timeout=call_timeout.total_seconds())
        for name, check in CHECKS:
            started = time.monotonic()
            status = FAIL
            try:
                detail = await check(target)
                status = PASS
            except CheckSkipped as err:
                detail, status = str(err), SKIP
            except CheckFailed as err:
                detail = str(err)
            except grpc.RpcError as err:
                detail = _describe_error(err)
                if err.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                    detail += _REFUSED_HINT
            except Exception as err:
                detail = _describe_error(err)
            results.append(CheckResult(name, status, detail, time.monotonic() - started))
    finally:
        await channel.close()
    return results


async def _connect(channel: Any, address: str, within: timedelta, *, secure: bool) -> None:
    """Wait for the connection; Unavailable saying what to check when there is none in time."""
    try:
        async with asyncio.timeout(within.total_seconds()):  # not wait_for: it can lose a cancellation (_aio)
            await channel.channel_ready()
    except TimeoutError:
        why = ("is an agent listening there? does it serve TLS, and do --identity and the certificates match it?"
               if secure else "is an agent listening there, serving plaintext (not TLS)?")
        raise Unavailable(f"no connection to {address} within {within.total_seconds():g}s: {why}") from None


def all_passed(results: Sequence[CheckResult]) -> bool:
    """True when no check failed (skipped ones were not asked for)."""
    return not any(r.failed for r in results)


def summary(results: Sequence[CheckResult]) -> str:
    """E.g. ``14/15 checks passed, 0 failed, 1 skipped``."""
    counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIP)}
    return f"{counts[PASS]}/{len(results)} checks passed, {counts[FAIL]} failed, {counts[SKIP]} skipped"


def report(address: str, results: Sequence[CheckResult]) -> dict[str, Any]:
    """The JSON report: the address, passed (no check failed), the summary and one object per check."""
    return {"address": address, "passed": all_passed(results), "summary": summary(results),
            "checks": [r.to_dict() for r in results]}


def table_rows(results: Sequence[CheckResult]) -> list[dict[str, str]]:
    """One row per check for a table: check, result (PASS/FAIL/SKIP), time, detail."""
    return [{"check": r.name, "result": r.status.upper(), "time": f"{r.seconds * 1000:.0f}ms", "detail": r.detail}
            for r in results]


TABLE_COLUMNS = ["check", "result", "time", "detail"]


def format_table(results: Sequence[CheckResult]) -> str:
    """A human table: check, PASS/FAIL/SKIP, time, detail; then the summary line."""
    rows = table_rows(results)
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in TABLE_COLUMNS[:-1]}
    lines = ["  ".join(c.upper().ljust(widths.get(c, 0)) for c in TABLE_COLUMNS).rstrip()]
    lines += ["  ".join(row[c].ljust(widths.get(c, 0)) for c in TABLE_COLUMNS).rstrip() for row in rows]
    lines.append(summary(results))
    return "\n".join(lines)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from err


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} calls: give at least 1")
    return value


def add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's options (address, what it sends, how long it waits), shared by
    `python -m sutradhar.conformance` and `sutradhar conformance`; -o is the caller's."""
    parser.add_argument("address", help="agent endpoint, host:port")
    parser.add_argument("--task-type", default="", help="task type to send (default empty: any type)")
    parser.add_argument("--payload", type=_json_arg, default=DEFAULT_PAYLOAD,
                        help=f"payload the agent succeeds on (JSON; default {json.dumps(DEFAULT_PAYLOAD)})")
    parser.add_argument("--failure-payload", type=_json_arg, default=DEFAULT_FAILURE_PAYLOAD,
                        help="payload the agent fails on with an application error "
                             f"(JSON; default {json.dumps(DEFAULT_FAILURE_PAYLOAD)})")
    parser.add_argument("--slow-payload", type=_json_arg, default=DEFAULT_SLOW_PAYLOAD,
                        help="payload that keeps the agent busy a few seconds "
                             f"(JSON; default {json.dumps(DEFAULT_SLOW_PAYLOAD)})")
    parser.add_argument("--concurrency", type=_count, default=DEFAULT_CONCURRENCY,
                        help=f"calls in flight at once in the concurrency check (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--drain-pid", type=int, default=None,
                        help="the agent's process id: the last check SIGTERMs it and expects NOT_SERVING before "
                             "the port closes (default: the drain check is skipped)")
    parser.add_argument("--timeout", type=_positive, default=5.0, help="per-call timeout in seconds (default 5)")


def suite_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `run_conformance` from the parsed `add_suite_arguments` options."""
    return {"task_type": args.task_type, "payload": args.payload, "slow_payload": args.slow_payload,
            "failure_payload": args.failure_payload, "concurrency": args.concurrency, "drain_pid": args.drain_pid,
            "call_timeout": timedelta(seconds=args.timeout)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite against a plaintext agent; exit 0 only when no check fails."""
    parser = argparse.ArgumentParser(
        prog="python -m sutradhar.conformance",
        description="Check a plaintext agent endpoint against the Agent contract "
                    "(`sutradhar conformance` also checks secured agents).",
    )
    add_suite_arguments(parser)
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(run_conformance(args.address, **suite_arguments(args)))
    except SutradharError as err:
        print(f"error: {err.message} ({err.code.name})", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(report(args.address, results), indent=2))
    else:
        print(format_table(results))
    return 0 if all_passed(results) else 1


if __name__ == "__main__":
    sys.exit(main())
