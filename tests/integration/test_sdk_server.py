"""An agent served in-process on a free port, driven over real gRPC."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from examples.echo_agent import EchoAgent
from sutradhar import (
    Agent,
    AgentClient,
    AgentServer,
    DeadlineExceeded,
    InvalidArgument,
    Partial,
    Progress,
    Result,
    Task,
    Unavailable,
)
from sutradhar.testing import run_agent
from sutradhar.v1 import agent_pb2
from tests.support import eventually, rpc_status


class Probe(Agent):
    """Records what happened to its tasks, for assertions."""

    id = "probe"
    type = "probe"
    version = "2.0.0"
    capabilities = ("probe",)

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.streaming = asyncio.Event()
        self.healthy = True

    async def execute(self, task: Task) -> Any:
        try:
            await asyncio.sleep(float(task.payload or 0))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "slept"

    async def stream(self, task: Task) -> AsyncIterator[Any]:
        try:
            for i in range(1000):
                self.streaming.set()
                yield Progress(f"step {i}", -1)
                await asyncio.sleep(0.05)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.set()
            raise

    async def check_health(self) -> bool:
        return self.healthy

    def custom_metrics(self) -> dict[str, float]:
        return {"answer": 42}


async def health_status(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return response.status


async def _health_is(address: str, status: int) -> bool:
    return await health_status(address) == status


async def _idle(client: AgentClient) -> bool:
    return (await client.metrics()).in_flight == 0


async def test_execute_success_failure_and_crash_keep_the_server_up() -> None:
    async with run_agent(EchoAgent()) as address, AgentClient(address) as client:
        ok = await client.execute({"text": "hi"}, task_type="say", task_id="task-1")
        assert ok.success
        assert ok.data["echo"] == {"text": "hi"}
        assert ok.data["task_type"] == "say"
        meta = ok.metadata
        assert (meta.agent_id, meta.agent_version, meta.task_id) == ("echo", "1.0.0", "task-1")
        assert meta.instance_id.startswith("echo-")
        assert meta.latency is not None and meta.latency > timedelta(0)

        failed = await client.execute({"fail": "NO_WAY", "retryable": True})
        assert not failed.success
        assert failed.error is not None
        assert (failed.error.code, failed.error.retryable) == ("NO_WAY", True)

        crashed = await client.execute({"crash": True})
        assert crashed.error is not None and crashed.error.code == "AGENT_ERROR"

        again = await client.execute("still here")
        assert again.success and again.data["echo"] == "still here"

        described = await client.describe()
        assert (described.id, described.type, described.version, described.streaming) == ("echo", "echo", "1.0.0", True)
        assert list(described.capabilities) == ["echo", "stream"]


async def test_deadline_cancels_execute() -> None:
    agent = Probe()
    async with run_agent(agent) as address, AgentClient(address) as client:
        with pytest.raises(DeadlineExceeded):
            await client.execute(10, timeout=timedelta(milliseconds=200))
        await asyncio.wait_for(agent.cancelled.wait(), 2)
        await eventually(lambda: _idle(client), within=1.0, period=0.02, what="in-flight back to 0")
        metrics = await client.metrics()
        assert metrics.in_flight == 0
        assert metrics.errors_total == 1


async def test_stream_events_and_result_last() -> None:
    async with run_agent(EchoAgent()) as address, AgentClient(address) as client:
        events = [e async for e in client.execute_stream({"text": "abcdefghij", "chunk": 3})]
        assert [e.data for e in events if isinstance(e, Partial)] == ["abc", "def", "ghi", "j"]
        assert [e.fraction for e in events if isinstance(e, Progress)][-1] == 1.0
        assert isinstance(events[-1], Result)
        assert sum(isinstance(e, Result) for e in events) == 1
        assert events[-1].data["chunks"] == 4
        assert events[-1].metadata.agent_id == "echo"

        failed = [e async for e in client.execute_stream({"fail": "BAD_STREAM"})]
        assert len(failed) == 1 and isinstance(failed[0], Result)
        assert failed[0].error is not None and failed[0].error.code == "BAD_STREAM"


async def test_client_cancel_cancels_the_agent_stream() -> None:
    agent = Probe()
    async with run_agent(agent) as address, AgentClient(address) as client:
        stream = client.execute_stream(None)
        first = await anext(stream)
        assert isinstance(first, Progress)
        await stream.aclose()
        await asyncio.wait_for(agent.cancelled.wait(), 2)
        await eventually(lambda: _idle(client), within=1.0, period=0.02, what="in-flight back to 0")
        assert (await client.metrics()).in_flight == 0


async def test_metrics_count_requests_errors_and_custom_gauges() -> None:
    async with run_agent(Probe()) as address, AgentClient(address) as client:
        before = await client.metrics()
        assert before.requests_total == 0
        for _ in range(3):
            await client.execute(0)
        metrics = await client.metrics()
        assert metrics.requests_total == 3
        assert metrics.errors_total == 0
        assert metrics.latency_p50.ToTimedelta() > timedelta(0)
        assert metrics.uptime.ToTimedelta() > timedelta(0)
        assert metrics.custom["answer"] == 42


async def test_check_health_drives_grpc_health() -> None:
    agent = Probe()
    async with run_agent(agent, health_period=timedelta(milliseconds=50)) as address:
        assert await health_status(address) == health_pb2.HealthCheckResponse.SERVING
        assert await health_status(address, "sutradhar.v1.AgentService") == health_pb2.HealthCheckResponse.SERVING
        agent.healthy = False
        await eventually(lambda: _health_is(address, health_pb2.HealthCheckResponse.NOT_SERVING), within=2.0)
        assert await health_status(address) == health_pb2.HealthCheckResponse.NOT_SERVING
        agent.healthy = True
        await eventually(lambda: _health_is(address, health_pb2.HealthCheckResponse.SERVING), within=2.0)
        assert await health_status(address) == health_pb2.HealthCheckResponse.SERVING


async def test_stop_drains_in_flight_work_and_refuses_new_tasks() -> None:
    server = AgentServer(EchoAgent(), insecure=True, grace=timedelta(seconds=5))
    await server.start()
    async with AgentClient(server.address) as client:
        slow = asyncio.create_task(client.execute({"sleep": 0.5}))
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0.1)
        assert await health_status(server.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(Unavailable, match="draining"):
            await client.execute("late")
        result = await slow
        assert result.success
        await stopping


async def test_bad_identity_is_refused_before_serving() -> None:
    class Bad(EchoAgent):
        version = "banana"

    with pytest.raises(Exception, match="semantic version"):
        AgentServer(Bad(), insecure=True)


async def test_deadline_ends_a_stream() -> None:
    agent = Probe()
    async with run_agent(agent) as address, AgentClient(address) as client:
        seen: list[object] = []
        with pytest.raises(DeadlineExceeded):
            async for event in client.execute_stream(None, timeout=timedelta(milliseconds=300)):
                seen.append(event)
        assert seen and all(isinstance(e, Progress) for e in seen)
        await asyncio.wait_for(agent.cancelled.wait(), 2)


async def test_a_failing_on_start_releases_the_port() -> None:
    class Broken(EchoAgent):
        async def on_start(self) -> None:
            raise RuntimeError("no model file")

    server = AgentServer(Broken(), insecure=True)
    with pytest.raises(RuntimeError, match="no model file"):
        await server.start()
    again = AgentServer(EchoAgent(), insecure=True, port=server.port)  # the port is free again
    await again.start()
    await again.stop()


class SlowHealth(EchoAgent):
    id = "slowhealth"
    failure: BaseException | None = None

    async def check_health(self) -> bool:
        if self.failure is not None:
            raise self.failure
        await asyncio.sleep(5)
        return True


async def test_a_check_health_timeout_is_logged_with_its_type_and_limit(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sutradhar._serve"):
        async with run_agent(SlowHealth(), health_period=timedelta(milliseconds=200)) as address:
            assert await health_status(address) == health_pb2.HealthCheckResponse.NOT_SERVING
    lines = [r.getMessage() for r in caplog.records if "check_health()" in r.getMessage()]
    assert lines
    assert lines[0] == (
        "check_health() of agent slowhealth failed: TimeoutError: timed out after 0.2s; reporting NOT_SERVING"
    )


async def test_a_check_health_exception_is_logged_with_its_repr(caplog: pytest.LogCaptureFixture) -> None:
    agent = SlowHealth()
    agent.failure = ConnectionError()  # an empty str(), as a TimeoutError has
    with caplog.at_level(logging.WARNING, logger="sutradhar._serve"):
        async with run_agent(agent, health_period=timedelta(milliseconds=200)):
            pass
    lines = [r.getMessage() for r in caplog.records if "check_health()" in r.getMessage()]
    assert lines[0] == (
        "check_health() of agent slowhealth failed: ConnectionError: ConnectionError(); reporting NOT_SERVING"
    )


class Picky(EchoAgent):
    id = "picky"
    task_types = ("say", "shout")


async def test_task_types_are_enforced_with_invalid_argument() -> None:
    async with run_agent(Picky()) as address, AgentClient(address) as client:
        assert (await client.execute({"x": 1}, task_type="say")).success
        assert (await client.execute({"x": 1})).success  # an empty type is any type
        with pytest.raises(InvalidArgument) as refused:
            await client.execute({"x": 1}, task_type="whisper")
        assert str(refused.value) == (
            "agent picky does not accept task type 'whisper'; it accepts 'say', 'shout' (or an empty type)"
        )
        with pytest.raises(InvalidArgument, match="'whisper'"):
            async for _ in client.execute_stream("text", task_type="whisper"):
                pass
        events = [e async for e in client.execute_stream("text", task_type="shout")]
        assert isinstance(events[-1], Result) and events[-1].success
        assert (await client.metrics()).requests_total == 3  # refused tasks never ran


async def test_an_agent_with_task_types_passes_conformance() -> None:
    from sutradhar.conformance import run_conformance

    async with run_agent(Picky()) as address:
        results = await run_conformance(address, task_type="say", slow_payload={"sleep": 5})
    assert [(r.name, r.passed) for r in results if not r.passed] == []
    malformed = next(r for r in results if r.name == "malformed-input")
    assert "odd payload -> INVALID_ARGUMENT (unknown task type)" in malformed.detail, malformed.detail


async def test_a_synchronous_execute_or_stream_is_refused_naming_the_method() -> None:
    class SyncExecute(EchoAgent):
        def execute(self, task: Task) -> Any:  # type: ignore[override]
            return {"ok": True}

    class SyncStream(Agent):
        id = "syncstream"
        type = "syncstream"

        def stream(self, task: Task) -> Any:  # type: ignore[override]
            yield Result.ok(1)

    class ReturningStream(Agent):
        id = "retstream"
        type = "retstream"

        async def stream(self, task: Task) -> Any:  # type: ignore[override]
            return Result.ok(1)

    with pytest.raises(InvalidArgument, match=r"SyncExecute\.execute must be a coroutine function.*async def execute"):
        AgentServer(SyncExecute(), insecure=True)
    for cls in (SyncStream, ReturningStream):
        with pytest.raises(InvalidArgument, match=rf"{cls.__name__}\.stream must be an async generator.*async def"):
            AgentServer(cls(), insecure=True)


async def test_client_timeouts_take_seconds_as_numbers() -> None:
    async with run_agent(EchoAgent()) as address, AgentClient(address) as client:
        assert (await client.execute({"x": 1}, timeout=5)).success
        assert (await client.describe(timeout=2.5)).id == "echo"
        assert (await client.metrics(timeout=1)).requests_total == 1
        events = [e async for e in client.execute_stream({"text": "abcdefgh"}, timeout=5.0)]
        assert isinstance(events[-1], Result) and events[-1].success
        with pytest.raises(DeadlineExceeded):
            await client.execute({"sleep": 3}, timeout=0.3)
        with pytest.raises(TypeError, match="timeout must be a timedelta or seconds"):
            await client.execute({"x": 1}, timeout="5")  # type: ignore[arg-type]


async def test_an_agent_does_not_run_a_task_whose_deadline_has_passed() -> None:
    # Before: a task with context.deadline in the past ran anyway when the
    # agent's execute never awaited (asyncio cancels only at an await) and
    # came back as a success long after its caller had given up.
    async with run_agent(EchoAgent()) as address, grpc.aio.insecure_channel(address) as channel:
        execute = channel.unary_unary(
            "/sutradhar.v1.AgentService/Execute",
            request_serializer=agent_pb2.ExecuteRequest.SerializeToString,
            response_deserializer=agent_pb2.ExecuteResponse.FromString,
        )
        late = agent_pb2.Task(id="late", type="t")
        late.context.deadline.FromSeconds(1)  # 1970
        code, details = await rpc_status(execute(agent_pb2.ExecuteRequest(task=late), timeout=5))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "late" in details, (code, details)
        on_time = agent_pb2.Task(id="on-time", type="t")
        on_time.context.deadline.FromSeconds(int(time.time()) + 60)
        reply = await execute(agent_pb2.ExecuteRequest(task=on_time), timeout=5)
        assert reply.result.success
