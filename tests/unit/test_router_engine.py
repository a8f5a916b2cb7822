"""The engine's retry, budget, deadline, ejection-cap and accounting rules, and
its refusal of malformed selectors and options before selection, driven
through fake transports (no network)."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from sutradhar._errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    SutradharError,
    Unavailable,
)
from sutradhar._route_engine import Engine
from sutradhar._route_transports import AttemptError
from sutradhar._routing import wire
from sutradhar._routing.view import View
from sutradhar._values import to_value
from sutradhar.v1 import agent_pb2, registry_pb2, router_pb2, routing_pb2

OK = agent_pb2.ExecuteResponse(result=agent_pb2.Result(success=True, data=to_value("hi"))).SerializeToString()


class FakeTransport:
    """Answers from a script: "ok", "garbage", "hang", or a grpc.StatusCode to fail with."""

    def __init__(self, outcome: object = "ok") -> None:
        self.outcome = outcome
        self.calls = 0
        self.requests: list[bytes] = []

    async def execute(self, request: bytes, time_left: float | None) -> bytes:
        self.calls += 1
        self.requests.append(request)
        if self.outcome == "hang":
            await asyncio.sleep(3600)
        if self.outcome == "garbage":
            return b"\xff\xff"
        if isinstance(self.outcome, grpc.StatusCode):
            raise AttemptError(self.outcome, f"failed with {self.outcome.name}")
        if isinstance(self.outcome, bytes):
            return self.outcome
        return OK

    async def close(self) -> None:
        pass


def make(n: int, policy: routing_pb2.RoutingPolicy | None = None, outcomes=None) -> tuple[Engine, list]:
    view = View()
    agent = registry_pb2.Agent(id="echo", namespace="default", type="echo", version="1.0.0")
    if policy is not None:
        agent.routing.CopyFrom(policy)
    view.replace([agent], [
        registry_pb2.Instance(id=f"i{k}", namespace="default", agent_id="echo", endpoint=f"127.0.0.1:{k + 1}",
                              state=registry_pb2.INSTANCE_STATE_SERVING) for k in range(n)])
    engine = Engine(view, max_message_bytes=64 * 1024, rng=random.Random(0))
    fakes = []
    for k, backend in enumerate(sorted(view.backends.values(), key=lambda b: b.instance_id)):
        fake = FakeTransport((outcomes or {}).get(k, "ok"))
        backend.transport = fake
        backend.result_metadata = wire.result_metadata_fields(backend.instance_id, 1)
        fakes.append(fake)
    return engine, fakes


def request(payload: object = 1, *, strategy: str = "", max_attempts: int = 0, task_id: str = "t1",
            timeout: float = 0.0) -> wire.RouteRequest:
    req = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(id=task_id, type="echo", payload=to_value(payload)),
        selector=router_pb2.Selector(agent_type="echo"),
        options=router_pb2.RouteOptions(strategy=strategy, max_attempts=max_attempts),
    )
    if timeout:
        req.options.timeout.FromNanoseconds(int(timeout * 1e9))
    return wire.split_route_request(req.SerializeToString())


def result(data: bytes) -> agent_pb2.Result:
    return router_pb2.RouterServiceExecuteResponse.FromString(data).result


def in_flight(engine: Engine) -> list[int]:
    return [b.in_flight for b in engine.view.backends.values()]


def retry_policy(**kw) -> routing_pb2.RoutingPolicy:
    p = routing_pb2.RoutingPolicy()
    p.retry.initial_backoff.FromMilliseconds(1)
    for k, v in kw.items():
        setattr(p.retry, k, v)
    return p


async def test_retry_goes_to_another_instance_and_reports_attempts():
    engine, fakes = make(3, retry_policy(), {0: grpc.StatusCode.UNAVAILABLE})
    out = result(await engine.execute(request(), 5.0))
    assert out.success and out.metadata.attempts == 2 and out.metadata.instance_id != "i0"
    assert fakes[0].calls == 1 and fakes[1].calls + fakes[2].calls == 1
    assert in_flight(engine) == [0, 0, 0]


async def test_patches_reach_the_agent():
    engine, fakes = make(1)
    out = result(await engine.execute(request(task_id=""), 2.0))
    sent = agent_pb2.ExecuteRequest.FromString(fakes[0].requests[0]).task
    assert sent.id and out.metadata.task_id == sent.id  # generated, and reported back
    assert sent.context.HasField("deadline") and sent.payload.number_value == 1


async def test_a_task_deadline_that_is_the_calls_is_sent_as_written_and_a_later_one_is_patched():
    import time

    engine, fakes = make(1)
    own = time.time() + 3.0
    req = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(id="t1", type="echo", payload=to_value(1)), selector=router_pb2.Selector(agent_type="echo"))
    req.task.context.deadline.seconds = int(own)
    req.task.context.deadline.nanos = int((own - int(own)) * 1e9) // 1000 * 1000  # microseconds, as the SDK writes
    routed = wire.split_route_request(req.SerializeToString())
    # The gRPC deadline trails the task's (as the SDK's clients set it): the task's deadline binds, nothing is patched.
    await engine.execute(routed, routed.task_deadline - time.time() + 1.0)
    assert fakes[0].requests[-1] == routed.task_record
    # A shorter gRPC deadline binds: the task's deadline is patched to it.
    await engine.execute(wire.split_route_request(req.SerializeToString()), 1.0)
    sent = agent_pb2.ExecuteRequest.FromString(fakes[0].requests[-1]).task
    written = sent.context.deadline.seconds + sent.context.deadline.nanos / 1e9
    assert written < routed.task_deadline - 1.5 and sent.id == "t1" and sent.payload.number_value == 1


async def test_non_retryable_codes_and_garbage_are_not_retried():
    engine, fakes = make(3, retry_policy(), {0: grpc.StatusCode.INVALID_ARGUMENT})
    with pytest.raises(InvalidArgument, match="after 1 attempt"):
        await engine.execute(request(), 5.0)
    engine, fakes = make(3, retry_policy(), {0: "garbage"})
    with pytest.raises(Unavailable) as caught:
        await engine.execute(request(), 5.0)
    # The instance is named once, then what it answered.
    assert caught.value.message.startswith(
        "instance 'i0' (127.0.0.1:1) of agent 'echo': answered 2 bytes that are not a valid ExecuteResponse ("), \
        caught.value.message
    assert [f.calls for f in fakes] == [1, 0, 0]


async def test_max_attempts_and_no_other_instance():
    engine, fakes = make(3, retry_policy(max_attempts=2), dict.fromkeys(range(3), grpc.StatusCode.UNAVAILABLE))
    with pytest.raises(Unavailable, match="max attempts 2 reached"):
        await engine.execute(request(), 5.0)
    engine, fakes = make(2, retry_policy(max_attempts=5), dict.fromkeys(range(2), grpc.StatusCode.UNAVAILABLE))
    with pytest.raises(Unavailable, match="no other instance"):
        await engine.execute(request(), 5.0)
    assert [f.calls for f in fakes] == [1, 1]  # never twice on the same instance


async def test_retry_budget_caps_retries():
    policy = retry_policy(max_attempts=2, min_retries_per_second=1, budget_percent=1.0)
    policy.outlier_detection.disabled = True
    policy.circuit_breaker.disabled = True
    engine, fakes = make(3, policy, dict.fromkeys(range(3), grpc.StatusCode.UNAVAILABLE))
    messages = []
    for _ in range(15):
        with pytest.raises(Unavailable) as info:
            await engine.execute(request(), 5.0)
        messages.append(info.value.message)
    # the floor allows 1 retry/s over the 10 s window: 10 retries, then the budget says no
    assert sum("retry budget exhausted" in m for m in messages) == 5
    assert sum(f.calls for f in fakes) == 15 + 10


async def test_no_retry_when_the_backoff_would_pass_the_deadline():
    policy = retry_policy()
    policy.retry.initial_backoff.FromSeconds(10)
    policy.retry.max_backoff.FromSeconds(10)
    engine, _ = make(2, policy, {0: grpc.StatusCode.UNAVAILABLE})
    engine.rng = random.Random(1)  # jitter > 0.1 of 10 s
    with pytest.raises(Unavailable, match="no time left before the deadline"):
        await engine.execute(request(), 0.5)


async def test_deadline_cancels_the_attempt_and_in_flight_returns_to_zero():
    engine, _ = make(1, None, {0: "hang"})
    task = asyncio.ensure_future(engine.execute(request(), 30.0))
    await asyncio.sleep(0.05)
    assert in_flight(engine) == [1]
    task.cancel()  # the caller went away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert in_flight(engine) == [0]
    backend = next(iter(engine.view.backends.values()))
    assert backend.errors == 0 and backend.outlier.ejections == 0  # a cancel is not the instance's fault


async def test_ejection_never_exceeds_the_pool_cap():
    policy = routing_pb2.RoutingPolicy()
    policy.outlier_detection.consecutive_failures = 1
    policy.circuit_breaker.disabled = True
    policy.retry.max_attempts = 1
    engine, _ = make(3, policy, dict.fromkeys(range(3), grpc.StatusCode.UNAVAILABLE))
    for _ in range(9):
        with pytest.raises(SutradharError):
            await engine.execute(request(), 5.0)
    ejected = [b.instance_id for b in engine.view.backends.values() if b.outlier.ejected(engine.clock())]
    assert len(ejected) == 1  # 10 % of 3 rounds to 0, but one of a pool of two or more may always go


async def test_bad_options_and_oversized_tasks():
    engine, _ = make(1)
    with pytest.raises(InvalidArgument, match=r"options\.strategy"):
        await engine.execute(request(strategy="fastest"), 5.0)
    with pytest.raises(InvalidArgument, match=r"options\.max_attempts"):
        await engine.execute(request(max_attempts=-1), 5.0)
    with pytest.raises(ResourceExhausted, match="max-message-bytes"):
        await engine.execute(request("x" * 70_000), 5.0)
    with pytest.raises(InvalidArgument, match=r"not a valid sutradhar\.v1\.RouterServiceExecuteRequest") as info:
        await engine.execute(wire.split_route_request(b"\x0a\xff"), 5.0)
    assert info.value.field == "request"
    assert in_flight(engine) == [0]


def sized_answer(size: int) -> bytes:
    """A valid ExecuteResponse of exactly `size` bytes (a padded string result)."""
    n = size - len(OK)
    while True:
        data = agent_pb2.ExecuteResponse(result=agent_pb2.Result(
            success=True, data=to_value("x" * n))).SerializeToString()
        if len(data) <= size:
            assert len(data) == size, (len(data), size)
            return data
        n -= 1


async def test_answer_over_the_limit_once_the_metadata_is_added_names_the_instance():
    engine, fakes = make(1)
    limit = engine.max_message_bytes
    tail = len(wire.set_result_metadata(OK, wire.result_metadata_fields("i0", 1))) - len(OK)
    fakes[0].outcome = sized_answer(limit - tail)  # fits with the metadata, exactly
    assert len(await engine.execute(request(), 5.0)) == limit
    fakes[0].outcome = sized_answer(limit - 3)  # the agent's answer fits; with the metadata it does not
    with pytest.raises(ResourceExhausted) as info:
        await engine.execute(request(), 5.0)
    message = info.value.message
    assert message.startswith("instance 'i0' (127.0.0.1:1) of agent 'echo': the answer is "), message
    assert f"is {limit - 3 + tail} bytes with the router's metadata ({limit - 3} bytes from the agent)" in message
    assert f"limit of {limit} bytes (after 1 attempt)" in message and "--max-message-bytes" in message
    assert in_flight(engine) == [0]


async def test_hedged_answer_over_the_limit_once_the_metadata_is_added_names_the_instance():
    policy = routing_pb2.RoutingPolicy()
    policy.hedging.task_types.append("echo")
    engine, fakes = make(2, policy)
    for fake in fakes:
        fake.outcome = sized_answer(engine.max_message_bytes - 3)
    with pytest.raises(ResourceExhausted, match=r"instance 'i\d' .* the answer is \d+ bytes with the router's"):
        await engine.execute(request(), 5.0)


async def test_a_task_deadline_in_the_past_is_deadline_exceeded_naming_it():
    engine, fakes = make(1)
    req = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(id="t1", type="echo"), selector=router_pb2.Selector(agent_type="echo"))
    req.task.context.deadline.FromSeconds(946684800)  # 2000-01-01
    for run in (engine.execute(wire.split_route_request(req.SerializeToString()), None),
                anext(engine.execute_stream(wire.split_route_stream_request(req.SerializeToString()), None))):
        with pytest.raises(DeadlineExceeded) as info:
            await run
        message = info.value.message
        assert message.startswith("task.context.deadline 2000-01-01T00:00:00Z is already in the past"), message
        assert "options.timeout" in message and "-8" not in message, message
    req.task.context.deadline.seconds = -10**12  # before year 1 (invalid, but on the wire): no ISO form
    with pytest.raises(DeadlineExceeded, match=r"task\.context\.deadline -1000000000000\.000 \(unix seconds\)"):
        await engine.execute(wire.split_route_request(req.SerializeToString()), None)
    assert fakes[0].calls == 0 and in_flight(engine) == [0]


def _route(selector: router_pb2.Selector, options: router_pb2.RouteOptions | None = None) -> wire.RouteRequest:
    req = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(id="t", type="echo"), selector=selector, options=options
    )
    return wire.split_route_request(req.SerializeToString())


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        (router_pb2.Selector(agent_type="echo", namespace="a/b"), "selector.namespace"),
        (router_pb2.Selector(agent_type="echo", namespace="*"), "selector.namespace"),
        (router_pb2.Selector(agent_type="../x"), "selector.agent_type"),
        (router_pb2.Selector(agent_type="e" * 10_000), "selector.agent_type"),
        (router_pb2.Selector(agent_id="A/B"), "selector.agent_id"),
        (router_pb2.Selector(agent_type="echo", capabilities=["a b"]), "selector.capabilities"),
    ],
)
async def test_malformed_selector_is_invalid_argument(selector: router_pb2.Selector, field: str) -> None:
    # These were FAILED_PRECONDITION ("no agent of type '../x' is registered").
    with pytest.raises(InvalidArgument) as info:
        await make(0)[0].execute(_route(selector), 5.0)
    assert info.value.message.startswith(f"{field}:")


async def test_bad_options_are_refused_before_selection() -> None:
    # With no live instance these answered UNAVAILABLE, and a negative timeout
    # was ignored whenever the caller also set a gRPC deadline.
    engine, _ = make(0)
    sel = router_pb2.Selector(agent_type="echo")
    with pytest.raises(InvalidArgument, match=r"options\.strategy"):
        await engine.execute(_route(sel, router_pb2.RouteOptions(strategy="bogus")), 5.0)
    with pytest.raises(InvalidArgument, match=r"options\.max_attempts"):
        await engine.execute(_route(sel, router_pb2.RouteOptions(max_attempts=-1)), 5.0)
    negative = router_pb2.RouteOptions()
    negative.timeout.seconds = -5
    for deadline in (5.0, None):
        with pytest.raises(InvalidArgument, match=r"options\.timeout"):
            await engine.execute(_route(sel, negative), deadline)
    with pytest.raises(FailedPrecondition):  # a well-formed request for an unknown type
        await engine.execute(_route(router_pb2.Selector(agent_type="other")), 5.0)


class StreamingFake(FakeTransport):
    """Streams a partial, then `final` as the result event."""

    def __init__(self, final: bytes) -> None:
        super().__init__()
        self.final = final

    async def stream(self, request: bytes, time_left: float | None, metadata: object = None):
        self.calls += 1
        yield agent_pb2.ExecuteStreamResponse(partial=to_value(1)).SerializeToString()
        yield self.final


async def test_a_stream_result_event_the_splice_cannot_walk_is_unavailable_naming_the_instance():
    engine, _ = make(1)
    backend = next(iter(engine.view.backends.values()))
    req = router_pb2.RouterServiceExecuteStreamRequest(
        task=agent_pb2.Task(id="t1", type="echo"), selector=router_pb2.Selector(agent_type="echo"))
    good = agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(success=True)).SerializeToString()
    backend.transport = StreamingFake(good)
    events = [e async for e in engine.execute_stream(wire.split_route_stream_request(req.SerializeToString()), 5.0)]
    final = router_pb2.RouterServiceExecuteStreamResponse.FromString(events[-1])
    assert final.result.success and final.result.metadata.instance_id == "i0"
    backend.transport = StreamingFake(b"\x1a\x05\xff")  # a result event cut short
    seen: list[bytes] = []
    with pytest.raises(Unavailable) as info:
        async for event in engine.execute_stream(wire.split_route_stream_request(req.SerializeToString()), 5.0):
            seen.append(event)
    assert len(seen) == 1  # the partial went out; the broken result did not
    message = info.value.message
    assert message.startswith("instance 'i0' (127.0.0.1:1) of agent 'echo': answered 3 bytes that are not a valid "
                              "ExecuteStreamResponse ("), message
    assert "; does it implement sutradhar.v1.AgentService?" in message
    assert "(after 1 attempt)" in message
    assert in_flight(engine) == [0]
