"""The router end to end over real gRPC: a real registry on the session etcd,
a real router fed by its Watch, and agents that misbehave on command.

The routing tests take a `client` fixture and run twice: through the router
(`RouterClient`) and routed by the caller itself (`DirectClient`, issue 12), which
must then have sent none of their calls to the router - so a behaviour change in
one path fails the other.

Every test works in its own namespace. The agents here are small grpc.aio
servers speaking the Agent contract at the byte level, so they can also hang,
fail, answer garbage and record what they saw (cancellation, deadline).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from email.message import Message
from http.server import ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from examples import http_echo_agent
from sutradhar import DirectClient, RegistryClient, RouterClient, TaskContext
from sutradhar._errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    SutradharError,
    Unavailable,
)
from sutradhar._values import to_struct, to_value
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.testing import spawn_agent
from sutradhar.v1 import agent_pb2, registry_pb2, router_pb2, router_pb2_grpc, routing_pb2
from tests.support import SkippingClock, eventually

ROOT = Path(__file__).resolve().parents[2]
SERVING = registry_pb2.INSTANCE_STATE_SERVING
MAX_BYTES = 256 * 1024
FAILED = agent_pb2.Result(success=False, error=agent_pb2.TaskError(code="NOPE", message="failed on purpose"))


def padded(message_cls, size: int) -> bytes:
    """A successful `message_cls` (ExecuteResponse or ExecuteStreamResponse)
    of exactly `size` bytes: its result's data is a string of x."""
    n = size
    while True:
        data = message_cls(result=agent_pb2.Result(success=True, data=to_value("x" * n))).SerializeToString()
        if len(data) <= size:
            assert len(data) == size, (len(data), size)
            return data
        n -= max(1, len(data) - size)


