"""Trace context for the router's HTTP and in-process agents (no network).

`trace_headers`: the W3C headers an HTTP agent is sent. `InProcessTransport` with tracing on
(an in-memory exporter): the agent runs under its task span, parented on the attempt, current
only while the agent's own code runs (a streamed agent's span held across a ``yield`` nests
what it starts next), ended when the task or the stream ends or is closed; unsampled, no span."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from test_tracing_propagation import _State

from sutradhar import Agent, Partial, Task, _tracing
from sutradhar._route_transports import AttemptError, InProcessTransport, trace_headers
from sutradhar.v1 import agent_pb2

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ATTEMPT = "b7ad6b7169203331"
SAMPLED = f"00-{TRACE}-{ATTEMPT}-01"
UNSAMPLED = f"00-{TRACE}-{ATTEMPT}-00"
OWNER = SimpleNamespace(agent_id="work", version="2.0.0", namespace="ns", instance_id="work-0")


# -- trace_headers ------------------------------------------------------------------------

def test_the_attempts_context_wins_whole_over_the_callers() -> None:
    ctx = agent_pb2.TaskContext(traceparent=f"00-{TRACE}-00f067aa0ba902b7-01", tracestate="congo=t61rcWkgMzE")
    attempt = (("traceparent", SAMPLED), ("tracestate", "rojo=00f067aa0ba902b7"))
    assert trace_headers(attempt, ctx) == {"traceparent": SAMPLED, "tracestate": "rojo=00f067aa0ba902b7"}
    # An attempt with no tracestate (the router dropped a malformed one) sends none, not the caller's.
    assert trace_headers((("traceparent", SAMPLED),), ctx) == {"traceparent": SAMPLED}


def test_without_router_tracing_the_callers_own_context_is_sent() -> None:
    caller = f" 00-{TRACE.upper()}-00f067aa0ba902b7-01 "
    ctx = agent_pb2.TaskContext(traceparent=caller, tracestate="a=1,b=2")
    assert trace_headers(None, ctx) == {"traceparent": caller.strip().lower(), "tracestate": "a=1,b=2"}
    assert trace_headers(None, agent_pb2.TaskContext(traceparent=caller)) == {"traceparent": caller.strip().lower()}


@pytest.mark.parametrize("traceparent", [
    "", "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"ff-{TRACE}-{ATTEMPT}-01"])
def test_no_valid_traceparent_no_headers_and_no_tracestate_alone(traceparent: str) -> None:
    assert trace_headers(None, agent_pb2.TaskContext(traceparent=traceparent, tracestate="a=1")) is None


def test_a_tracestate_that_cannot_be_a_header_is_dropped() -> None:
    for bad in ("a=1\r\nx-injected: 1", "a=\u00e9"):
        assert trace_headers(None, agent_pb2.TaskContext(traceparent=SAMPLED, tracestate=bad)) == {
            "traceparent": SAMPLED}
        assert trace_headers((("traceparent", SAMPLED), ("tracestate", bad)), agent_pb2.TaskContext()) == {
            "traceparent": SAMPLED}


# -- in-process agents ---------------------------------------------------------------------

class SpanAgent(Agent):
    """Makes spans of its own with the tracer it is given; records the context it ran under."""

    id = "span-agent"

    def __init__(self, tracer: Any, sleep: float = 0.0) -> None:
        self.tracer = tracer
        self.sleep = sleep
        self.seen: list[Any] = []

    async def execute(self, task: Task) -> Any:
        self.seen.append(trace.get_current_span().get_span_context())
        with self.tracer.start_as_current_span("work"):
            await asyncio.sleep(self.sleep)
        return {"ok": True}

    async def stream(self, task: Task) -> AsyncIterator[Any]:
        with self.tracer.start_as_current_span("whole stream"):  # held open across every yield
            for n in range(3):
                with self.tracer.start_as_current_span(f"chunk {n}"):
                    await asyncio.sleep(0)
                yield Partial(n)


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> Iterator[_State]:
    state = _State(1.0)
    monkeypatch.setattr(_tracing, "_state", state)
    yield state


def transport(state: _State, **kwargs: Any) -> InProcessTransport:
    return InProcessTransport({"class": "test_agent_trace_context:SpanAgent",
                               "kwargs": {"tracer": state.tracer("agent code"), **kwargs}}, owner=OWNER)


def request() -> bytes:
    return agent_pb2.ExecuteRequest(task=agent_pb2.Task(id="t-1", type="summarize")).SerializeToString()


def by_name(state: _State) -> dict[str, Any]:
    return {s.name: s for s in state.exporter.get_finished_spans()}


def no_current_span() -> bool:
    return not trace.get_current_span().get_span_context().is_valid


async def test_an_in_process_task_runs_under_its_span_under_the_attempt(state: _State) -> None:
    answer = agent_pb2.ExecuteResponse.FromString(
        await transport(state).execute(request(), 5.0, (("traceparent", SAMPLED),)))
    assert answer.result.success and no_current_span()
    spans = by_name(state)
    served = spans["sutradhar.v1.AgentService/Execute"]
    assert served.kind.name == "SERVER" and served.parent.span_id == int(ATTEMPT, 16)
    assert served.context.trace_id == int(TRACE, 16)
    assert dict(served.attributes) == {
        "rpc.system.name": "grpc", "rpc.method": "sutradhar.v1.AgentService/Execute", "sutradhar.namespace": "ns",
        "sutradhar.agent": "work", "sutradhar.instance": "work-0", "sutradhar.task.type": "summarize",
        "sutradhar.task.success": True, "rpc.response.status_code": "OK"}
    assert spans["work"].parent.span_id == served.context.span_id


async def test_an_in_process_task_span_carries_the_attempts_trace_state(state: _State) -> None:
    attempt = (("traceparent", SAMPLED), ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"))
    await transport(state).execute(request(), 5.0, attempt)
    spans = by_name(state)
    served = spans["sutradhar.v1.AgentService/Execute"]
    assert dict(served.context.trace_state) == {"congo": "t61rcWkgMzE", "rojo": "00f067aa0ba902b7"}
    assert spans["work"].context.trace_state == served.context.trace_state  # the agent's own spans carry it on


async def test_an_in_process_task_past_its_deadline_ends_its_span_deadline_exceeded(state: _State) -> None:
    with pytest.raises(AttemptError):
        await transport(state, sleep=5).execute(request(), 0.05, (("traceparent", SAMPLED),))
    served = by_name(state)["sutradhar.v1.AgentService/Execute"]
    assert served.attributes["rpc.response.status_code"] == "DEADLINE_EXCEEDED"
    assert served.attributes["sutradhar.task.success"] is False and served.status.status_code.name == "ERROR"
    assert no_current_span()


async def test_an_unsampled_in_process_task_makes_no_span_and_its_code_stays_unsampled(state: _State) -> None:
    agents = transport(state)
    await agents.execute(request(), 5.0, (("traceparent", UNSAMPLED),))
    assert state.exporter.get_finished_spans() == ()
    (seen,) = agents._instance().seen
    assert seen.trace_id == int(TRACE, 16) and seen.span_id == int(ATTEMPT, 16) and not seen.trace_flags.sampled
    assert no_current_span()


async def test_tracing_off_no_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tracing, "_state", None)
    assert _tracing.task_scope("m", SAMPLED, namespace="", agent="", instance="", task_type="") is None
    agents = InProcessTransport({"class": "test_agent_trace_context:SpanAgent",
                                 "kwargs": {"tracer": trace.get_tracer("off")}})
    assert agent_pb2.ExecuteResponse.FromString(await agents.execute(request(), 5.0)).result.success


async def test_a_streamed_task_is_current_only_while_the_agent_runs_and_ends_with_the_stream(state: _State) -> None:
    stream = transport(state).stream(request(), 5.0, (("traceparent", SAMPLED),))
    events = []
    async for event in stream:
        assert no_current_span()  # the router's code between the agent's steps
        events.append(agent_pb2.ExecuteStreamResponse.FromString(event))
    assert events[-1].result.success and len(events) == 4
    spans = by_name(state)
    served = spans["sutradhar.v1.AgentService/ExecuteStream"]
    assert served.parent.span_id == int(ATTEMPT, 16) and served.attributes["sutradhar.task.success"] is True
    whole = spans["whole stream"]
    assert whole.parent.span_id == served.context.span_id
    assert all(spans[f"chunk {n}"].parent.span_id == whole.context.span_id for n in range(3))
    assert len({s.context.trace_id for s in spans.values()}) == 1


async def test_a_stream_closed_early_ends_its_spans_cancelled(state: _State) -> None:
    stream = transport(state).stream(request(), 5.0, (("traceparent", SAMPLED),))
    await anext(stream)
    assert "sutradhar.v1.AgentService/ExecuteStream" not in by_name(state)  # still streaming
    await stream.aclose()  # as the engine closes it when the caller goes away
    assert no_current_span()
    spans = by_name(state)
    served = spans["sutradhar.v1.AgentService/ExecuteStream"]
    assert served.attributes["rpc.response.status_code"] == "CANCELLED"
    assert served.attributes["sutradhar.task.success"] is False
    assert spans["whole stream"].parent.span_id == served.context.span_id  # the agent's own span ended too


async def test_a_stream_closed_right_after_its_result_ends_its_span_ok(state: _State) -> None:
    stream = transport(state).stream(request(), 5.0, (("traceparent", SAMPLED),))
    while not agent_pb2.ExecuteStreamResponse.FromString(await anext(stream)).HasField("result"):
        pass
    await stream.aclose()
    served = by_name(state)["sutradhar.v1.AgentService/ExecuteStream"]
    assert served.attributes["rpc.response.status_code"] == "OK" and served.attributes["sutradhar.task.success"]


async def test_without_a_traceparent_an_in_process_task_span_is_a_root(state: _State) -> None:
    await transport(state).execute(request(), 5.0)
    spans = by_name(state)
    served = spans["sutradhar.v1.AgentService/Execute"]
    assert served.parent is None and spans["work"].parent.span_id == served.context.span_id
