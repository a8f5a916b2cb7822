"""The fast path: protobuf splicing so the task payload is never decoded.

`RouterServiceExecuteRequest` keeps the task in field 1, exactly where
`ExecuteRequest` keeps it, so the field-1 record *is* an ExecuteRequest.
`split_route_request` parses the request with private "view" messages that
declare the task as bytes (the C parser copies it, never decodes the
payload), parses the small selector and options, and peeks at the task's id,
type and context deadline through a second view that skips the payload.
On the way back, `ExecuteResponse` and `RouterServiceExecuteResponse` are
wire-identical.

The router's patches (a generated task id and the deadline on the way in;
``result.metadata.instance_id``, ``attempts`` and an assigned ``task_id`` on
the way back) are spliced into the serialized messages, never appended as a
second occurrence of a message field: the protobuf spec merges repeated
occurrences of a singular message field, but protobufjs (and so
@grpc/proto-loader) replaces the whole sub-message with the last one, which
lost the task's type and payload and the result's success and data. The
splice walks the fields of each enclosing message (skipping every other
field by its length, so the payload and the agent's data are never decoded),
rebuilds the one sub-message it patches with the patched fields in place of
the old ones, and recomputes the length prefixes on the way out: in the
bytes it emits every singular field it touches occurs once at each level.
The pieces are kept as zero-copy slices and joined once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
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


def _build_views() -> tuple[Any, Any, Any]:
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

    return cls("RouteRequestView"), cls("TaskView"), cls("StreamResultView")


_RouteRequestView, _TaskView, _StreamResultView = _build_views()

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


class MalformedMessage(ValueError):
    """Bytes the splice cannot walk: truncated, or not protobuf wire format."""


Buffer = bytes | memoryview
Parts = tuple[list[Buffer], int]
"""A message being rebuilt: its pieces (zero-copy slices where possible) and their total size."""


def _record(number: int, payload: bytes) -> bytes:
    return encode_varint((number << 3) | 2) + encode_varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _record(number, text.encode())


def _varint_at(buf: memoryview, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    value = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise MalformedMessage("a varint runs over 10 bytes")


def _skip_group(buf: memoryview, pos: int, number: int) -> int:
    """The position after the end-group key of group `number` that starts at `pos`."""
    while True:
        key, pos = _varint_at(buf, pos)
        wire_type = key & 7
        if wire_type == 4:
            if key >> 3 != number:
                raise MalformedMessage(f"group {number} is closed by the end of group {key >> 3}")
            return pos
        pos = _skip_value(buf, pos, wire_type, key >> 3)


def _skip_value(buf: memoryview, pos: int, wire_type: int, number: int) -> int:
    """The position after the value of a field of `wire_type` that starts at `pos`."""
    if wire_type == 0:
        while buf[pos] & 0x80:
            pos += 1
        return pos + 1
    if wire_type == 2:
        length, pos = _varint_at(buf, pos)
        return pos + length
    if wire_type == 1:
        return pos + 8
    if wire_type == 5:
        return pos + 4
    if wire_type == 3:
        return _skip_group(buf, pos, number)
    raise MalformedMessage(f"field {number} has the invalid wire type {wire_type}")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int, int, int]]:
    """(number, wire type, record start, value start, record end) of each field of a
    serialized message, in order, without decoding any value."""
    pos = 0
    end = len(buf)
    try:
        while pos < end:
            start = pos
            key = buf[pos]
            pos += 1
            if key & 0x80:
                key, pos = _varint_at(buf, start)
            number, wire_type = key >> 3, key & 7
            if number == 0:
                raise MalformedMessage("a field has number 0")
            if wire_type == 2:  # the common case, inline: a length of one byte
                length = buf[pos]
                pos += 1
                if length & 0x80:
                    length, pos = _varint_at(buf, pos - 1)
                value = pos
                pos += length
            else:
                value = pos
                pos = _skip_value(buf, pos, wire_type, number)
            if pos > end:
                raise MalformedMessage(f"field {number} runs past the end of its message")
            yield number, wire_type, start, value, pos
    except IndexError:
        raise MalformedMessage("the message is truncated") from None


_NOTHING: frozenset[int] = frozenset()


def _rewrite(
    buf: memoryview, *, drop: Collection[int] = _NOTHING, edit_number: int = 0,
    edit: Callable[[memoryview], Parts] | None = None, head: bytes = b"", tail: bytes = b"",
) -> Parts:
    """`buf` without the fields numbered in `drop`, `head` before the rest and
    `tail` after it; with `edit`, every occurrence of the message field
    `edit_number` becomes one occurrence (where the first was, else at the
    end) holding `edit` of their merged contents (concatenating occurrences is
    how protobuf merges them). Other fields are kept as they are, byte for byte."""
    parts: list[Buffer] = [head] if head else []
    size = len(buf) + len(head) + len(tail)
    merged: list[memoryview] = []
    slot = -1
    last = 0
    for number, wire_type, start, value, end in _fields(buf):
        if number == edit_number:
            if wire_type != 2:
                raise MalformedMessage(f"message field {number} has wire type {wire_type}, not 2")
            merged.append(buf[value:end])
        elif number not in drop:
            continue
        if start > last:
            parts.append(buf[last:start])
        size -= end - start
        last = end
        if slot < 0 and number == edit_number:
            slot = len(parts)
            parts.append(b"")
    if last < len(buf):
        parts.append(buf[last:])
    if edit is not None:
        content = merged[0] if len(merged) == 1 else memoryview(b"".join(merged))
        inner, inner_size = edit(content)
        header = encode_varint((edit_number << 3) | 2) + encode_varint(inner_size)
        if slot < 0:
            parts.append(header)
            parts.extend(inner)
        else:
            parts[slot:slot + 1] = [header, *inner]
        size += len(header) + inner_size
    if tail:
        parts.append(tail)
    return parts, size


def _joined(parts: Parts) -> bytes:
    return b"".join(parts[0])


def result_metadata_fields(instance_id: str, attempts: int, task_id: str = "") -> bytes:
    """The ResultMetadata fields the router sets, serialized: instance_id,
    attempts, and task_id when the router assigned it (see `set_result_metadata`)."""
    meta = _string(4, instance_id) + b"\x28" + encode_varint(attempts)
    if task_id:
        meta += _string(6, task_id)
    return meta


def _set_metadata(data: bytes, result_field: int, fields: bytes) -> bytes:
    fields_view = memoryview(fields)
    replaced = {number for number, _, _, _, _ in _fields(fields_view)}

    def metadata(meta: memoryview) -> Parts:
        return _rewrite(meta, drop=replaced, tail=fields)

    def result(res: memoryview) -> Parts:
        return _rewrite(res, edit_number=4, edit=metadata)

    return _joined(_rewrite(memoryview(data), edit_number=result_field, edit=result))


def set_result_metadata(response: bytes, fields: bytes) -> bytes:
    """A serialized ExecuteResponse with `fields` (`result_metadata_fields`)
    set in result.metadata in place of the agent's values of those fields.
    Raises `MalformedMessage` when the response is not protobuf wire format."""
    return _set_metadata(response, 1, fields)


def set_stream_result_metadata(event: bytes, fields: bytes) -> bytes:
    """`set_result_metadata` for a stream's final event (field 3: result)."""
    return _set_metadata(event, 3, fields)


