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
    matters on every task the agent serves and every result a client reads.
    The members of an object that are strings, numbers or booleans are read in
    place (one Python call per object, not per member).
    """
    kind = msg.WhichOneof("kind")
    if kind == "struct_value":
        return _struct_to_dict(msg.struct_value)
    if kind == "string_value":
        return msg.string_value
    if kind == "number_value":
        number = msg.number_value
        return int(number) if number.is_integer() and abs(number) < _EXACT else number
    if kind == "bool_value":
        return msg.bool_value
    if kind == "list_value":
        return _list_to_python(msg.list_value)
    return None


def _struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = struct.fields
    # Keys, then one lookup each: the map's items() is collections.abc's generic ItemsView, a
    # Python generator step and a lookup per member (about 0.2 us more per member).
    for key in fields:
        item = fields[key]
        kind = item.WhichOneof("kind")
        if kind == "string_value":
            out[key] = item.string_value
        elif kind == "number_value":
            number = item.number_value
            out[key] = int(number) if number.is_integer() and abs(number) < _EXACT else number
        elif kind == "bool_value":
            out[key] = item.bool_value
        elif kind == "struct_value":
            out[key] = _struct_to_dict(item.struct_value)
        elif kind == "list_value":
            out[key] = _list_to_python(item.list_value)
        else:
            out[key] = None
    return out


def _list_to_python(values: struct_pb2.ListValue) -> list[Any]:
    return [value_to_python(item) for item in values.values]


def python_to_value(data: Any, out: struct_pb2.Value | None = None) -> struct_pb2.Value:
    """`data` (JSON-like) written into `out` (a new Value when None).
    Raises TypeError for anything that is not JSON-like.

    The common types are told apart by their exact type first (one check,
    not a chain of isinstance), and the string and number members of an object
    or list are written in place; subclasses (an IntEnum, an OrderedDict, a
    Mapping) take the general path with the same result."""
    if out is None:
        out = struct_pb2.Value()
    kind = type(data)
    if kind is dict:
        _fill_struct(data, out)
    elif kind is str:
        out.string_value = data
    elif kind is int or kind is float:
        out.number_value = data
    elif kind is list:
        _fill_list(data, out)
    elif data is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        out.bool_value = data
    elif isinstance(data, int | float):
        out.number_value = data
    elif isinstance(data, str):
        out.string_value = data
    elif isinstance(data, dict | Mapping):
        _fill_struct(data, out)
    elif isinstance(data, list | tuple):
        _fill_list(data, out)
    else:
        raise TypeError(f"{type(data).__name__} is not JSON-like")
    return out


def _fill_struct(data: Mapping[Any, Any], out: struct_pb2.Value) -> None:
    struct = out.struct_value
    if not data:
        struct.SetInParent()
        return
    fields = struct.fields
    for key, item in data.items():
        if not isinstance(key, str):
            raise TypeError(f"object key {key!r} is not a string")
        kind = type(item)
        if kind is str:
            fields[key].string_value = item
        elif kind is int or kind is float:
            fields[key].number_value = item
        else:
            python_to_value(item, fields[key])


def _fill_list(data: list[Any] | tuple[Any, ...], out: struct_pb2.Value) -> None:
    values = out.list_value
    if not data:
        values.SetInParent()
        return
    add = values.values.add
    for item in data:
        kind = type(item)
        if kind is str:
            add(string_value=item)
        elif kind is int or kind is float:
            add(number_value=item)
        else:
            python_to_value(item, add())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp_parts(when: datetime) -> tuple[int, int]:
    """The Timestamp seconds and nanos of `when` (a naive datetime is taken as UTC): what
    ``Timestamp.FromDatetime`` writes, by integer arithmetic on the datetime (exact to the
    microsecond, and without its time tuple and ``timegm``)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return delta.days * 86400 + delta.seconds, delta.microseconds * 1000


def set_timestamp(out: timestamp_pb2.Timestamp, when: datetime) -> None:
    """Write `when` into `out` (`_timestamp_parts`)."""
    out.seconds, out.nanos = _timestamp_parts(when)


def unix_seconds(when: datetime) -> float:
    """`when` as the router reads it from the Timestamp `set_timestamp` writes (seconds plus nanos
    over 1e9, `sutradhar._routing.wire`): the same float to the last bit."""
    seconds, nanos = _timestamp_parts(when)
    return seconds + nanos / 1e9


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


def context_to_proto(ctx: TaskContext, out: agent_pb2.TaskContext | None = None) -> agent_pb2.TaskContext:
    """The message of a TaskContext, written into `out` (a new message when None; `out` is
    marked present even when the context is empty). Only the fields set are written: the
    same message, without a call per empty field."""
    msg = agent_pb2.TaskContext() if out is None else out
    msg.SetInParent()
    if ctx.session_id:
        msg.session_id = ctx.session_id
    if ctx.user_id:
        msg.user_id = ctx.user_id
    if ctx.request_id:
        msg.request_id = ctx.request_id
    if ctx.traceparent:
        msg.traceparent = ctx.traceparent
    if ctx.tracestate:
        msg.tracestate = ctx.tracestate
    if ctx.attributes:
        msg.attributes.update(ctx.attributes)
    if ctx.deadline is not None:
        set_timestamp(msg.deadline, ctx.deadline)
    return msg


def task_from_proto(msg: agent_pb2.Task, *, default_id: str = "") -> Task:
    """A Task from its message; `default_id` replaces an empty id."""
    return Task(
        id=msg.id or default_id,
        type=msg.type,
        payload=value_to_python(msg.payload) if msg.HasField("payload") else None,
        context=context_from_proto(msg.context),
    )


def task_to_proto(task: Task, out: agent_pb2.Task | None = None) -> agent_pb2.Task:
    """The message of a Task, written into `out` (a new message when None; built in place,
    so neither the payload nor the context is copied); InvalidArgument when the payload is
    not JSON-like."""
    msg = agent_pb2.Task() if out is None else out
    if task.id:
        msg.id = task.id
    if task.type:
        msg.type = task.type
    try:
        python_to_value(task.payload, msg.payload)
    except TypeError as err:
        raise InvalidArgument(f"task payload is not JSON-like: {err}", field="payload") from err
    context_to_proto(task.context, msg.context)
    return msg


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
