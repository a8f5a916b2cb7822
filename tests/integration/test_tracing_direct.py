"""Tracing of direct calls, on real processes: a registry and an SDK agent (exporting to a real
OTLP receiver in the test, the collector's TraceService on 127.0.0.1), a `DirectClient` in the
test's process with tracing on (its own provider, exporting to the same receiver by OTLP), and a
registered instance nobody listens at, so some calls are retried on the agent.

A direct call is one trace from the caller to the agent: the client's INTERNAL call span under
the caller's current span (or under the task's ``traceparent``), a CLIENT span per attempt under
it, the agent's SERVER span under the attempt that reached it; a retry is a second attempt span
and a ``sutradhar.retry`` event; a stream the caller leaves early ends its call span CANCELLED.
An unsampled call makes no span in the client, and the agent follows it (its log line names the
caller's trace) instead of starting a trace of its own."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from obs_support import children, exporting_to, start, traced_echo_beside_a_dead_instance
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from otlp_receiver import Receiver, Span

from sutradhar import DirectClient, TaskContext, _tracing
from sutradhar.services.common.etcd_server import free_port
from tests.support import eventually

CALLER_SPAN = "00f067aa0ba902b7"


class ClientTracing:
    """Tracing on in this process, as `sutradhar._tracing.setup` turns it on, but on a provider of
    its own (the global one is left alone) exporting by OTLP to `endpoint`."""

    def __init__(self, endpoint: str) -> None:
        sampler = _tracing._sampler_from_env({})  # parentbased_traceidratio at 1.0, the default
        ids = _tracing._make_id_generator()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "caller"}), sampler=sampler,
                                       id_generator=ids)
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True), schedule_delay_millis=50))
        self.state = _tracing._Tracing(self.provider, _tracing.Sampling.of(sampler), ids)
        self.tracer = self.provider.get_tracer("test")

    async def flush(self) -> None:
        """Send every ended span now (in a thread: the receiver answers in this loop)."""
        assert await asyncio.to_thread(self.provider.force_flush, 10_000)


def _traceparent(sampled: bool) -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{CALLER_SPAN}-{'01' if sampled else '00'}"


def _of(spans: list[Span], service: str, kind: str) -> list[Span]:
    """The mesh's spans of `service` and `kind` (not the test's own, nor the agent code's), by attempt."""
    return sorted((s for s in spans if s.service == service and s.kind == kind and s.name.startswith("sutradhar.")),
                  key=lambda s: s.attributes.get("sutradhar.attempt", 0))