def patch_task(task_record: bytes, *, task_id: str = "", deadline: float = 0.0) -> bytes:
    """The ExecuteRequest `task_record` (see `RouteRequest`) with task.id set
    to `task_id` and/or task.context.deadline to `deadline` (unix seconds),
    each in place of the old value; the payload is copied, never decoded.
    Raises `MalformedMessage` when the record is not protobuf wire format
    (never for a record `split_route_request` made)."""
    if not task_id and not deadline:
        return task_record
    head = _string(1, task_id) if task_id else b""
    context_edit: Callable[[memoryview], Parts] | None = None
    if deadline:
        seconds = int(deadline)
        nanos = int((deadline - seconds) * 1e9)
        timestamp = (b"\x08" + encode_varint(seconds) if seconds else b"") + (
            b"\x10" + encode_varint(nanos) if nanos else b"")
        deadline_record = _record(4, timestamp)

        def context(ctx: memoryview) -> Parts:
            return _rewrite(ctx, drop=(4,), tail=deadline_record)

        context_edit = context

    def task(body: memoryview) -> Parts:
        return _rewrite(body, drop=(1,) if task_id else _NOTHING, edit_number=4 if deadline else 0,
                        edit=context_edit, head=head)

    return _joined(_rewrite(memoryview(task_record), edit_number=1, edit=task))


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