class FakeAgent:
    """An AgentService at the byte level. `mode`: ok, unavailable, hang, garbage,
    fail (a failed Result), abort (streams: INTERNAL after the partials),
    fail-then-abort (streams: a failed Result, then INTERNAL);
    `delay` seconds before answering; `answer_size` (when set) pads a good
    answer (a stream's result event) to exactly that many bytes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode = "ok"
        self.delay = 0.0
        self.answer_size = 0
        self.calls = 0
        self.cancelled = 0
        self.seen_time_left: list[float | None] = []
        self.seen_deadlines: list[float] = []
        self.server = grpc.aio.server()
        handlers = {
            "Execute": grpc.unary_unary_rpc_method_handler(self._execute),
            "ExecuteStream": grpc.unary_stream_rpc_method_handler(self._stream),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("sutradhar.v1.AgentService", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"

    async def _execute(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        self.seen_time_left.append(context.time_remaining())
        task = agent_pb2.ExecuteRequest.FromString(request).task
        self.seen_deadlines.append(task.context.deadline.ToNanoseconds() / 1e9)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.mode == "hang":
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.mode == "unavailable":
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is unavailable on purpose")
        if self.mode == "garbage":
            return b"\xff\xff\xff garbage"
        if self.mode == "fail":
            return agent_pb2.ExecuteResponse(result=FAILED).SerializeToString()
        if self.answer_size:
            return padded(agent_pb2.ExecuteResponse, self.answer_size)
        result = agent_pb2.Result(success=True, data=to_value({"by": self.name, "task_id": task.id}))
        return agent_pb2.ExecuteResponse(result=result).SerializeToString()

    async def _stream(self, request: bytes, context: grpc.aio.ServicerContext):
        self.calls += 1
        try:
            for i in range(5):
                await asyncio.sleep(self.delay)
                yield agent_pb2.ExecuteStreamResponse(partial=to_value(i)).SerializeToString()
            if self.mode == "abort":
                await context.abort(grpc.StatusCode.INTERNAL, f"{self.name} broke mid-stream on purpose")
            if self.mode in ("fail", "fail-then-abort"):
                yield agent_pb2.ExecuteStreamResponse(result=FAILED).SerializeToString()
                if self.mode == "fail-then-abort":
                    await context.abort(grpc.StatusCode.INTERNAL, f"{self.name} broke after its result")
                return
            if self.answer_size:
                yield padded(agent_pb2.ExecuteStreamResponse, self.answer_size)
                return
            yield agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(success=True)).SerializeToString()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


@pytest.fixture(scope="module")
async def mesh(etcd):
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    clock = SkippingClock()  # tests skip past breaker and ejection timers instead of sleeping
    router = RouterServer(RouterConfig(insecure=True,
        port=0, registry=registry.address, etcd=etcd, max_message_bytes=MAX_BYTES,
        load_period=timedelta(milliseconds=200),
    ), clock=clock)
    await router.start()
    assert await router.wait_synced(timedelta(seconds=10))
    agents: list[FakeAgent] = []
    registry_client = RegistryClient(registry.address)
    client = RouterClient(router.address, max_message_bytes=4 * MAX_BYTES)
    direct = DirectClient(router.address, registry=registry.address, max_message_bytes=4 * MAX_BYTES)
    direct.engine.clock = clock  # skips with the router's, for the same breaker and ejection timers
    assert await direct.wait_synced(timeout=10)
    yield {"registry": registry, "router": router, "agents": agents, "reg": registry_client, "client": client,
           "clock": clock, "direct": direct}
    await direct.close()
    await client.close()
    await registry_client.close()
    for a in agents:
        await a.server.stop(0)
    await router.stop(timedelta(seconds=1))
    await registry.stop()


@pytest.fixture(params=["router", "direct"])
async def client(request, mesh):
    """The caller of a parity test: `RouterClient` through the router, or `DirectClient`
    routing itself (which must then have left none of the test's calls to the router)."""
    if request.param == "router":
        yield mesh["client"]
        return
    direct: DirectClient = mesh["direct"]
    before = direct.stats().fallbacks
    yield direct
    assert direct.stats().fallbacks == before, "the direct client sent some of the test's calls to the router"


def view_of(mesh, client) -> object:
    """The view `client`'s calls are routed over: the router's, or the direct client's own."""
    return client.view if isinstance(client, DirectClient) else mesh["router"].view


async def start_agents(mesh, n: int) -> list[FakeAgent]:
    out = []
    for i in range(n):
        agent = FakeAgent(f"fake-{len(mesh['agents'])}-{i}")
        await agent.server.start()
        mesh["agents"].append(agent)
        out.append(agent)
    return out


async def register(mesh, ns: str, agent_id: str, fakes: list[FakeAgent] | None = None, *, type_="echo",
                   version="1.0.0", caps=(), labels=None, routing=None, runtime="process", config=None,
                   endpoints=None, instance_labels=None) -> list[str]:
    reg: RegistryClient = mesh["reg"]
    definition = registry_pb2.Agent(
        id=agent_id, namespace=ns, type=type_, version=version, capabilities=list(caps), labels=labels or {},
        runtime=runtime)
    if config is not None:
        definition.config.CopyFrom(to_struct(config))
    if routing is not None:
        definition.routing.CopyFrom(routing)
    await reg.register_agent(definition)
    endpoints = endpoints or [f.endpoint for f in fakes or []]
    ids = []
    for i, endpoint in enumerate(endpoints):
        iid = f"{agent_id}-{i}"
        await reg.register_instance(registry_pb2.Instance(
            id=iid, namespace=ns, agent_id=agent_id, endpoint=endpoint, runtime=runtime, state=SERVING,
            labels=(instance_labels or {}) if i == 0 else {},
        ), ttl=timedelta(seconds=120))
        ids.append(iid)
    await wait_routable(mesh, ns, ids)
    return ids


async def wait_routable(mesh, ns: str, ids: list[str]) -> None:
    """Until the router and the direct client both see `ids` routable."""
    for view in (mesh["router"].view, mesh["direct"].view):

        def known(view=view) -> bool:
            return set(ids) <= {iid for (n, iid), b in view.backends.items() if n == ns and view.routable(b)}

        await eventually(known, within=10, period=0.02, what=f"{view} never saw {ids} in {ns}")


def stats(mesh, ns: str, client=None) -> dict[str, router_pb2.InstanceStats]:
    """Per-instance stats as the router sees them, or as `client` does when it routes itself."""
    found = client.stats(namespace=ns) if isinstance(client, DirectClient) else mesh["router"].stats(namespace=ns)
    return {s.instance_id: s for s in found.instances}


async def assert_no_in_flight(mesh, ns: str) -> None:
    """In-flight counts return to 0 on both paths (calls cut by the caller's deadline may take
    a moment to unwind)."""
    for client in (mesh["client"], mesh["direct"]):
        await eventually(lambda c=client: all(s.in_flight == 0 for s in stats(mesh, ns, c).values()), within=1.0,
                         period=0.02, what=lambda c=client: f"in-flight calls leaked: {stats(mesh, ns, c)}")


def policy(**kw) -> routing_pb2.RoutingPolicy:
    p = routing_pb2.RoutingPolicy()
    for path, value in kw.items():
        target = p
        parts = path.split("__")
        for part in parts[:-1]:
            target = getattr(target, part)
        field = getattr(target, parts[-1], None)
        if isinstance(value, timedelta):
            field.FromTimedelta(value)
        elif isinstance(value, list):
            field.extend(value)
        else:
            setattr(target, parts[-1], value)
    return p


# -- strategies --------------------------------------------------------------


async def test_round_robin_random_and_least_loaded_distribute(mesh, unique, client):
    fakes = await start_agents(mesh, 3)
    ids = await register(mesh, unique, "echo", fakes)
    seen = Counter()
    for _ in range(30):
        result = await client.execute("echo", {"n": 1}, namespace=unique)
        assert result.success and result.metadata.attempts == 1
        seen[result.metadata.instance_id] += 1
    assert seen == dict.fromkeys(ids, 10)
    rand = Counter()
    for _ in range(60):
        rand[(await client.execute("echo", 1, namespace=unique, strategy="random")).metadata.instance_id] += 1
    assert set(rand) == set(ids) and max(rand.values()) < 45
    # least-loaded: one instance is slow, so it holds in-flight calls and gets fewer new ones
    fakes[0].delay = 0.2
    before = fakes[0].calls

    async def call(k: int):  # spread over 0.3 s, as callers arrive: the fast ones answer meanwhile
        await asyncio.sleep(k * 0.005)
        return await client.execute("echo", 1, namespace=unique, strategy="least-loaded")

    results = await asyncio.gather(*[call(k) for k in range(60)])
    slow = sum(1 for r in results if r.metadata.instance_id == ids[0])
    assert fakes[0].calls - before == slow
    assert slow < 15, Counter(r.metadata.instance_id for r in results)
    # latency (peak-EWMA): the slow one is avoided once measured
    lat = Counter()
    for _ in range(40):
        lat[(await client.execute("echo", 1, namespace=unique, strategy="latency")).metadata.instance_id] += 1
    assert lat[ids[0]] <= 3, lat
    await assert_no_in_flight(mesh, unique)


async def test_weighted_splits_traffic_between_versions(mesh, unique, client):
    v1, v2 = await start_agents(mesh, 2)
    await register(mesh, unique, "echo-v1", [v1], version="1.0.0", routing=policy(strategy="weighted", weight=90))
    await register(mesh, unique, "echo-v2", [v2], version="2.0.0", routing=policy(strategy="weighted", weight=10))
    seen = Counter()
    for _ in range(100):
        seen[(await client.execute("echo", 1, namespace=unique)).metadata.instance_id] += 1
    assert seen == {"echo-v1-0": 90, "echo-v2-0": 10}


async def test_draining_and_not_serving_instances_get_no_new_tasks(mesh, unique, client):
    fakes = await start_agents(mesh, 2)
    ids = await register(mesh, unique, "echo", fakes)
    reg: RegistryClient = mesh["reg"]
    view = view_of(mesh, client)

    async def wait_state(iid: str, routable: bool) -> None:
        await eventually(lambda: view.routable(view.backends[(unique, iid)]) == routable, within=4,
                         period=0.02, what=f"{iid} never became routable={routable}")

    await reg.update_instance_state(ids[0], registry_pb2.INSTANCE_STATE_DRAINING, namespace=unique)
    await wait_state(ids[0], False)
    served = {(await client.execute("echo", 1, namespace=unique)).metadata.instance_id for _ in range(6)}
    assert served == {ids[1]}
    await reg.update_instance_state(ids[1], registry_pb2.INSTANCE_STATE_NOT_SERVING, namespace=unique)
    await wait_state(ids[1], False)
    with pytest.raises(Unavailable, match="1 DRAINING, 1 NOT_SERVING") as caught:
        await client.execute("echo", 1, namespace=unique)
    # The fix for each: enable the drained one, wait for the other's readiness probe.
    assert f"sutradhar enable INSTANCE -n {unique}" in str(caught.value) and repr(ids[0]) in str(caught.value)
    assert "readiness probes" in str(caught.value)
    await reg.update_instance_state(ids[0], SERVING, namespace=unique)
    await wait_state(ids[0], True)
    assert (await client.execute("echo", 1, namespace=unique)).metadata.instance_id == ids[0]


# -- constraints and bad input -------------------------------------------------


async def test_constraints_select_and_explain(mesh, unique, client):
    a, b = await start_agents(mesh, 2)
    await register(mesh, unique, "tutor-v1", [a], type_="tutor", version="1.4.2", caps=["answer"],
                   labels={"tier": "gold"}, instance_labels={"zone": "z1"})
    await register(mesh, unique, "tutor-v2", [b], type_="tutor", version="2.0.1", caps=["answer", "hint"],
                   labels={"tier": "silver"})

    async def served(**kw) -> str:
        return (await client.execute("tutor", 1, namespace=unique, **kw)).metadata.instance_id

    assert await served(version_range=">=2.0.0") == "tutor-v2-0"
    assert await served(version_range="^1.4") == "tutor-v1-0"
    assert await served(version_range=">=1.2 <2") == "tutor-v1-0"
    assert await served(capabilities=["hint"]) == "tutor-v2-0"
    assert await served(labels="tier=gold") == "tutor-v1-0"
    assert await served(labels={"zone": "z1"}) == "tutor-v1-0"
    assert await served(agent_id="tutor-v2") == "tutor-v2-0"

    cases = [
        (dict(version_range="^3"), FailedPrecondition, "version range"),
        (dict(capabilities=["fly"]), FailedPrecondition, "capabilities"),
        (dict(labels="tier=bronze"), FailedPrecondition, "label selector"),
        (dict(agent_id="nobody"), FailedPrecondition, "'nobody'"),
        (dict(version_range="banana"), InvalidArgument, "selector.version_range"),
        (dict(labels="tier in (gold"), InvalidArgument, "selector.label_selector"),
        (dict(strategy="fastest"), InvalidArgument, "options.strategy"),
    ]
    for kwargs, error, words in cases:
        with pytest.raises(error) as info:
            await client.execute("tutor", 1, namespace=unique, **kwargs)
        assert words in info.value.message, (kwargs, info.value.message)
    # only the capability no candidate offers is named ('hint' is tutor-v2's)
    with pytest.raises(FailedPrecondition) as info:
        await client.execute("tutor", 1, namespace=unique, capabilities=["hint", "fly"])
    assert "offers 'fly' (asked for 'hint', 'fly')" in info.value.message, info.value.message
    assert "missing" not in info.value.message and "offers 'hint'" not in info.value.message, info.value.message
    await register(mesh, unique, "tutor-v3", [b], type_="tutor", version="3.0.0", caps=["draw"])
    with pytest.raises(FailedPrecondition) as info:  # each is offered, by different agents
        await client.execute("tutor", 1, namespace=unique, capabilities=["hint", "draw"])
    assert "no single instance offers all of them" in info.value.message, info.value.message
    assert "'tutor-v2' offers 'hint'; 'tutor-v3' offers 'draw'" in info.value.message, info.value.message
    with pytest.raises(FailedPrecondition, match="no agent of type 'ghost'"):
        await client.execute("ghost", 1, namespace=unique)
    with pytest.raises(InvalidArgument, match=r"selector\.agent_type"):
        await client.execute("", 1, namespace=unique)
    if not isinstance(client, DirectClient):  # the router's message limit (a direct caller has its own)
        with pytest.raises(ResourceExhausted):
            await client.execute("tutor", "x" * (MAX_BYTES + 10), namespace=unique)
    await assert_no_in_flight(mesh, unique)


async def test_garbage_and_hanging_agents_get_clear_errors(mesh, unique, client):
    garbage, hang = await start_agents(mesh, 2)
    garbage.mode, hang.mode = "garbage", "hang"
    await register(mesh, unique, "junk", [garbage], type_="junk")
    await register(mesh, unique, "sloth", [hang], type_="sloth")
    with pytest.raises(Unavailable, match="not a valid ExecuteResponse"):
        await client.execute("junk", 1, namespace=unique)
    assert garbage.calls == 1  # the agent may have run it: not retried
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await client.execute("sloth", 1, namespace=unique, timeout=timedelta(milliseconds=300))
    assert time.monotonic() - started < 2
    # RouteOptions.timeout without a gRPC deadline: the router's own message
    request = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(type="t"), selector=router_pb2.Selector(namespace=unique, agent_type="sloth"))
    request.options.timeout.FromTimedelta(timedelta(milliseconds=300))
    async with grpc.aio.insecure_channel(mesh["router"].address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await router_pb2_grpc.RouterServiceStub(channel).Execute(request)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "deadline of 0.300s" in info.value.details() and "sloth-0" in info.value.details()
    await asyncio.sleep(0.1)
    assert hang.cancelled == 2  # the agent calls were cancelled at the deadline
    await assert_no_in_flight(mesh, unique)
    # the router keeps serving
    assert (await mesh["client"].get_stats(namespace=unique)).instances


async def test_an_answer_over_the_limit_only_with_the_routers_metadata_names_instance_and_fix(mesh, unique):
    (fake,) = await start_agents(mesh, 1)
    await register(mesh, unique, "echo", [fake])
    client: RouterClient = mesh["client"]  # accepts 4 x MAX_BYTES: only the router's limit is at stake
    fake.answer_size = MAX_BYTES - 3  # the router receives it; with its metadata it is over the limit
    with pytest.raises(ResourceExhausted) as info:
        await client.execute("echo", 1, namespace=unique)
    message = info.value.message
    assert message.startswith(f"instance 'echo-0' ({fake.endpoint}) of agent 'echo': the answer is "), message
    assert f"bytes with the router's metadata ({MAX_BYTES - 3} bytes from the agent)" in message, message
    assert f"over the router's message limit of {MAX_BYTES} bytes (after 1 attempt)" in message, message
    assert "--max-message-bytes" in message and "Sent message" not in message, message
    with pytest.raises(ResourceExhausted) as info:
        async for _ in client.execute_stream("echo", 1, namespace=unique):
            pass
    assert "'echo-0'" in info.value.message and "the stream's result event is" in info.value.message
    assert "--max-message-bytes" in info.value.message, info.value.message
    # an answer that is over the limit on its own is refused on receipt, naming the instance too
    fake.answer_size = MAX_BYTES + 100
    with pytest.raises(ResourceExhausted, match=r"instance 'echo-0' .*\(after 1 attempt"):
        await client.execute("echo", 1, namespace=unique)
    fake.answer_size = 0
    assert (await client.execute("echo", 1, namespace=unique)).success  # the router keeps serving
    await assert_no_in_flight(mesh, unique)


async def test_corrupt_request_bytes_name_the_public_request_type(mesh, unique):
    (fake,) = await start_agents(mesh, 1)
    await register(mesh, unique, "echo", [fake])
    async with grpc.aio.insecure_channel(mesh["router"].address) as channel:  # no serializers: raw bytes
        methods = [
            ("sutradhar.v1.RouterServiceExecuteRequest", channel.unary_unary("/sutradhar.v1.RouterService/Execute")),
            ("sutradhar.v1.RouterServiceExecuteStreamRequest",
             channel.unary_stream("/sutradhar.v1.RouterService/ExecuteStream")),
        ]
        for name, method in methods:
            for raw, why in [(b"\x0a\xff", "the request bytes are not a valid message"),
                             (b"\x0a\x03\x12\x01\xff", "its task (field 1) is not a valid sutradhar.v1.Task")]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    call = method(raw)
                    if hasattr(call, "__aiter__"):
                        async for _ in call:
                            pass
                    else:
                        await call
                details = info.value.details()
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details
                assert details.startswith(f"request is not a valid {name}: {why}"), details
                assert "views" not in details and "View" not in details, details
    assert fake.calls == 0


async def test_a_task_deadline_in_the_past_is_deadline_exceeded_with_its_time(mesh, unique):
    (fake,) = await start_agents(mesh, 1)
    await register(mesh, unique, "echo", [fake])
    request = router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(type="t"), selector=router_pb2.Selector(namespace=unique, agent_type="echo"))
    request.task.context.deadline.FromJsonString("2000-01-01T00:00:00Z")
    stream_request = router_pb2.RouterServiceExecuteStreamRequest(task=request.task, selector=request.selector)
    async with grpc.aio.insecure_channel(mesh["router"].address) as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        calls = [lambda: stub.Execute(request), lambda: stub.Execute(request, timeout=10)]

        async def stream() -> None:
            async for _ in stub.ExecuteStream(stream_request):
                pass

        for run in [*calls, stream]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await run()
            details = info.value.details()
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, details
            assert details.startswith("task.context.deadline 2000-01-01T00:00:00Z is already in the past (now "), \
                details
            assert "options.timeout" in details and "a deadline in the future" in details, details
    assert fake.calls == 0


