"""`DirectClient` hands the engine the same `RouteRequest` the router makes of the bytes a
`RouterClient` would have sent, and what it keeps per selector (its bytes, why the router
must take it) follows the view and the namespaces' RateLimits; the answers it decodes carry the
router's metadata, and ones that do not decode are UNAVAILABLE. No network: nothing is sent."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from sutradhar import DirectClient, Task, TaskContext
from sutradhar._convert import task_to_proto
from sutradhar._direct import IN_PROCESS, RATE_LIMITED
from sutradhar._errors import Unavailable
from sutradhar._routing import wire
from sutradhar.v1 import agent_pb2, ratelimit_pb2, registry_pb2, router_pb2

ECHO = registry_pb2.Agent(id="echo", namespace="ns", type="echo", version="1.0.0")


def instance(name: str, runtime: str = "process", endpoint: str = "127.0.0.1:1") -> registry_pb2.Instance:
    return registry_pb2.Instance(id=name, namespace="ns", agent_id="echo", endpoint=endpoint, runtime=runtime,
                                 state=registry_pb2.INSTANCE_STATE_SERVING)


@pytest.fixture
async def client() -> AsyncIterator[DirectClient]:
    direct = DirectClient("127.0.0.1:1", registry="127.0.0.1:1")
    direct.watcher = None  # never watches: the test sets the view
    direct.view.replace([ECHO], [instance("i1"), instance("i2")])
    try:
        yield direct
    finally:
        await direct.close()


TASKS = [
    Task(id="t1", type="answer", payload={"q": "x" * 100, "n": [1, 2.5, None, True]}),
    Task(id="t2", type="", payload=None, context=TaskContext(
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", attributes={"k": "v"})),
    Task(id="t3", type="echo", payload="hi", context=TaskContext(
        deadline=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), session_id="s", user_id="u")),
    Task(id="t4", type="echo", payload=1, context=TaskContext(deadline=datetime.now(UTC) + timedelta(seconds=10))),
]
SELECTORS = [
    router_pb2.Selector(namespace="ns", agent_type="echo"),
    router_pb2.Selector(namespace="ns", agent_type="echo", version_range=">=1.0.0", label_selector="a!=b"),
]
OPTIONS = [router_pb2.RouteOptions(), router_pb2.RouteOptions(strategy="random", max_attempts=2)]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_the_route_is_what_the_router_makes_of_the_routed_request(client: DirectClient, task: Task,
                                                                        stream: bool) -> None:
    for selector in SELECTORS:
        for options in OPTIONS:
            if stream:
                sent = router_pb2.RouterServiceExecuteStreamRequest(selector=selector, options=options)
                task_to_proto(task, sent.task)
                expected = wire.split_route_stream_request(sent.SerializeToString())
                got = client._route(task, selector, options, agent_pb2.ExecuteStreamRequest)
            else:
                sent = router_pb2.RouterServiceExecuteRequest(selector=selector, options=options)
                task_to_proto(task, sent.task)
                expected = wire.split_route_request(sent.SerializeToString())
                got = client._route(task, selector, options, agent_pb2.ExecuteRequest)
            assert not expected.error
            assert got == expected  # deadline to the last bit, task record byte for byte
    assert client.stats().direct == len(SELECTORS) * len(OPTIONS)


async def test_a_kept_refusal_follows_the_view_and_the_rate_limits(client: DirectClient) -> None:
    selector, options = SELECTORS[0], OPTIONS[0]
    task = TASKS[0]
    assert client._route(task, selector, options, agent_pb2.ExecuteRequest) is not None

    # A RateLimit in the namespace: the router holds its buckets, so it takes the calls.
    client._limited.put(ratelimit_pb2.RateLimit(namespace="ns", name="cap"), 0.0)
    assert client._route(task, selector, options, agent_pb2.ExecuteRequest) is None
    client._limited.delete("ns", "cap")
    assert client._route(task, selector, options, agent_pb2.ExecuteRequest) is not None

    # An in-process instance joins the pool (a new view generation): the router runs it.
    client.view.put_instance(instance("i3", runtime="in-process", endpoint="in-process"))
    assert client._route(task, selector, options, agent_pb2.ExecuteRequest) is None
    client.view.delete_instance("ns", "i3")
    assert client._route(task, selector, options, agent_pb2.ExecuteRequest) is not None

    stats = client.stats()
    assert (stats.direct, stats.fallbacks) == (3, {RATE_LIMITED: 1, IN_PROCESS: 1})


async def test_equal_selectors_built_apart_share_one_pool_key(client: DirectClient) -> None:
    first = client._selector_bytes(router_pb2.Selector(namespace="ns", agent_type="echo", capabilities=["a"]))
    again = client._selector_bytes(router_pb2.Selector(namespace="ns", agent_type="echo", capabilities=["a"]))
    other = client._selector_bytes(router_pb2.Selector(namespace="ns", agent_type="echo", capabilities=["b"]))
    assert first == again != other


class _Answers:
    """A transport that answers `data` to every call, unary or streamed (one event)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def execute(self, request: bytes, time_left: float | None, metadata: object = None) -> bytes:
        return self.data

    async def stream(self, request: bytes, time_left: float | None, metadata: object = None) -> AsyncIterator[bytes]:
        yield self.data

    async def close(self, grace: float | None = None) -> None:
        return None


