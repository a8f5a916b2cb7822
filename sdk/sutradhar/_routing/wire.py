"""The fast path: protobuf splicing so the task payload is never decoded.

`RouterServiceExecuteRequest` keeps the task in field 1, exactly where
`ExecuteRequest` keeps it, so the field-1 record *is* an ExecuteRequest.
`split_route_request` parses the request with private "view" messages that
declare the task as bytes (the C parser copies it, never decodes the
payload), parses the small selector and options, and peeks at the task's id,
type and context deadline through a second view that skips the payload.
Patches (a generated task id, the deadline) are appended as serialized
fragments. On the way back, `ExecuteResponse` and
`RouterServiceExecuteResponse` are wire-identical; the router appends a
serialized fragment that sets ``result.metadata.instance_id`` and
``attempts`` (protobuf merges repeated occurrences of a message field, and
the last scalar wins), again without decoding the agent's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from sutradhar.v1 import router_pb2

_EMPTY_OPTIONS = router_pb2.RouteOptions()


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _build_views() -> tuple[Any, Any, Any, Any]:
    """Private "view" messages, wire-compatible with the public ones but
    declaring the task as raw bytes (so the C parser copies it without decoding
    the payload) and only the task fields the router reads. Built at runtime so
    they never appear in the public API."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="sutradhar/router/_views.proto", package="sutradhar.router.views", syntax="proto3",
        dependency=["sutradhar/v1/router.proto", "google/protobuf/timestamp.proto"],
    )
    field = descriptor_pb2.FieldDescriptorProto

    def message(name: str, fields: list[tuple[str, int, int, str]]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=field.LABEL_OPTIONAL)
            if type_name:
                f.type_name = type_name

    message("RouteRequestView", [
        ("task", 1, field.TYPE_BYTES, ""),
        ("selector", 2, field.TYPE_MESSAGE, ".sutradhar.v1.Selector"),
        ("options", 3, field.TYPE_MESSAGE, ".sutradhar.v1.RouteOptions"),
    ])
    message("ContextView", [
        ("deadline", 4, field.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
        ("traceparent", 5, field.TYPE_STRING, ""),
    ])
    message("TaskView", [
        ("id", 1, field.TYPE_STRING, ""),
        ("type", 2, field.TYPE_STRING, ""),
        ("context", 4, field.TYPE_MESSAGE, ".sutradhar.router.views.ContextView"),
    ])
    message("ExecuteRequestPatch", [("task", 1, field.TYPE_MESSAGE, ".sutradhar.router.views.TaskView")])
    # A stream's final event read for `result.success` only (the data is skipped).
    message("ResultView", [("success", 1, field.TYPE_BOOL, "")])
    message("StreamResultView", [("result", 3, field.TYPE_MESSAGE, ".sutradhar.router.views.ResultView")])
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(fdp.name)
    except KeyError:
        pool.Add(fdp)

    def cls(name: str) -> type[Message]:
        found: type[Message] = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"sutradhar.router.views.{name}"))
        return found

    return cls("RouteRequestView"), cls("TaskView"), cls("ExecuteRequestPatch"), cls("StreamResultView")


_RouteRequestView, _TaskView, _ExecuteRequestPatch, _StreamResultView = _build_views()

#: Public names of the requests `split_route_request` parses (error messages name
#: these, never the private views).
EXECUTE_REQUEST = "sutradhar.v1.RouterServiceExecuteRequest"
EXECUTE_STREAM_REQUEST = "sutradhar.v1.RouterServiceExecuteStreamRequest"


@dataclass
class RouteRequest:
    """A routed task as the router needs it: the task still as bytes."""

    task_record: bytes
    """Field 1 record (tag, length, task bytes): a valid ExecuteRequest on its own."""
    selector_bytes: bytes
    """The serialized Selector (cache key for candidate selection)."""
    options: router_pb2.RouteOptions
    task_id: str
    task_type: str
    task_deadline: float = 0.0
    """task.context.deadline as unix seconds; 0 when unset."""
    task_traceparent: str = ""
    """task.context.traceparent (W3C trace context of the caller), "" when unset."""
    error: str = ""
    """Non-empty when the request could not be parsed; the handler reports it."""

    @property
    def selector(self) -> router_pb2.Selector:
        return router_pb2.Selector.FromString(self.selector_bytes)


