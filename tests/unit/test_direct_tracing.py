"""A direct caller's tracing (`sutradhar._route_tracing.DirectTracing`), on an in-memory exporter:
the call's parent is the caller's current span, else the task's ``traceparent``; the sampler
decides as the router's does; an unsampled call makes no span and forwards the caller's context;
the call span is INTERNAL and, being the caller's side, an error for any failed call."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from test_tracing_propagation import _State

from sutradhar import TaskContext, _tracing
from sutradhar._clients import make_task
from sutradhar._errors import NotFound
from sutradhar._route_tracing import CallTrace, DirectTracing, Forward

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
BACKEND = SimpleNamespace(endpoint="127.0.0.1:9000", namespace="ns", agent_id="echo", instance_id="echo-1")


def test_the_callers_current_span_is_the_parent_and_wins_over_the_tasks_traceparent() -> None:
    state = _State(1.0)
    with state.tracer("caller").start_as_current_span("caller") as caller:
        call = DirectTracing(state).start(f"00-{TRACE}-{PARENT}-01")
    assert isinstance(call, CallTrace)
    span, metadata = call.attempt(BACKEND, 1)
    CallTrace.attempt_end(span, None, breaker="closed", ejected=False, task_failed=False)
    call.end(None)
    spans = {s.name: s for s in state.exporter.get_finished_spans()}
    attempt, call_span = spans["sutradhar.v1.AgentService/Execute"], spans["sutradhar.v1.RouterService/Execute"]
    assert call_span.kind is SpanKind.INTERNAL and call_span.name == "sutradhar.v1.RouterService/Execute"
    assert call_span.parent.span_id == caller.get_span_context().span_id
    assert call_span.context.trace_id == caller.get_span_context().trace_id
    assert dict(call_span.attributes) == {"rpc.system.name": "grpc", "rpc.method": "sutradhar.v1.RouterService/Execute",
                                          "rpc.response.status_code": "OK"}
    assert attempt.kind is SpanKind.CLIENT and attempt.parent.span_id == call_span.context.span_id
    ctx = attempt.context
    assert metadata == (("traceparent", _tracing.traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags))),)
    assert ctx.trace_flags.sampled
    assert set(spans) == {"caller", attempt.name, call_span.name}


def test_without_a_current_span_the_tasks_traceparent_is_the_parent() -> None:
    state = _State(1.0)
    call = DirectTracing(state).start(f" 00-{TRACE.upper()}-{PARENT}-01 ", stream=True)
    assert isinstance(call, CallTrace)
    call.end(NotFound("no agent"))
    (span,) = state.exporter.get_finished_spans()
    assert span.name == "sutradhar.v1.RouterService/ExecuteStream"
    assert f"{span.context.trace_id:032x}" == TRACE and f"{span.parent.span_id:016x}" == PARENT
    # The caller's side: a failed call is an error whatever its code (the router's SERVER span would not be).
    assert span.attributes["error.type"] == "NOT_FOUND" and span.status.status_code.name == "ERROR"


def test_unsampled_calls_make_no_span_and_forward_the_callers_context() -> None:
    state = _State(0.0)  # new traces are never sampled; parents decide for themselves
    unsampled = SpanContext(int(TRACE, 16), int(PARENT, 16), is_remote=False, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(unsampled)):
        current = DirectTracing(state).start("")
    assert isinstance(current, Forward) and current.metadata == (("traceparent", f"00-{TRACE}-{PARENT}-00"),)
    task = DirectTracing(state).start(f"00-{TRACE}-{PARENT}-00")
    assert isinstance(task, Forward)
    assert task.attempt(BACKEND, 1) == (None, (("traceparent", f"00-{TRACE}-{PARENT}-00"),))
    root = DirectTracing(state).start("")
    assert isinstance(root, Forward)
    parsed = _tracing.parse_traceparent(root.metadata[0][1])
    assert parsed is not None and parsed[2] == 0  # a new unsampled context: the agent starts no trace of its own
    assert state.exporter.get_finished_spans() == ()


STATE = "congo=t61rcWkgMzE"


def test_the_trace_state_goes_with_the_parent_the_call_continues() -> None:
    state = _State(1.0)
    with state.tracer("caller").start_as_current_span("caller", context=_tracing.remote_parent(
            f"00-{TRACE}-{PARENT}-01", STATE)):
        call = DirectTracing(state).start(f"00-{TRACE}-{PARENT}-01", "task=1")  # the current span's wins
    assert isinstance(call, CallTrace)
    _, metadata = call.attempt(BACKEND, 1)
    assert metadata[1] == ("tracestate", STATE)
    task = DirectTracing(state).start(f"00-{TRACE}-{PARENT}-01", "task=1")
    assert isinstance(task, CallTrace) and task.call.get_span_context().trace_state.to_header() == "task=1"
    quiet = DirectTracing(_State(0.0)).start(f"00-{TRACE}-{PARENT}-00", "task=1")
    assert quiet.metadata == (("traceparent", f"00-{TRACE}-{PARENT}-00"), ("tracestate", "task=1"))


def test_a_sampled_new_trace_is_a_root_call_span_with_the_sampled_trace_id() -> None:
    state = _State(0.5)
    kinds = set()
    for _ in range(100):
        call = DirectTracing(state).start("")
        kinds.add(type(call))
        if isinstance(call, CallTrace):
            assert state.sampling.sample(call.call.get_span_context().trace_id, None)
            call.end(None)
    assert kinds == {Forward, CallTrace}
    assert all(span.parent is None for span in state.exporter.get_finished_spans())


def test_a_client_task_without_a_traceparent_takes_the_current_spans_and_its_trace_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    state = _State(1.0)
    monkeypatch.setattr(_tracing, "_state", state)
    hand_set = TaskContext(tracestate="alone=1")  # a tracestate with no traceparent means nothing: replaced
    with state.tracer("caller").start_as_current_span("caller", context=_tracing.remote_parent(
            f"00-{TRACE}-{PARENT}-01", STATE)) as caller:
        task = make_task(1, task_type="t", task_id="i", context=hand_set, timeout=None)
        kept = make_task(1, task_type="t", task_id="i", context=TaskContext(traceparent="tp", tracestate="ts"),
                         timeout=None)
    ctx = caller.get_span_context()
    assert (task.context.traceparent, task.context.tracestate) == (
        _tracing.traceparent(ctx.trace_id, ctx.span_id, 1), STATE)
    assert (kept.context.traceparent, kept.context.tracestate) == ("tp", "ts")  # set by hand: sent as it is
