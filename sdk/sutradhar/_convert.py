"""Conversions between the SDK's task dataclasses and their protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from sutradhar._agent import Partial, Progress, Result, ResultMetadata, StreamEvent, Task, TaskContext, TaskError
from sutradhar._errors import InvalidArgument
from sutradhar._values import from_duration, from_struct, from_value, to_duration, to_struct, to_value
from sutradhar.v1 import agent_pb2

_EXACT = 2**53  # floats below this hold whole numbers exactly


def _json(value: Any) -> Any:
    """A JSON value as a Python author expects it: protobuf's Value stores every
    number as a double, so whole numbers come back as int (1.0 -> 1)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _EXACT else value
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def _from_value(msg: Any) -> Any:
    return _json(from_value(msg))


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
        payload=_from_value(msg.payload) if msg.HasField("payload") else None,
        context=context_from_proto(msg.context),
    )


def task_to_proto(task: Task) -> agent_pb2.Task:
    """The message of a Task; InvalidArgument when the payload is not JSON-like."""
    try:
        payload = to_value(task.payload)
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
        msg.metadata.latency.CopyFrom(to_duration(meta.latency))
    if result.data is not None or result.success:
        msg.data.CopyFrom(to_value(result.data))
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
            details=_json(from_struct(msg.error.details)) or None,
        )
    meta = msg.metadata
    return Result(
        success=msg.success,
        data=_from_value(msg.data) if msg.HasField("data") else None,
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
    return agent_pb2.ExecuteStreamResponse(partial=to_value(event.data))


def event_from_proto(msg: Any) -> StreamEvent:
    """The event held by an ExecuteStreamResponse (or the router's twin message)."""
    kind = msg.WhichOneof("event")
    if kind == "progress":
        return Progress(message=msg.progress.message, fraction=msg.progress.fraction)
    if kind == "partial":
        return Partial(_from_value(msg.partial))
    if kind == "result":
        return result_from_proto(msg.result)
    raise InvalidArgument("stream event carries no progress, partial or result", field="event")
