"""Conversions between the SDK's task dataclasses and their protobuf messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from sutradhar._agent import Partial, Progress, Result, ResultMetadata, StreamEvent, Task, TaskContext, TaskError
from sutradhar._errors import InvalidArgument
from sutradhar._values import from_duration, to_struct
from sutradhar.v1 import agent_pb2

_EXACT = 2**53  # floats below this hold whole numbers exactly


def value_to_python(msg: struct_pb2.Value) -> Any:
    """The Python value held by a protobuf Value. Every number travels as a
    double; whole numbers come back as int (1.0 -> 1), as a JSON parser would.

    Walks the message directly: several times faster than json_format, which
    matters on every task the agent serves.
    """
    kind = msg.WhichOneof("kind")
    if kind == "string_value":
        return msg.string_value
    if kind == "number_value":
        number = msg.number_value
        return int(number) if number.is_integer() and abs(number) < _EXACT else number
    if kind == "bool_value":
        return msg.bool_value
    if kind == "struct_value":
        return {key: value_to_python(item) for key, item in msg.struct_value.fields.items()}
    if kind == "list_value":
        return [value_to_python(item) for item in msg.list_value.values]
    return None


def python_to_value(data: Any, out: struct_pb2.Value | None = None) -> struct_pb2.Value:
    """`data` (JSON-like) written into `out` (a new Value when None).
    Raises TypeError for anything that is not JSON-like."""
    if out is None:
        out = struct_pb2.Value()
    if data is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        out.bool_value = data
    elif isinstance(data, int | float):
        out.number_value = data
    elif isinstance(data, str):
        out.string_value = data
    elif isinstance(data, dict | Mapping):
        struct = out.struct_value
        struct.SetInParent()
        for key, item in data.items():
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not a string")
            python_to_value(item, struct.fields[key])
    elif isinstance(data, list | tuple):
        values = out.list_value
        values.SetInParent()
        for item in data:
            python_to_value(item, values.values.add())
    else:
        raise TypeError(f"{type(data).__name__} is not JSON-like")
    return out


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    out.FromDatetime(when)
    return out


def context_from_proto(msg: agent_pb2.TaskContext) -> TaskContext:
    """A TaskContext from its message (deadline None when unset)."""
    deadline = msg.deadline.ToDatetime(tzinfo=UTC) if msg.HasField("deadline") else None
    return TaskContext(
        session_id=msg.session_id,
        user_id=msg.user_id,
        request_id=msg.request_id,
        deadline=deadline,
        traceparent=msg.traceparent,
        tracestate=msg.tracestate,
        attributes=dict(msg.attributes),
    )


def context_to_proto(ctx: TaskContext) -> agent_pb2.TaskContext:
    """The message of a TaskContext."""
    msg = agent_pb2.TaskContext(
        session_id=ctx.session_id,
        user_id=ctx.user_id,
        request_id=ctx.request_id,
        traceparent=ctx.traceparent,
        tracestate=ctx.tracestate,
        attributes=dict(ctx.attributes),
    )
    if ctx.deadline is not None:
        msg.deadline.CopyFrom(_timestamp(ctx.deadline))
    return msg


def task_from_proto(msg: agent_pb2.Task, *, default_id: str = "") -> Task:
    """A Task from its message; `default_id` replaces an empty id."""
    return Task(
        id=msg.id or default_id,
        type=msg.type,
        payload=value_to_python(msg.payload) if msg.HasField("payload") else None,
        context=context_from_proto(msg.context),
    )


def task_to_proto(task: Task) -> agent_pb2.Task:
    """The message of a Task; InvalidArgument when the payload is not JSON-like."""
    try:
        payload = python_to_value(task.payload)
    except TypeError as err:
        raise InvalidArgument(f"task payload is not JSON-like: {err}", field="payload") from err
    return agent_pb2.Task(id=task.id, type=task.type, payload=payload, context=context_to_proto(task.context))


def result_to_proto(result: Result) -> agent_pb2.Result:
    """The message of a Result. Raises TypeError when data is not JSON-like."""
    meta = result.metadata
    msg = agent_pb2.Result(
        success=result.success,
        metadata=agent_pb2.ResultMetadata(
            agent_id=meta.agent_id,
            agent_version=meta.agent_version,
            instance_id=meta.instance_id,
            attempts=meta.attempts,
            task_id=meta.task_id,
        ),
    )
    if meta.latency is not None:
        msg.metadata.latency.FromTimedelta(meta.latency)
    if result.data is not None or result.success:
        python_to_value(result.data, msg.data)
    if result.error is not None:
        msg.error.CopyFrom(
            agent_pb2.TaskError(
                code=result.error.code,
                message=result.error.message,
                retryable=result.error.retryable,
                details=to_struct(dict(result.error.details) if result.error.details else None),
            )
        )
    return msg


def result_from_proto(msg: agent_pb2.Result) -> Result:
    """A Result from its message."""
    error = None
    if msg.HasField("error"):
        error = TaskError(
            code=msg.error.code,
            message=msg.error.message,
            retryable=msg.error.retryable,
            details={k: value_to_python(v) for k, v in msg.error.details.fields.items()} or None,
        )
    meta = msg.metadata
    return Result(
        success=msg.success,
        data=value_to_python(msg.data) if msg.HasField("data") else None,
        error=error,
        metadata=ResultMetadata(
            latency=from_duration(meta.latency) if meta.HasField("latency") else None,
            agent_id=meta.agent_id,
            agent_version=meta.agent_version,
            instance_id=meta.instance_id,
            attempts=meta.attempts,
            task_id=meta.task_id,
        ),
    )


def event_to_proto(event: StreamEvent) -> agent_pb2.ExecuteStreamResponse:
    """The stream message of one event. Raises TypeError for non-JSON-like data."""
    if isinstance(event, Result):
        return agent_pb2.ExecuteStreamResponse(result=result_to_proto(event))
    if isinstance(event, Progress):
        return agent_pb2.ExecuteStreamResponse(
            progress=agent_pb2.Progress(message=event.message, fraction=event.fraction)
        )
    return agent_pb2.ExecuteStreamResponse(partial=python_to_value(event.data))


def event_from_proto(msg: Any) -> StreamEvent:
    """The event held by an ExecuteStreamResponse (or the router's twin message)."""
    kind = msg.WhichOneof("event")
    if kind == "progress":
        return Progress(message=msg.progress.message, fraction=msg.progress.fraction)
    if kind == "partial":
        return Partial(value_to_python(msg.partial))
    if kind == "result":
        return result_from_proto(msg.result)
    raise InvalidArgument("stream event carries no progress, partial or result", field="event")