async def test_a_direct_call_is_one_trace_from_the_caller_through_its_attempts_to_the_agent(
        etcd: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver()
    endpoint = await receiver.start()
    tracing = ClientTracing(endpoint)
    env = exporting_to(endpoint)
    try:
        with children() as started:
            started.append(registry := start(
                "registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd],
                tmp_path))
            agent, dead = await traced_echo_beside_a_dead_instance(started, registry.address, unique, tmp_path, env)

            monkeypatch.setattr(_tracing, "_state", tracing.state)  # tracing on here, as `setup` turns it on
            # The router is never called: every call here is routed by the client itself.
            async with DirectClient(f"127.0.0.1:{free_port()}", registry=registry.address) as client:
                assert await client.wait_synced(timeout=10)
                await eventually(lambda: len(client.stats(namespace=unique).instances) == 2, within=10,
                                 what="the client sees both instances")

                async def call(payload: object, **options: object) -> int:
                    result = await client.execute("echo", payload, namespace=unique, timeout=timedelta(seconds=5),
                                                  **options)  # type: ignore[arg-type]
                    return result.metadata.attempts

                # (a) Under the caller's current span; round robin over the two instances: within a few
                # calls one goes to the agent at once and one to the dead instance first.
                by_attempts: dict[int, tuple[str, str]] = {}
                sampled: set[str] = set()
                for _ in range(6):
                    with tracing.tracer.start_as_current_span("caller") as caller:
                        ctx = caller.get_span_context()
                        attempts = await call({"text": "hi"})
                    by_attempts.setdefault(attempts, (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"))
                    sampled.add(f"{ctx.trace_id:032x}")
                    if {1, 2} <= by_attempts.keys():
                        break
                assert {1, 2} <= by_attempts.keys(), by_attempts

                # (b) No current span: the task's traceparent is the parent.
                task_id, task_parent = _traceparent(sampled=True)
                await call({"text": "hi"}, context=TaskContext(traceparent=task_parent))

                # (c) A stream under the caller's span.
                with tracing.tracer.start_as_current_span("streaming caller") as caller:
                    stream_id = f"{caller.get_span_context().trace_id:032x}"
                    events = [e async for e in client.execute_stream(
                        "echo", {"text": "abcd"}, namespace=unique, timeout=timedelta(seconds=5))]
                assert events and events[-1].success
                with tracing.tracer.start_as_current_span("leaving caller") as caller:
                    left_id = f"{caller.get_span_context().trace_id:032x}"
                    async with contextlib.aclosing(client.execute_stream(
                            "echo", {"text": "abcd"}, namespace=unique, timeout=timedelta(seconds=5))) as left:
                        async for _ in left:
                            break  # leaving early: the call's span ends CANCELLED

                # (d) Unsampled, from the task's traceparent and from the caller's current span; the agent
                # fails these tasks, so its log names the trace it ran them in.
                quiet_id, quiet_parent = _traceparent(sampled=False)
                await call({"crash": True}, context=TaskContext(traceparent=quiet_parent))
                current_quiet_id = secrets.token_hex(16)
                unsampled = NonRecordingSpan(SpanContext(int(current_quiet_id, 16), int(CALLER_SPAN, 16),
                                                         is_remote=False, trace_flags=TraceFlags(0)))
                with trace.use_span(unsampled):
                    await call({"crash": True})
                assert client.stats().routed == 0, client.stats().fallbacks

            await tracing.flush()
            for child in reversed(started):  # in a thread: the receiver in this loop takes their last spans
                assert await asyncio.to_thread(child.stop) == 0, child.lines()
            agent_records = agent.records()
    finally:
        await asyncio.to_thread(tracing.provider.shutdown)  # in a thread: what is left goes to the receiver
        await receiver.stop()
    plain, retried = receiver.of_trace(by_attempts[1][0]), receiver.of_trace(by_attempts[2][0])
    from_task, streamed = receiver.of_trace(task_id), receiver.of_trace(stream_id)

    # (a) One attempt: caller -> call (INTERNAL) -> attempt (CLIENT) -> the agent's SERVER span.
    (call_span,) = _of(plain, "caller", "INTERNAL")
    assert call_span.name == "sutradhar.v1.RouterService/Execute"
    assert call_span.parent_span_id == by_attempts[1][1]
    assert call_span.attributes["rpc.system.name"] == "grpc"
    assert call_span.attributes["rpc.method"] == "sutradhar.v1.RouterService/Execute"
    assert call_span.attributes["rpc.response.status_code"] == "OK"
    assert "server.address" not in call_span.attributes and call_span.events == ()
    (attempt,) = _of(plain, "caller", "CLIENT")
    assert attempt.name == "sutradhar.v1.AgentService/Execute" and attempt.parent_span_id == call_span.span_id
    assert attempt.attributes["sutradhar.instance"] == f"echo-{unique}"
    assert attempt.attributes["sutradhar.namespace"] == unique and attempt.attributes["sutradhar.agent"] == "echo"
    assert attempt.attributes["sutradhar.attempt"] == 1 and attempt.attributes["rpc.response.status_code"] == "OK"
    assert attempt.attributes["server.address"] == "127.0.0.1" and "server.port" in attempt.attributes
    assert attempt.attributes["sutradhar.breaker.state"] == "closed"
    (served,) = _of(plain, "echo", "SERVER")
    assert served.name == "sutradhar.v1.AgentService/Execute" and served.parent_span_id == attempt.span_id
    assert served.attributes["sutradhar.task.success"] is True

    # A retry: two attempt spans under the call, a retry event on it, the agent under the second.
    (call_span,) = _of(retried, "caller", "INTERNAL")
    assert call_span.parent_span_id == by_attempts[2][1] and "sutradhar.retry" in call_span.events
    assert call_span.attributes["rpc.response.status_code"] == "OK" and call_span.status_code != 2
    first, second = _of(retried, "caller", "CLIENT")
    assert [first.attributes["sutradhar.attempt"], second.attributes["sutradhar.attempt"]] == [1, 2]
    assert first.parent_span_id == second.parent_span_id == call_span.span_id
    assert first.attributes["sutradhar.instance"] == dead and first.attributes["error.type"] == "UNAVAILABLE"
    assert first.status_code == 2  # STATUS_CODE_ERROR
    assert second.attributes["sutradhar.instance"] == f"echo-{unique}"
    assert second.attributes["rpc.response.status_code"] == "OK"
    (served,) = _of(retried, "echo", "SERVER")
    assert served.parent_span_id == second.span_id

    # (b) The task's traceparent is the call span's parent.
    (call_span,) = _of(from_task, "caller", "INTERNAL")
    assert call_span.parent_span_id == CALLER_SPAN
    (served,) = _of(from_task, "echo", "SERVER")
    assert served.parent_span_id in {a.span_id for a in _of(from_task, "caller", "CLIENT")}

    # (c) The stream: the ExecuteStream call span, the agent's stream span under its last attempt.
    (call_span,) = _of(streamed, "caller", "INTERNAL")
    assert call_span.name == "sutradhar.v1.RouterService/ExecuteStream"
    assert call_span.attributes["rpc.response.status_code"] == "OK"
    stream_attempts = _of(streamed, "caller", "CLIENT")
    assert all(a.name == "sutradhar.v1.AgentService/ExecuteStream" for a in stream_attempts)
    assert all(a.parent_span_id == call_span.span_id for a in stream_attempts)
    (served,) = _of(streamed, "echo", "SERVER")
    assert served.name == "sutradhar.v1.AgentService/ExecuteStream"
    assert served.parent_span_id == stream_attempts[-1].span_id

    (left,) = _of(receiver.of_trace(left_id), "caller", "INTERNAL")
    assert left.attributes["rpc.response.status_code"] == "CANCELLED" and left.status_code == 2

    # (d) Nothing of the unsampled calls left either process (the agent flushed at stop), yet the
    # agent ran each task in the caller's trace: it started no trace of its own.
    assert receiver.of_trace(quiet_id) == [] and receiver.of_trace(current_quiet_id) == []
    assert {s.trace_id for s in receiver.spans if s.service == "echo"} == {*sampled, task_id, stream_id, left_id}
    errors = [r for r in agent_records if r["level"] == "ERROR"]
    for quiet in (quiet_id, current_quiet_id):
        assert len([r for r in errors if r.get("trace_id") == quiet]) == 1, errors