# -- resilience ----------------------------------------------------------------


async def test_retries_land_on_another_instance_and_ejection_comes_and_goes(mesh, unique, client):
    bad, good1, good2 = await start_agents(mesh, 3)
    bad.mode = "unavailable"
    ids = await register(mesh, unique, "echo", [bad, good1, good2], routing=policy(
        outlier_detection__consecutive_failures=3,
        outlier_detection__base_ejection_time=timedelta(milliseconds=600),
        circuit_breaker__disabled=True,
    ))
    served = Counter()
    for _ in range(30):
        result = await client.execute("echo", 1, namespace=unique)
        assert result.success
        served[result.metadata.instance_id] += 1
        if result.metadata.attempts > 1:
            assert result.metadata.instance_id != ids[0]
    assert ids[0] not in served
    assert bad.calls == 3  # three consecutive failures, then ejected
    s = stats(mesh, unique, client)[ids[0]]
    assert s.ejected and s.ejections == 1 and s.errors == 3
    mesh["clock"].advance(0.7)  # ejection time over: back in the pool
    bad.mode = "ok"
    for _ in range(9):
        await client.execute("echo", 1, namespace=unique)
    assert bad.calls >= 4 and not stats(mesh, unique, client)[ids[0]].ejected
    await assert_no_in_flight(mesh, unique)


