"""The engine with tracing on (fake transports, no network): every attempt is handed the
call's trace context; sampled, retries and hedges are separate CLIENT spans under the call's
SERVER span, each sending its own ``traceparent``; unsampled, no span and the same context."""

from __future__ import annotations

import grpc
import pytest
from test_router_engine import FakeTransport, make, request, result, retry_policy
from test_tracing_propagation import _State

from sutradhar import _tracing
from sutradhar._errors import DeadlineExceeded
from sutradhar.services.common.tracing import Forward, RouterTracing, attempt_attributes
from sutradhar.v1 import routing_pb2

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class MetadataTransport(FakeTransport):
    """A fake transport that also keeps the metadata of every attempt."""

    def __init__(self, outcome: object = "ok") -> None:
        super().__init__(outcome)
        self.metadata: list[object] = []

    async def execute(self, request: bytes, time_left: float | None, metadata: object = None) -> bytes:
        self.metadata.append(metadata)
        return await super().execute(request, time_left)


def traced(n: int, policy: routing_pb2.RoutingPolicy, outcomes: dict[int, object]):
    engine, _ = make(n, policy)
    swapped = []
    for backend in sorted(engine.view.backends.values(), key=lambda b: b.instance_id):
        k = int(backend.instance_id[1:])
        backend.transport = MetadataTransport(outcomes.get(k, "ok"))
        swapped.append(backend.transport)
    return engine, swapped


async def test_a_sampled_retry_is_two_attempt_spans_each_sending_its_own_traceparent():
    state = _State(1.0)
    engine, fakes = traced(2, retry_policy(), {0: grpc.StatusCode.UNAVAILABLE})
    trace = RouterTracing(state, "127.0.0.1:50051").start((("traceparent", CALLER),), "")
    out = result(await engine.execute(request(strategy="round-robin"), 5.0, trace))
    trace.end(None)
    assert out.success and out.metadata.attempts == 2
    spans = state.exporter.get_finished_spans()
    attempts = sorted((s for s in spans if s.kind.name == "CLIENT"), key=lambda s: s.attributes["sutradhar.attempt"])
    (server,) = [s for s in spans if s.kind.name == "SERVER"]
    assert [a.attributes["rpc.response.status_code"] for a in attempts] == ["UNAVAILABLE", "OK"]
    assert [a.attributes["sutradhar.instance"] for a in attempts] == ["i0", "i1"]
    assert all(a.parent.span_id == server.context.span_id for a in attempts)
    assert [e.name for e in server.events] == ["sutradhar.retry"]
    sent = [fakes[0].metadata[0], fakes[1].metadata[0]]
    for attempt, metadata in zip(attempts, sent, strict=True):
        ctx = attempt.context
        assert metadata == (("traceparent", _tracing.traceparent(ctx.trace_id, ctx.span_id, 1)),)


async def test_a_hedge_is_an_attempt_span_of_its_own_and_cancelled_copies_end_cancelled():
    state = _State(1.0)
    policy = routing_pb2.RoutingPolicy()
    policy.hedging.task_types.append("echo")
    policy.hedging.delay.FromMilliseconds(5)
    engine, fakes = traced(2, policy, {0: "hang", 1: "hang"})
    trace = RouterTracing(state, "127.0.0.1:50051").start((("traceparent", CALLER),), "")
    # The first copy hangs; the hedge, sent after the delay, goes to the other instance and hangs
    # too; the deadline cancels both.
    with pytest.raises(DeadlineExceeded) as failed:
        await engine.execute(request(), 0.2, trace)
    trace.end(failed.value)
    spans = state.exporter.get_finished_spans()
    attempts = sorted((s for s in spans if s.kind.name == "CLIENT"), key=lambda s: s.attributes["sutradhar.attempt"])
    assert len(attempts) == 2 and all(f.calls == 1 for f in fakes)
    assert "sutradhar.hedge" not in attempts[0].attributes and attempts[1].attributes["sutradhar.hedge"] is True
    assert {a.attributes["sutradhar.instance"] for a in attempts} == {"i0", "i1"}
    assert all(a.attributes["rpc.response.status_code"] == "CANCELLED" for a in attempts)
    (server,) = [s for s in spans if s.kind.name == "SERVER"]
    assert server.attributes["rpc.response.status_code"] == "DEADLINE_EXCEEDED"
    assert server.status.status_code.name == "ERROR"


async def test_an_unsampled_call_hands_every_attempt_the_same_context_and_makes_no_span():
    state = _State(1.0)
    engine, fakes = traced(2, retry_policy(), {0: grpc.StatusCode.UNAVAILABLE})
    unsampled = CALLER[:-2] + "00"
    trace = RouterTracing(state, "127.0.0.1:50051").start((("traceparent", unsampled),), "")
    assert isinstance(trace, Forward)
    out = result(await engine.execute(request(strategy="round-robin"), 5.0, trace))
    assert out.success and out.metadata.attempts == 2
    assert fakes[0].metadata == fakes[1].metadata == [(("traceparent", unsampled),)]
    assert state.exporter.get_finished_spans() == ()


@pytest.mark.parametrize(("endpoint", "want"), [
    ("127.0.0.1:50051", {"rpc.system.name": "grpc", "rpc.method": "m", "server.address": "127.0.0.1",
                         "server.port": 50051}),
    ("[::1]:7000", {"rpc.system.name": "grpc", "rpc.method": "m", "server.address": "::1", "server.port": 7000}),
    ("http://127.0.0.1:8080", {"http.request.method": "POST", "url.full": "http://127.0.0.1:8080/execute",
                               "server.address": "127.0.0.1", "server.port": 8080}),
    ("https://agents.example/", {"http.request.method": "POST", "url.full": "https://agents.example/execute",
                                 "server.address": "agents.example", "server.port": 443}),
    ("in-process", {"rpc.method": "m"}),
])
def test_attempt_attributes_follow_the_instance_kind(endpoint: str, want: dict[str, object]) -> None:
    assert attempt_attributes(endpoint, "m") == want