def _decode_reason(err: DecodeError) -> str:
    """The parser's reason without its type name (upb says "Error parsing
    message with type 'sutradhar.router.views.X': Wire format was corrupt",
    and the view's name means nothing to a caller)."""
    text = str(err)
    head, sep, reason = text.partition("': ")
    if sep and head.startswith("Error parsing message"):
        text = reason
    return text[:1].lower() + text[1:] if text else "it does not parse"


def split_route_request(data: bytes, request_type: str = EXECUTE_REQUEST) -> RouteRequest:
    """Split a serialized RouterServiceExecute(Stream)Request without decoding
    the task's payload. Never raises: a malformed request comes back with
    `error` set, naming `request_type` (the public message the caller sent).
    (Repeated occurrences of the task field follow "last one wins" here
    rather than merging; no client library splits a task.)"""
    try:
        view = _RouteRequestView.FromString(data)
    except DecodeError as err:
        return _malformed(request_type, f"the request bytes are not a valid message ({_decode_reason(err)})")
    task = view.task
    try:
        peek = _TaskView.FromString(task)
    except DecodeError as err:
        return _malformed(request_type, f"its task (field 1) is not a valid sutradhar.v1.Task ({_decode_reason(err)})")
    deadline = 0.0
    traceparent = ""
    if peek.HasField("context"):
        context = peek.context
        if context.HasField("deadline"):
            ts = context.deadline
            deadline = ts.seconds + ts.nanos / 1e9
        traceparent = context.traceparent
    return RouteRequest(
        b"\x0a" + encode_varint(len(task)) + task,
        view.selector.SerializeToString(deterministic=True),
        view.options if view.HasField("options") else _EMPTY_OPTIONS,
        peek.id,
        peek.type,
        deadline,
        traceparent,
    )


def split_route_stream_request(data: bytes) -> RouteRequest:
    """`split_route_request` for ExecuteStream (errors name its request type)."""
    return split_route_request(data, EXECUTE_STREAM_REQUEST)


def _malformed(request_type: str, why: str) -> RouteRequest:
    return RouteRequest(b"", b"", _EMPTY_OPTIONS, "", "", error=f"request is not a valid {request_type}: {why}")


def _record(number: int, payload: bytes) -> bytes:
    return encode_varint((number << 3) | 2) + encode_varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _record(number, text.encode())


def result_metadata_tail(instance_id: str, attempts: int, task_id: str = "") -> bytes:
    """Bytes to append to an ExecuteResponse so that result.metadata names
    the instance and the attempts (and the task id when the router assigned it)."""
    meta = _string(4, instance_id) + b"\x28" + encode_varint(attempts)
    if task_id:
        meta += _string(6, task_id)
    return _record(1, _record(4, meta))


def stream_result_tail(instance_id: str, attempts: int, task_id: str = "") -> bytes:
    """Like `result_metadata_tail` for a stream's final event (field 3: result)."""
    meta = _string(4, instance_id) + b"\x28" + encode_varint(attempts)
    if task_id:
        meta += _string(6, task_id)
    return _record(3, _record(4, meta))


def task_patch(*, task_id: str = "", deadline: float = 0.0) -> bytes:
    """ExecuteRequest bytes that set task.id and/or task.context.deadline
    (unix seconds) when appended to a task record (protobuf merges them)."""
    patch = _ExecuteRequestPatch()
    if task_id:
        patch.task.id = task_id
    if deadline:
        seconds = int(deadline)
        ts = patch.task.context.deadline
        ts.seconds = seconds
        ts.nanos = int((deadline - seconds) * 1e9)
    return patch.SerializeToString()


def is_stream_result(event: bytes) -> bool:
    """Is this ExecuteStreamResponse the final result event (field 3)?"""
    return bool(event) and event[0] == 0x1A


def stream_result_succeeded(event: bytes) -> bool:
    """`result.success` of a final stream event (see `is_stream_result`); an
    event that does not parse counts as failed."""
    try:
        return bool(_StreamResultView.FromString(event).result.success)
    except DecodeError:
        return False