def _answering(client: DirectClient, data: bytes) -> None:
    for backend in client.view.backends.values():
        backend.transport = _Answers(data)
        backend.result_metadata = wire.result_metadata_fields(backend.instance_id, 1)


#: An ExecuteResponse whose result says success and whose data is a Struct cut short: the engine's
#: check of `result.success` leaves the data undecoded, so only the client's decoding sees it.
CORRUPT_DATA = b"\x0a\x09\x08\x01\x12\x05\x2a\x03\x0a\x64\x01"


async def test_the_result_carries_the_instance_and_attempts_the_router_would_set(client: DirectClient) -> None:
    answer = agent_pb2.ExecuteResponse(result=agent_pb2.Result(
        success=True, metadata=agent_pb2.ResultMetadata(agent_id="echo", instance_id="forged", attempts=9)))
    _answering(client, answer.SerializeToString())
    result = await client.execute("echo", {"a": 1}, namespace="ns", task_id="t", timeout=5)
    assert result.success
    assert result.metadata.instance_id in ("i1", "i2")
    assert (result.metadata.attempts, result.metadata.agent_id, result.metadata.task_id) == (1, "echo", "")


async def test_an_answer_whose_data_does_not_parse_is_unavailable_naming_the_instance(client: DirectClient) -> None:
    _answering(client, CORRUPT_DATA)
    with pytest.raises(Unavailable) as caught:
        await client.execute("echo", {"a": 1}, namespace="ns", timeout=5)
    assert re.fullmatch(
        r"instance 'i[12]' \(127\.0\.0\.1:1\) of agent 'echo': answered 11 bytes that are not a valid "
        r"ExecuteResponse \(.*\); does it implement sutradhar\.v1\.AgentService\?", caught.value.message)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


async def test_a_stream_event_that_does_not_parse_is_unavailable_naming_the_instance(client: DirectClient) -> None:
    partial = b"\x12\x05\x2a\x03\x0a\x64\x01"  # ExecuteStreamResponse.partial: a Struct cut short
    _answering(client, partial)
    with pytest.raises(Unavailable) as caught:
        async for _ in client.execute_stream("echo", {"a": 1}, namespace="ns", timeout=5):
            pass
    assert re.fullmatch(
        r"instance 'i[12]' \(127\.0\.0\.1:1\) of agent 'echo': answered 7 bytes that are not a valid "
        r"ExecuteStreamResponse \(.*\); does it implement sutradhar\.v1\.AgentService\? \(after 1 attempt\)",
        caught.value.message), caught.value.message
    assert [b.in_flight for b in client.view.backends.values()] == [0, 0]