async def test_breaker_opens_half_opens_and_closes(mesh, unique, client):
    (fake,) = await start_agents(mesh, 1)
    fake.mode = "unavailable"
    (iid,) = await register(mesh, unique, "echo", [fake], routing=policy(
        circuit_breaker__consecutive_failures=3, circuit_breaker__timeout=timedelta(milliseconds=500),
        retry__max_attempts=1))
    for _ in range(3):
        with pytest.raises(Unavailable, match="unavailable on purpose"):
            await client.execute("echo", 1, namespace=unique)
    assert stats(mesh, unique, client)[iid].breaker == router_pb2.BREAKER_STATE_OPEN
    with pytest.raises(Unavailable, match="circuit breaker open"):
        await client.execute("echo", 1, namespace=unique)
    assert fake.calls == 3  # refused without a call
    mesh["clock"].advance(0.55)  # past the breaker's open timeout
    assert stats(mesh, unique, client)[iid].breaker == router_pb2.BREAKER_STATE_HALF_OPEN
    with pytest.raises(Unavailable):  # the trial fails: open again
        await client.execute("echo", 1, namespace=unique)
    assert stats(mesh, unique, client)[iid].breaker == router_pb2.BREAKER_STATE_OPEN
    fake.mode = "ok"
    mesh["clock"].advance(0.55)
    assert (await client.execute("echo", 1, namespace=unique)).success  # trial succeeds
    assert stats(mesh, unique, client)[iid].breaker == router_pb2.BREAKER_STATE_CLOSED
    assert fake.calls == 5


