"""The SDK's fast conversions write exactly what the generic protobuf helpers write."""

from __future__ import annotations

import enum
import math
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from sutradhar._agent import Task, TaskContext
from sutradhar._clients import ROUTE_CACHE_SIZE, RouterClient, make_task, new_task_id
from sutradhar._convert import context_to_proto, python_to_value, set_timestamp, task_to_proto, value_to_python
from sutradhar.v1 import agent_pb2


class Level(enum.IntEnum):
    HIGH = 3


VALUES: list[Any] = [
    None, True, False, 0, -3, 2.5, 1e300, "", "x",
    [], {}, [1, "a", None, True, [], {}, 2.5],
    {"a": {"b": [1, {"c": None}]}, "e": {}, "l": [], "t": True, "f": 0.5},
    ("a", 1), OrderedDict(a=1, b=[2]), {"x": Level.HIGH, "y": [Level.HIGH, False]}, [[[]]],
]


def reference_value(data: Any) -> struct_pb2.Value:
    """The Value json_format builds (tuples and enums as JSON would see them)."""
    out = struct_pb2.Value()
    if data is None:
        out.null_value = struct_pb2.NULL_VALUE
        return out
    json_format.ParseDict(json_format.MessageToDict(_plain(data)), out)
    return out


def _plain(data: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if isinstance(data, tuple):
        data = list(data)
    if isinstance(data, OrderedDict):
        data = dict(data)
    if isinstance(data, dict):
        for key, item in data.items():
            out.struct_value.fields[key].CopyFrom(_plain(item))
        out.struct_value.SetInParent()
    elif isinstance(data, list):
        out.list_value.SetInParent()
        for item in data:
            out.list_value.values.add().CopyFrom(_plain(item))
    elif data is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        out.bool_value = data
    elif isinstance(data, int | float):
        out.number_value = float(data)
    else:
        out.string_value = data
    return out


@pytest.mark.parametrize("data", VALUES, ids=repr)
def test_python_to_value_writes_what_json_format_writes(data: Any) -> None:
    assert python_to_value(data).SerializeToString(deterministic=True) == \
        reference_value(data).SerializeToString(deterministic=True)


@pytest.mark.parametrize("data", VALUES, ids=repr)
def test_value_to_python_reads_it_back(data: Any) -> None:
    expected = json_format.MessageToDict(reference_value(data)) if data is not None else None

    def whole(x: Any) -> Any:  # JSON numbers that are whole come back as int
        if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
            return int(x)
        if isinstance(x, dict):
            return {k: whole(v) for k, v in x.items()}
        if isinstance(x, list):
            return [whole(v) for v in x]
        return x

    def typed(x: Any) -> Any:  # the value with every leaf's type, objects in key order
        if isinstance(x, dict):
            return sorted((k, typed(v)) for k, v in x.items())
        if isinstance(x, list):
            return [typed(v) for v in x]
        return (type(x).__name__, x)

    back = value_to_python(python_to_value(data))
    assert typed(back) == typed(whole(expected))  # int stays int, float float, bool bool


def test_non_finite_numbers_and_bad_values() -> None:
    back = value_to_python(python_to_value({"n": math.nan, "l": [math.inf, -math.inf]}))
    assert math.isnan(back["n"]) and back["l"] == [math.inf, -math.inf]
    for bad, message in (({1: "x"}, "object key 1 is not a string"), ([b"raw"], "bytes is not JSON-like"),
                         ({"a": {2: 1}}, "object key 2"), ([{"k": object()}], "object is not JSON-like")):
        with pytest.raises(TypeError, match=message):
            python_to_value(bad)


@pytest.mark.parametrize("when", [
    datetime(2030, 1, 2, 3, 4, 5, 600001, tzinfo=UTC),
    datetime(1960, 5, 5, 1, 1, 1, 999999),  # naive: UTC; before the epoch
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
])
def test_set_timestamp_is_from_datetime(when: datetime) -> None:
    mine, theirs = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    set_timestamp(mine, when)
    theirs.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    assert (mine.seconds, mine.nanos) == (theirs.seconds, theirs.nanos)


def reference_task(task: Task) -> agent_pb2.Task:
    """The Task message built field by field, every field given (as before the fast path)."""
    ctx = task.context
    context = agent_pb2.TaskContext(session_id=ctx.session_id, user_id=ctx.user_id, request_id=ctx.request_id,
                                    traceparent=ctx.traceparent, tracestate=ctx.tracestate,
                                    attributes=dict(ctx.attributes))
    if ctx.deadline is not None:
        context.deadline.FromDatetime(ctx.deadline if ctx.deadline.tzinfo else ctx.deadline.replace(tzinfo=UTC))
    return agent_pb2.Task(id=task.id, type=task.type, payload=reference_value(task.payload), context=context)


@pytest.mark.parametrize("context", [
    TaskContext(),
    TaskContext(session_id="s", user_id="u", request_id="r", deadline=datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
                traceparent="00-abc-def-01", tracestate="k=v", attributes={"a": "b", "c": "d"}),
    TaskContext(deadline=datetime(2026, 6, 1)),
])
@pytest.mark.parametrize("payload", [None, {"q": "why", "n": [1.5, None]}, "text"])
def test_task_to_proto_writes_the_same_bytes(context: TaskContext, payload: Any) -> None:
    for task in (Task(id="t", type="answer", payload=payload, context=context), Task(id="", payload=payload)):
        expected = reference_task(task).SerializeToString(deterministic=True)
        assert task_to_proto(task).SerializeToString(deterministic=True) == expected
        request = agent_pb2.ExecuteRequest()
        task_to_proto(task, request.task)  # in place: the same bytes inside the request
        assert request.SerializeToString(deterministic=True) == \
            agent_pb2.ExecuteRequest(task=reference_task(task)).SerializeToString(deterministic=True)
    assert context_to_proto(TaskContext()).SerializeToString() == b""


def test_new_task_ids_are_uuid4_hex() -> None:
    ids = {new_task_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(hex=text)
        assert len(text) == 32 and parsed.hex == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_make_task_keeps_a_given_deadline_and_context() -> None:
    deadline = datetime(2031, 1, 1, tzinfo=UTC)
    given = TaskContext(session_id="s", deadline=deadline, attributes={"k": "v"})
    assert make_task(1, task_type="t", task_id="i", context=given, timeout=5).context is given
    without = TaskContext(session_id="s", user_id="u", request_id="r", traceparent="tp", tracestate="ts",
                          attributes={"k": "v"})
    before = datetime.now(UTC)
    task = make_task(1, task_type="t", task_id="i", context=without, timeout=5)
    assert task.context.deadline is not None and before + timedelta(seconds=5) <= task.context.deadline
    assert task.context == TaskContext(session_id="s", user_id="u", request_id="r", deadline=task.context.deadline,
                                       traceparent="tp", tracestate="ts", attributes={"k": "v"})
    assert make_task(1, task_type="t", task_id=None, context=without, timeout=None).context is without


def test_route_messages_are_built_once_per_set_of_arguments() -> None:
    args: tuple[Any, ...] = ("ns", "echo", ">=1", ["gpu"], "tier=gold", "", "round-robin", 2, 3)
    selector, options = RouterClient._route_of(*args)
    assert RouterClient._route_of(*args)[0] is selector  # the same, not rebuilt
    assert (selector.namespace, list(selector.capabilities), selector.label_selector) == ("ns", ["gpu"], "tier=gold")
    assert (options.strategy, options.max_attempts, options.timeout.seconds) == ("round-robin", 2, 3)
    other, _ = RouterClient._route_of("ns", "echo", "", (), {"tier": "gold"}, "", "", 0, None)  # a mapping: built
    assert other.label_selector == "tier=gold"
    with pytest.raises(Exception, match="labels"):
        RouterClient._route_of("ns", "echo", "", (), {"tier": "no,pe"}, "", "", 0, None)
    for n in range(ROUTE_CACHE_SIZE + 5):  # bounded
        RouterClient._route_of("ns", f"a{n}", "", (), None, "", "", 0, None)
    from sutradhar import _clients

    assert len(_clients._ROUTES) <= ROUTE_CACHE_SIZE
