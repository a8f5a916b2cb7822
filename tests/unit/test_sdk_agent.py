"""The Agent contract as plain Python: outcomes, streams, metadata, conversions."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import struct_pb2

from sutradhar import (
    Agent,
    InvalidArgument,
    Partial,
    Progress,
    Result,
    ResultMetadata,
    Task,
    TaskContext,
    TaskFailed,
)
from sutradhar._agent import run_execute, stream_events, validate_agent, with_metadata
from sutradhar._convert import (
    event_from_proto,
    event_to_proto,
    result_from_proto,
    result_to_proto,
    task_from_proto,
    task_to_proto,
)
from sutradhar._registration import agent_definition, parse_labels, process_command
from sutradhar._values import from_struct, from_value


class Plain(Agent):
    id = "plain"
    type = "plain"
    version = "1.2.3"

    async def execute(self, task: Task) -> Any:
        if task.payload == "fail":
            raise TaskFailed("NOPE", "no", retryable=True, details={"why": "asked"})
        if task.payload == "crash":
            raise ValueError("boom")
        if task.payload == "result":
            return Result.failure("CUSTOM", "own result")
        return {"got": task.payload}


class Streamer(Agent):
    id = "streamer"
    type = "streamer"
    version = "0.1.0"

    def __init__(self) -> None:
        self.closed = False

    async def stream(self, task: Task) -> AsyncIterator[Any]:
        try:
            yield Progress("start", 0.0)
            yield "a"
            yield Partial({"b": 1})
            if task.payload == "fail":
                raise TaskFailed("HALF", "failed midway")
            if task.payload == "crash":
                raise KeyError("k")
            if task.payload == "final":
                yield Result.ok("done")
                yield "never sent"
        finally:
            self.closed = True


async def collect(agent: Agent, payload: Any) -> list[Any]:
    return [e async for e in stream_events(agent, Task(id="t1", payload=payload))]


async def test_execute_outcomes_become_results() -> None:
    agent = Plain()
    ok = await run_execute(agent, Task(id="1", payload=[1, 2]))
    assert ok == Result.ok({"got": [1, 2]})
    failed = await run_execute(agent, Task(id="2", payload="fail"))
    assert not failed.success
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable, failed.error.details) == ("NOPE", True, {"why": "asked"})
    crashed = await run_execute(agent, Task(id="3", payload="crash"))
    assert crashed.error is not None
    assert crashed.error.code == "AGENT_ERROR"
    assert "ValueError: boom" in crashed.error.message
    own = await run_execute(agent, Task(id="4", payload="result"))
    assert own.error is not None and own.error.code == "CUSTOM"


async def test_stream_without_result_ends_with_the_partials() -> None:
    events = await collect(Streamer(), None)
    assert events == [Progress("start", 0.0), Partial("a"), Partial({"b": 1}), Result.ok(["a", {"b": 1}])]


async def test_a_yielded_result_is_final_and_closes_the_generator() -> None:
    agent = Streamer()
    events = await collect(agent, "final")
    assert events[-1] == Result.ok("done")
    assert Partial("never sent") not in events
    assert agent.closed


@pytest.mark.parametrize(("payload", "code"), [("fail", "HALF"), ("crash", "AGENT_ERROR")])
async def test_failures_inside_a_stream_end_it_with_one_failed_result(payload: str, code: str) -> None:
    events = await collect(Streamer(), payload)
    results = [e for e in events if isinstance(e, Result)]
    assert len(results) == 1
    assert events[-1] is results[0]
    assert results[0].error is not None and results[0].error.code == code


async def test_default_stream_wraps_execute_and_default_execute_runs_stream() -> None:
    assert await collect(Plain(), 7) == [Result.ok({"got": 7})]
    assert await run_execute(Streamer(), Task(id="x", payload="final")) == Result.ok("done")


async def test_cancelling_a_stream_closes_the_agent_generator() -> None:
    started = asyncio.Event()
    closed = asyncio.Event()

    class Slow(Agent):
        id = type = "slow"
        version = "1.0.0"

        async def stream(self, task: Task) -> AsyncIterator[Any]:
            try:
                started.set()
                yield "first"
                await asyncio.sleep(30)
            finally:
                closed.set()

    async def consume() -> None:
        async for _ in stream_events(Slow(), Task(id="s")):
            pass

    runner = asyncio.create_task(consume())
    await started.wait()
    await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert closed.is_set()


def test_validate_agent_names_the_bad_field() -> None:
    class Bad(Plain):
        version = "banana"

    with pytest.raises(InvalidArgument) as err:
        validate_agent(Bad())
    assert err.value.field == "version"

    class BadId(Plain):
        id = "Not_A_Label"

    with pytest.raises(InvalidArgument) as err:
        validate_agent(BadId())
    assert err.value.field == "id"

    class Nothing(Agent):
        id = type = "nothing"
        version = "1.0.0"

    with pytest.raises(InvalidArgument, match="neither execute"):
        validate_agent(Nothing())


def test_metadata_fills_only_unset_fields() -> None:
    sdk = ResultMetadata(latency=timedelta(milliseconds=3), agent_id="a", instance_id="i", task_id="t")
    own = Result(success=True, metadata=ResultMetadata(agent_id="mine"))
    merged = with_metadata(own, sdk).metadata
    assert (merged.agent_id, merged.instance_id, merged.task_id) == ("mine", "i", "t")
    assert merged.latency == timedelta(milliseconds=3)


def test_task_round_trips_through_protobuf() -> None:
    deadline = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    task = Task(
        id="t",
        type="answer",
        payload={"q": "why", "n": [1.5, None, True]},
        context=TaskContext(session_id="s", user_id="u", request_id="r", deadline=deadline, attributes={"k": "v"}),
    )
    assert task_from_proto(task_to_proto(task)) == task
    assert task_from_proto(task_to_proto(Task(id=""))).id == ""
    assert task_from_proto(task_to_proto(Task(id="")), default_id="gen").id == "gen"
    with pytest.raises(InvalidArgument):
        task_to_proto(Task(id="t", payload={1, 2}))


def test_result_and_events_round_trip_through_protobuf() -> None:
    result = Result(
        success=False,
        error=Result.failure("E", "m", retryable=True, details={"a": "b"}).error,
        metadata=ResultMetadata(latency=timedelta(milliseconds=5), agent_id="x", instance_id="i", task_id="t"),
    )
    assert result_from_proto(result_to_proto(result)) == result
    assert result_from_proto(result_to_proto(Result.ok(None))) == Result.ok(None)
    for event in (Progress("half", 0.5), Partial(["x"]), Result.ok("y")):
        assert event_from_proto(event_to_proto(event)) == event


def test_result_unwrap() -> None:
    assert Result.ok(3).unwrap() == 3
    with pytest.raises(TaskFailed) as err:
        Result.failure("E", "m").unwrap()
    assert err.value.code == "E"


def test_agent_definition_says_how_to_start_more_replicas() -> None:
    definition = agent_definition(Plain(), "ns")
    config = from_struct(definition.config)
    assert definition.runtime == "process"
    assert (definition.id, definition.namespace, definition.version) == ("plain", "ns", "1.2.3")
    assert config["command"][1:] == ["-m", "sutradhar.serve", f"{__name__}:Plain"]
    assert process_command(Plain())[0] == sys.executable


def test_parse_labels() -> None:
    assert parse_labels(["a=1", "b = two"]) == {"a": "1", "b": "two"}
    with pytest.raises(ValueError, match="key=value"):
        parse_labels(["novalue"])


def test_whole_numbers_come_back_as_int() -> None:
    task = task_from_proto(task_to_proto(Task(id="t", payload={"n": 3, "x": 2.5, "l": [1, 2.0], "big": 1e300})))
    assert task.payload == {"n": 3, "x": 2.5, "l": [1, 2], "big": 1e300}
    assert isinstance(task.payload["n"], int)
    assert isinstance(task.payload["big"], float)
    assert isinstance(result_from_proto(result_to_proto(Result.ok({"count": 7}))).data["count"], int)


def test_value_conversion_matches_json_semantics() -> None:
    from google.protobuf import json_format

    from sutradhar._convert import python_to_value, value_to_python

    data = {"s": "x", "n": None, "b": False, "f": 0.25, "i": -3, "l": [], "d": {}, "t": ("a", 1)}
    msg = python_to_value(data)
    assert json_format.MessageToDict(msg) == {**data, "t": ["a", 1]}  # same message json_format would build
    assert value_to_python(msg) == {**data, "t": ["a", 1]}
    with pytest.raises(TypeError, match="not a string"):
        python_to_value({1: "x"})
    with pytest.raises(TypeError, match="bytes"):
        python_to_value([b"raw"])


def test_from_value_survives_non_finite_numbers() -> None:
    value = struct_pb2.Value()
    value.struct_value.fields["x"].number_value = math.nan
    value.struct_value.fields["y"].list_value.values.add().number_value = math.inf
    value.struct_value.fields["z"].string_value = "ok"
    plain = from_value(value)
    assert math.isnan(plain["x"]) and plain["y"] == [math.inf] and plain["z"] == "ok"
    struct = struct_pb2.Struct()
    struct.fields["n"].number_value = -math.inf
    assert from_struct(struct) == {"n": -math.inf}