async def test_retry_stops_at_the_deadline_and_the_deadline_is_propagated(mesh, unique, client):
    first, second = await start_agents(mesh, 2)
    for f in (first, second):
        f.mode, f.delay = "unavailable", 0.4
    await register(mesh, unique, "echo", [first, second], routing=policy(retry__max_attempts=5))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await client.execute("echo", 1, namespace=unique, timeout=timedelta(milliseconds=600))
    elapsed = time.monotonic() - started
    assert 0.55 < elapsed < 1.5, elapsed
    assert first.calls == 1 and second.calls == 1  # the retry went to the other instance
    later = first if first.seen_time_left[0] < second.seen_time_left[0] else second
    assert later.seen_time_left[0] < 0.3  # it got only what was left of the deadline
    assert later.seen_deadlines[0] - time.time() < 0.5  # and the task's context says so too
    await assert_no_in_flight(mesh, unique)


async def test_hedging_answers_from_the_faster_copy(mesh, unique, client):
    slow, fast = await start_agents(mesh, 2)
    slow.delay = 1.0
    await register(mesh, unique, "echo", [slow, fast], routing=policy(
        hedging__task_types=["lookup"], hedging__delay=timedelta(milliseconds=50)))
    for _ in range(4):
        started = time.monotonic()
        result = await client.execute("echo", 1, namespace=unique, task_type="lookup")
        assert result.metadata.instance_id == "echo-1"
        assert time.monotonic() - started < 0.8
    await asyncio.sleep(0.05)
    assert slow.cancelled == slow.calls  # losing copies are cancelled
    await assert_no_in_flight(mesh, unique)


# -- transports and streaming ----------------------------------------------------


async def test_http_and_in_process_agents_answer_like_grpc_ones(mesh, unique):
    proc = await asyncio.to_thread(
        spawn_agent, [sys.executable, str(ROOT / "examples" / "http_echo_agent.py"), "--port", "0"], cwd=str(ROOT))
    with proc:
        url = "http://" + proc.address
        await register(mesh, unique, "web", type_="web", runtime="http", config={"urls": [url]},
                       endpoints=[url])
        await register(mesh, unique, "local", type_="local", runtime="in-process",
                       config={"class": "examples.echo_agent:EchoAgent"}, endpoints=["in-process"])
        client: RouterClient = mesh["client"]
        for agent_type in ("web", "local"):
            result = await client.execute(agent_type, {"hello": agent_type}, namespace=unique, task_type="t")
            assert result.success, result
            assert result.data["echo"] == {"hello": agent_type}
            assert result.metadata.instance_id == f"{agent_type}-0" and result.metadata.attempts == 1
            failed = await client.execute(agent_type, {"fail": "NOPE"}, namespace=unique)
            assert not failed.success and failed.error.code == "NOPE"
        events = [e async for e in client.execute_stream("local", {"text": "abcdefgh"}, namespace=unique)]
        assert [e.data for e in events if type(e).__name__ == "Partial"] == ["abcd", "efgh"]
        assert events[-1].success
        await assert_no_in_flight(mesh, unique)




