"""`sutradhar._tracing` and the router's hand-written propagation (`services.common.tracing`):
when tracing is on, the sampler's decision by hand matches the OpenTelemetry SDK's, and an
unsampled routed call makes no span while forwarding its context."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sutradhar import _tracing
from sutradhar.services.common.tracing import CallTrace, Forward, RouterTracing, split_address

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(("env", "names"), [
    ({}, ()),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, ("otlp",)),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ("otlp", "console")),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}, ()),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, ()),
])
def test_tracing_is_on_only_when_the_environment_asks_for_an_exporter(env, names):
    assert _tracing.exporter_names(env) == names
    assert _tracing.enabled(env) is bool(names)


def test_an_unknown_exporter_or_sampler_is_refused_by_name():
    with pytest.raises(ValueError, match="'jaeger' is not one of otlp, console"):
        _tracing.exporter_names({"OTEL_TRACES_EXPORTER": "jaeger"})
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER='sometimes'"):
        _tracing._sampler_from_env({"OTEL_TRACES_SAMPLER": "sometimes"})
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG='2'"):
        _tracing._sampler_from_env({"OTEL_TRACES_SAMPLER_ARG": "2"})


def test_the_default_sampler_is_parentbased_traceidratio_at_one():
    sampler = _tracing._sampler_from_env({})
    assert "ParentBased" in sampler.get_description() and "TraceIdRatioBased{1.0}" in sampler.get_description()


@pytest.mark.parametrize("env", [
    {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.3"},
    {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
    {"OTEL_TRACES_SAMPLER": "always_on"},
    {"OTEL_TRACES_SAMPLER": "always_off"},
    {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    {"OTEL_TRACES_SAMPLER": "parentbased_always_off"},
])
def test_the_decision_by_hand_is_the_sdk_samplers_decision(env):
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    sampler = _tracing._sampler_from_env(env)
    by_hand = _tracing.Sampling.of(sampler)
    rng = random.Random(7)
    for _ in range(400):
        trace_id = rng.getrandbits(128) or 1
        for parent in (None, True, False):
            context = None
            if parent is not None:
                remote = SpanContext(trace_id, 1, is_remote=True,
                                     trace_flags=TraceFlags(TraceFlags.SAMPLED if parent else 0))
                context = trace.set_span_in_context(NonRecordingSpan(remote))
            sdk = sampler.should_sample(context, trace_id, "x").decision.is_sampled()
            assert by_hand.sample(trace_id, parent) is sdk, (env, hex(trace_id), parent)


def test_traceparent_round_trips_and_malformed_values_are_none():
    value = f"00-{TRACE}-{PARENT}-01"
    parsed = _tracing.parse_traceparent(value)
    assert parsed == (int(TRACE, 16), int(PARENT, 16), 1)
    assert _tracing.traceparent(*parsed) == value
    for bad in ("", "garbage", f"ff-{TRACE}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01-x"):
        assert _tracing.parse_traceparent(bad) is None


def test_split_address():
    assert split_address("127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert split_address("[::1]:7") == ("::1", 7)
    assert split_address("in-process") == ("in-process", None)


class _State:
    """A `sutradhar._tracing._Tracing` over an in-memory exporter, without touching the global provider."""

    def __init__(self, ratio: float) -> None:
        self.exporter = InMemorySpanExporter()
        sampler = _tracing._sampler_from_env({"OTEL_TRACES_SAMPLER_ARG": str(ratio)})
        self.ids = _tracing._make_id_generator()
        self.provider = TracerProvider(sampler=sampler, id_generator=self.ids)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.sampling = _tracing.Sampling.of(sampler)

    def tracer(self, name: str):
        return self.provider.get_tracer(name)


BACKEND = SimpleNamespace(endpoint="127.0.0.1:9000", namespace="ns", agent_id="echo", instance_id="echo-1")


def test_an_unsampled_call_forwards_the_callers_traceparent_and_makes_no_span():
    state = _State(1.0)
    tracing = RouterTracing(state, "127.0.0.1:50051")
    value = f"00-{TRACE}-{PARENT}-00"
    trace = tracing.start((("traceparent", value),), "")
    assert isinstance(trace, Forward) and not trace.sampled
    assert trace.attempt(BACKEND, 1) == (None, (("traceparent", value),))
    assert state.exporter.get_finished_spans() == ()


def test_a_new_unsampled_trace_forwards_a_fresh_unsampled_traceparent():
    state = _State(0.0)
    tracing = RouterTracing(state, "127.0.0.1:50051")
    trace = tracing.start((), "")
    assert isinstance(trace, Forward)
    (key, value), = trace.metadata
    parsed = _tracing.parse_traceparent(value)
    assert key == "traceparent" and parsed is not None and parsed[2] == 0
    assert state.exporter.get_finished_spans() == ()


def test_a_sampled_call_gets_a_server_span_and_attempt_spans_under_it():
    state = _State(1.0)
    tracing = RouterTracing(state, "127.0.0.1:50051")
    trace = tracing.start((), f"00-{TRACE}-{PARENT}-01")  # task.context.traceparent
    assert isinstance(trace, CallTrace)
    span, metadata = trace.attempt(BACKEND, 1)
    ctx = span.get_span_context()
    assert metadata == (("traceparent", f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"),)
    trace.attempt_end(span, None, breaker="closed", ejected=True, task_failed=False)
    trace.end(None)
    attempt, server = state.exporter.get_finished_spans()
    assert server.kind is SpanKind.SERVER and server.name == "sutradhar.v1.RouterService/Execute"
    assert f"{server.context.trace_id:032x}" == TRACE and f"{server.parent.span_id:016x}" == PARENT
    assert attempt.kind is SpanKind.CLIENT and attempt.parent.span_id == server.context.span_id
    assert attempt.attributes["server.address"] == "127.0.0.1" and attempt.attributes["server.port"] == 9000
    assert attempt.attributes["rpc.response.status_code"] == "OK"
    assert [e.name for e in attempt.events] == ["sutradhar.instance.ejected"]


STATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def test_an_unsampled_call_forwards_the_tracestate_of_the_traceparent_it_continues():
    tracing = RouterTracing(_State(1.0), "127.0.0.1:50051")
    value = f"00-{TRACE}-{PARENT}-00"
    from_metadata = tracing.start((("traceparent", value), ("tracestate", "congo=t61rcWkgMzE"),
                                   ("tracestate", "rojo=00f067aa0ba902b7")), "", "task=1")
    assert from_metadata.attempt(BACKEND, 1) == (None, (("traceparent", value), ("tracestate", STATE)))
    # The metadata's traceparent wins and takes its own (absent) tracestate: the task's is not mixed in.
    assert tracing.start((("traceparent", value),), f"00-{TRACE}-{PARENT}-01", STATE).metadata == (
        ("traceparent", value),)
    assert tracing.start((), value, STATE).metadata == (("traceparent", value), ("tracestate", STATE))
    # A tracestate that cannot be metadata is dropped, not sent to fail the attempt.
    assert tracing.start((), value, "a=1\r\nx: y").metadata == (("traceparent", value),)


def test_a_sampled_call_carries_the_callers_tracestate_on_its_spans_and_attempts():
    state = _State(1.0)
    tracing = RouterTracing(state, "127.0.0.1:50051")
    trace = tracing.start((), f"00-{TRACE}-{PARENT}-01", STATE)
    assert isinstance(trace, CallTrace)
    span, metadata = trace.attempt(BACKEND, 1)
    ctx = span.get_span_context()
    assert metadata == (("traceparent", f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"), ("tracestate", STATE))
    trace.attempt_end(span, None, breaker="closed", ejected=False, task_failed=False)
    trace.end(None)
    assert [s.context.trace_state.to_header() for s in state.exporter.get_finished_spans()] == [STATE, STATE]


def test_a_malformed_tracestate_is_dropped_and_a_new_trace_takes_none():
    state = _State(1.0)
    tracing = RouterTracing(state, "127.0.0.1:50051")
    trace = tracing.start((), f"00-{TRACE}-{PARENT}-01", "not a tracestate")
    assert isinstance(trace, CallTrace)
    _, metadata = trace.attempt(BACKEND, 1)
    assert [key for key, _ in metadata] == ["traceparent"]
    fresh = tracing.start((), "garbage", STATE)  # no valid traceparent: a new trace, the state means nothing
    _, metadata = fresh.attempt(BACKEND, 1)
    assert [key for key, _ in metadata] == ["traceparent"]


def test_trace_context_of_takes_the_metadatas_pair_else_the_tasks():
    from sutradhar._log_context import trace_context_of

    tp = f"00-{TRACE}-{PARENT}-01"
    assert trace_context_of((("traceparent", tp), ("tracestate", b"a=1")), "task", "b=2") == (tp, "a=1")
    assert trace_context_of((("tracestate", "a=1"),), "task", " b=2 ") == ("task", "b=2")
    assert trace_context_of(None, "task", "b=\u00e9") == ("task", "")
    assert trace_context_of((("traceparent", tp), ("tracestate", " "), ("tracestate", "a=1")), "", "") == (tp, "a=1")


def test_a_sampled_new_trace_keeps_the_trace_id_it_was_sampled_on():
    state = _State(0.5)
    tracing = RouterTracing(state, "127.0.0.1:50051")
    kinds = set()
    for _ in range(200):
        trace = tracing.start((), "")
        kinds.add(type(trace))
        if isinstance(trace, CallTrace):
            trace_id = trace.call.get_span_context().trace_id
            assert state.sampling.sample(trace_id, None)
            trace.end(None)
    assert kinds == {Forward, CallTrace}


def test_code_of_names_statuses_as_the_chain_does():
    import asyncio

    from sutradhar._errors import NotFound

    assert _tracing.code_of(None) == "OK"
    assert _tracing.code_of(NotFound("x")) == "NOT_FOUND"
    assert _tracing.code_of(asyncio.CancelledError()) == "CANCELLED"
    assert _tracing.code_of(GeneratorExit()) == "CANCELLED"  # a stream closed by its consumer
    assert _tracing.code_of(RuntimeError("x")) == "INTERNAL"