async def test_direct_client_leaves_to_the_router_what_it_cannot_route_itself(mesh, unique):
    """HTTP agents are called directly (httpx is installed here); in-process and rate-limited
    agents, and every call before the first sync, go to the router and are counted by reason."""
    from sutradhar.services.common.etcd_server import free_port

    direct: DirectClient = mesh["direct"]
    (fake,) = await start_agents(mesh, 1)
    proc = await asyncio.to_thread(
        spawn_agent, [sys.executable, str(ROOT / "examples" / "http_echo_agent.py"), "--port", "0"], cwd=str(ROOT))
    with proc:
        url = "http://" + proc.address
        await register(mesh, unique, "web", type_="web", runtime="http", config={"urls": [url]}, endpoints=[url])
        await register(mesh, unique, "local", type_="local", runtime="in-process",
                       config={"class": "examples.echo_agent:EchoAgent"}, endpoints=["in-process"])
        await register(mesh, unique, "capped", [fake], type_="capped", routing=policy(
            rate_limit__max_tokens=100, rate_limit__fill_interval=timedelta(seconds=1)))
        before = direct.stats()
        for agent_type in ("web", "local", "capped"):
            result = await direct.execute(agent_type, {"hello": agent_type}, namespace=unique)
            assert result.success and result.metadata.instance_id == f"{agent_type}-0", result
        events = [e async for e in direct.execute_stream("local", {"text": "abcd"}, namespace=unique)]
        assert events[-1].success and events[-1].metadata.instance_id == "local-0"
        after = direct.stats()
    assert after.direct - before.direct == 1  # the HTTP agent
    grew = {reason: n - before.fallbacks.get(reason, 0) for reason, n in after.fallbacks.items()}
    assert {k: v for k, v in grew.items() if v} == {"in-process": 2, "rate-limited": 1}, grew
    assert [s.requests for s in after.instances if s.namespace == unique and s.agent_id == "web"] == [1]
    # a client whose registry cannot be reached never syncs: the router serves it meanwhile
    async with DirectClient(mesh["router"].address, registry=f"127.0.0.1:{free_port()}") as unsynced:
        assert not await unsynced.wait_synced(timeout=0.3)
        result = await unsynced.execute("capped", 1, namespace=unique)
        assert result.success and result.metadata.instance_id == "capped-0"
        assert unsynced.stats().fallbacks == {"not-synced": 1} and unsynced.stats().direct == 0
    await assert_no_in_flight(mesh, unique)


class JsonServer:
    """A tiny real HTTP agent: records each POSTed body (raw bytes) and its headers and
    answers `answer` (status, JSON-able body) to every POST /execute."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[Message] = []
        self.answer: tuple[int, object] = (200, {"success": True, "data": None})
        outer = self

        class Handler(http_echo_agent.Handler):  # its quiet log and JSON `_send`, our own POST

            def do_POST(self) -> None:
                outer.headers.append(self.headers)
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self._send(*outer.answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> JsonServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_http_agents_get_integer_payloads_and_results_carry_task_agent_and_latency(mesh, unique):
    with JsonServer() as bare:
        bare.answer = (200, {"success": True, "data": {"ok": 1}})  # no metadata at all
        await register(mesh, unique, "web-bare", type_="bare", version="2.1.0", runtime="http",
                       config={"urls": [bare.url]}, endpoints=[bare.url])
        client: RouterClient = mesh["client"]
        context = TaskContext(session_id="s-1", request_id="r-1")
        result = await client.execute("bare", {"n": 3, "half": 1.5, "list": [1, 2.0, -7], "big": 2**60},
                                      namespace=unique, task_id="task-42", context=context)
        assert result.success, result
        meta = result.metadata
        assert (meta.task_id, meta.agent_id, meta.agent_version, meta.instance_id, meta.attempts) == (
            "task-42", "web-bare", "2.1.0", "web-bare-0", 1)
        assert meta.latency is not None and meta.latency > timedelta(0)
        raw = bare.bodies[-1].decode()
        body = json.loads(raw)
        assert body["payload"] == {"n": 3, "half": 1.5, "list": [1, 2, -7], "big": 2.0**60}
        sent = raw.split('"context"')[0]  # id, type and payload as written (the deadline may hold "2.0")
        assert type(body["payload"]["n"]) is int and "3.0" not in sent and "2.0" not in sent
        assert type(body["payload"]["big"]) is float  # past 2**53 a double is not an exact integer
        assert body["id"] == "task-42"
        assert body["context"]["sessionId"] == "s-1" and body["context"]["requestId"] == "r-1"
        assert "deadline" in body["context"]
    # What the agent reports itself is kept (examples/http_echo_agent.py sends its own metadata).
    proc = await asyncio.to_thread(
        spawn_agent, [sys.executable, str(ROOT / "examples" / "http_echo_agent.py"), "--port", "0"], cwd=str(ROOT))
    with proc:
        url = "http://" + proc.address
        await register(mesh, unique, "web-echo", type_="web", version="9.9.9", runtime="http",
                       config={"urls": [url]}, endpoints=[url])
        result = await client.execute("web", {"n": 3}, namespace=unique, task_id="task-7")
        assert result.success and result.data["echo"] == {"n": 3}
        assert type(result.data["echo"]["n"]) is int
        meta = result.metadata
        assert (meta.task_id, meta.agent_id, meta.agent_version, meta.instance_id) == (
            "task-7", "http-echo", "1.0.0", "web-echo-0")
        assert meta.latency is not None and timedelta(0) < meta.latency < timedelta(seconds=5)
    await assert_no_in_flight(mesh, unique)


async def test_http_answers_that_are_not_the_result_form_get_the_specific_error(mesh, unique):
    with JsonServer() as bare:
        await register(mesh, unique, "web-odd", type_="odd", runtime="http", config={"urls": [bare.url]},
                       endpoints=[bare.url])
        client: RouterClient = mesh["client"]
        # JSON that is not the result form gets the specific message, pointing at the docs.
        bare.answer = (200, {"ok": True})
        with pytest.raises(Unavailable, match=r"JSON without a boolean 'success' field.*docs/router\.md"):
            await client.execute("odd", 1, namespace=unique)
        bare.answer = (200, [1, 2])
        with pytest.raises(Unavailable, match="JSON without a boolean 'success' field"):
            await client.execute("odd", 1, namespace=unique)
        bare.answer = (403, {"error": "no"})  # no result body: the status code decides
        with pytest.raises(SutradharError, match="HTTP 403") as caught:
            await client.execute("odd", 1, namespace=unique)
        assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
        bare.answer = (500, {"success": False, "error": {"code": "BOOM", "message": "x"}})  # a result body wins
        failed = await client.execute("odd", 1, namespace=unique)
        assert not failed.success and failed.error.code == "BOOM" and failed.metadata.agent_id == "web-odd"
    await assert_no_in_flight(mesh, unique)


async def test_in_process_results_name_the_agent_definition_unary_and_streamed(mesh, unique):
    await register(mesh, unique, "echo-inproc", type_="local", version="3.2.1", runtime="in-process",
                   config={"class": "examples.echo_agent:EchoAgent"}, endpoints=["in-process"])
    client: RouterClient = mesh["client"]
    result = await client.execute("local", {"n": 3}, namespace=unique, task_id="t-unary")
    events = [e async for e in client.execute_stream("local", {"text": "abcdefgh"}, namespace=unique,
                                                     task_id="t-stream")]
    final = events[-1]
    assert result.success and final.success
    for meta, task_id in ((result.metadata, "t-unary"), (final.metadata, "t-stream")):
        assert (meta.task_id, meta.agent_id, meta.agent_version, meta.instance_id, meta.attempts) == (
            task_id, "echo-inproc", "3.2.1", "echo-inproc-0", 1)
        assert meta.latency is not None and meta.latency > timedelta(0)
    await assert_no_in_flight(mesh, unique)


async def test_an_in_process_class_the_router_cannot_import_says_how_to_fix_it(mesh, unique):
    await register(mesh, unique, "mine", type_="mine", runtime="in-process",
                   config={"class": "only_in_my_cwd_xyz:MyAgent"}, endpoints=["in-process"])
    client: RouterClient = mesh["client"]
    with pytest.raises(FailedPrecondition) as caught:
        await client.execute("mine", 1, namespace=unique)
    text = str(caught.value)
    assert "ModuleNotFoundError" in text and "only_in_my_cwd_xyz" in text
    assert "install" in text and "PYTHONPATH before `sutradhar up`" in text
    await register(mesh, unique, "typo", type_="typo", runtime="in-process",
                   config={"class": "examples.echo_agent:EchoAgnet"}, endpoints=["in-process"])
    with pytest.raises(FailedPrecondition, match="check the class name"):
        await client.execute("typo", 1, namespace=unique)


async def test_stream_passes_events_through_and_cancel_reaches_the_agent(mesh, unique, client):
    (fake,) = await start_agents(mesh, 1)
    fake.delay = 0.1
    await register(mesh, unique, "echo", [fake])
    started = time.monotonic()
    arrivals = []
    events = []
    async for event in client.execute_stream("echo", 1, namespace=unique):
        arrivals.append(time.monotonic() - started)
        events.append(event)
    assert len(events) == 6 and events[-1].success and events[-1].metadata.instance_id == "echo-0"
    assert arrivals[-1] - arrivals[0] > 0.3  # events arrive as they come (0.1 s apart), not all at the end
    fake.delay = 1.0

    async def consume() -> None:
        async for _ in client.execute_stream("echo", 1, namespace=unique):
            pass

    caller = asyncio.ensure_future(consume())
    await asyncio.sleep(0.3)
    caller.cancel()  # the caller goes away mid-stream
    await eventually(lambda: fake.cancelled, within=1.0, period=0.02, what="the agent's stream cancelled")
    assert fake.cancelled == 1
    if not isinstance(client, DirectClient):  # a bare gRPC caller cancelling its call to the router
        async with grpc.aio.insecure_channel(mesh["router"].address) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            call = stub.ExecuteStream(router_pb2.RouterServiceExecuteStreamRequest(
                task=agent_pb2.Task(type="t"), selector=router_pb2.Selector(namespace=unique, agent_type="echo")))
            await asyncio.sleep(0.3)
            call.cancel()
            await eventually(lambda: fake.cancelled == 2, within=1.0, period=0.02, what="the agent's stream cancelled")
    await assert_no_in_flight(mesh, unique)


async def test_failed_streams_count_as_errors_once_like_unary_failures(mesh, unique, client):
    (fake,) = await start_agents(mesh, 1)
    await register(mesh, unique, "echo", [fake])
    fake.mode = "fail"
    result = await client.execute("echo", 1, namespace=unique, max_attempts=1)
    assert not result.success and result.error.code == "NOPE"
    assert (stats(mesh, unique, client)["echo-0"].requests, stats(mesh, unique, client)["echo-0"].errors) == (1, 1)
    events = [e async for e in client.execute_stream("echo", 1, namespace=unique, max_attempts=1)]
    assert not events[-1].success and events[-1].error.code == "NOPE"
    assert (stats(mesh, unique, client)["echo-0"].requests, stats(mesh, unique, client)["echo-0"].errors) == (2, 2)
    fake.mode = "ok"  # a good stream adds no error
    events = [e async for e in client.execute_stream("echo", 1, namespace=unique, max_attempts=1)]
    assert events[-1].success
    assert (stats(mesh, unique, client)["echo-0"].requests, stats(mesh, unique, client)["echo-0"].errors) == (3, 2)
    for mode in ("abort", "fail-then-abort"):  # a broken call counts once, failed result or not
        fake.mode = mode
        with pytest.raises(SutradharError):
            async for _ in client.execute_stream("echo", 1, namespace=unique, max_attempts=1):
                pass
    assert (stats(mesh, unique, client)["echo-0"].requests, stats(mesh, unique, client)["echo-0"].errors) == (5, 4)
    await assert_no_in_flight(mesh, unique)


# -- stats, load, CLI --------------------------------------------------------------


async def test_load_key_of_a_removed_instance_is_deleted(mesh, unique, store):
    fakes = await start_agents(mesh, 2)
    ids = await register(mesh, unique, "echo", fakes)
    client: RouterClient = mesh["client"]
    await asyncio.gather(*[client.execute("echo", 1, namespace=unique) for _ in range(10)])
    prefix = f"/sutradhar/v1/load/{unique}/"

    async def published() -> set[str]:
        kvs, _ = await store.list(prefix)
        return {kv.key[len(prefix):].split("/")[0] for kv in kvs}

    async def published_for(expected: set[str]) -> bool:
        return await published() == expected

    await eventually(lambda: published_for(set(ids)), within=2.5, what="load keys of both instances")
    assert await published() == set(ids)
    await mesh["reg"].deregister_instance(ids[0], namespace=unique)
    await eventually(lambda: published_for({ids[1]}), within=2.5, what="the removed instance's load key deleted")
    assert await published() == {ids[1]}  # load period 0.2 s


async def test_direct_calls_are_reported_where_the_routers_load_goes(mesh, unique, store):
    """A DirectClient's calls reach the load records the autoscaler sums (beside the routers'),
    under the registry's lease for the client; ReportLoad refuses bad or too frequent reports."""
    fakes = await start_agents(mesh, 2)
    ids = await register(mesh, unique, "echo", fakes)
    direct: DirectClient = mesh["direct"]
    for fake in fakes:
        fake.delay = 0.05
    await asyncio.gather(*[direct.execute("echo", 1, namespace=unique) for _ in range(20)])
    prefix = f"/sutradhar/v1/load/{unique}/"
    mine = f"client-{direct.reporter_id}"

    async def reported() -> dict[str, dict]:
        kvs, _ = await store.list(prefix)
        return {kv.key[len(prefix):].split("/")[0]: (json.loads(kv.value), kv.lease) for kv in kvs
                if kv.key.endswith("/" + mine)}

    found = await eventually(lambda: _all_of(reported(), ids), within=3, what="the direct client's load records")
    for iid in ids:
        value, lease = found[iid]
        assert value["agent_id"] == "echo" and value["rps"] > 0 and value["in_flight"] > 0, value
        assert lease, "load records of a direct client are leased"
    assert await _router_keys(store, prefix) == []  # the router saw none of these calls: only the report counts
    assert direct.stats().load_reports >= 1 and not direct.stats().load_report_error
    reg: RegistryClient = mesh["reg"]
    load = registry_pb2.InstanceLoad(instance_id=ids[0], agent_id="echo", in_flight=1, rps=2)
    assert await reg.report_load("probe-reporter", [load], namespace=unique) == timedelta(seconds=10)
    with pytest.raises(ResourceExhausted, match=r"at most every 0\.5s"):
        await reg.report_load("probe-reporter", [load], namespace=unique)
    bad = registry_pb2.InstanceLoad(instance_id=ids[0], agent_id="echo", in_flight=-1)
    with pytest.raises(InvalidArgument, match=r"loads\[0\]\.in_flight: must be a finite number >= 0"):
        await reg.report_load("other-reporter", [bad], namespace=unique)
    with pytest.raises(InvalidArgument, match="reporter_id"):
        await reg.report_load("Not A Label", [load], namespace=unique)


async def _all_of(found, ids: list[str]):
    """`found` (awaited) when it holds every id, else None (for `eventually`)."""
    got = await found
    return got if set(ids) <= set(got) else None


async def _router_keys(store, prefix: str) -> list[str]:
    kvs, _ = await store.list(prefix)
    return [kv.key for kv in kvs if "/client-" not in kv.key]


async def test_load_is_published_and_cli_shows_stats(mesh, unique, store):
    (fake,) = await start_agents(mesh, 1)
    fake.delay = 0.05
    (iid,) = await register(mesh, unique, "echo", [fake])
    client: RouterClient = mesh["client"]
    await asyncio.gather(*[client.execute("echo", 1, namespace=unique) for _ in range(20)])
    key = f"/sutradhar/v1/load/{unique}/{iid}/{mesh['router'].router_id}"
    kv = await eventually(lambda: store.get(key), within=2.5, what=f"load key {key}")
    assert kv is not None
    load = json.loads(kv.value)
    assert load["agent_id"] == "echo" and load["rps"] > 0 and load["in_flight"] > 0
    assert abs(load["updated"] - time.time()) < 5
    env = {**os.environ, "SUTRADHAR_ROUTER": mesh["router"].address}
    cli = [sys.executable, "-m", "sutradhar.cli.main"]
    out = await asyncio.to_thread(subprocess.run, [*cli, "stats", "-o", "json"], env=env, capture_output=True,
                                  text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    mine = [s for s in json.loads(out.stdout)["instances"] if (s["namespace"], s["instance_id"]) == (unique, iid)]
    assert mine[0]["requests"] == 20 and mine[0]["breaker"] == "CLOSED", (mine, fake.calls)
    out = await asyncio.to_thread(
        subprocess.run, [*cli, "exec", "echo", "--namespace", unique, "--task", "t", "--payload", '{"a": 1}',
                         "-o", "json"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["success"] and result["data"]["by"] == fake.name and result["metadata"]["instance_id"] == iid
    out = await asyncio.to_thread(
        subprocess.run, [*cli, "exec", "ghost", "--namespace", unique], env=env, capture_output=True, text=True,
        timeout=30)
    assert out.returncode == 1 and "FAILED_PRECONDITION" in out.stderr and "ghost" in out.stderr


async def test_call_in_flight_on_a_deregistered_instance_still_completes(mesh, unique):
    [fake] = await start_agents(mesh, 1)
    fake.delay = 0.6
    [iid] = await register(mesh, unique, "echo", [fake])
    client: RouterClient = mesh["client"]
    call = asyncio.ensure_future(client.execute("echo", {"n": 1}, namespace=unique, timeout=timedelta(seconds=5)))
    await eventually(lambda: fake.calls, within=1.0, period=0.01, what="the call reached the agent")
    await mesh["reg"].deregister_instance(iid, namespace=unique)
    # the router's view drops the instance while the call runs
    await eventually(lambda: (unique, iid) not in mesh["router"].view.backends, within=2.0, period=0.01,
                     what=f"the router's view dropped {iid}")
    assert (unique, iid) not in mesh["router"].view.backends
    result = await call
    assert result.success and result.data["by"] == fake.name
