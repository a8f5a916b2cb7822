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
lost the task's type and payload and the result's success and data. In the
bytes emitted, `task`, `task.context`, `result` and `result.metadata` occur
once, and so does each field the router sets in them; everything else is
kept byte for byte and never decoded. Two ways, by size (same output to
every decoder; `SPLICE_VIEWS_UP_TO`):

- small messages go through patch views: private messages that declare only
  the fields on the path to what is patched, so upb keeps the payload, the
  agent's data and every other field as unknown fields (raw bytes), the
  patch is set, upb serializes (known fields first, then the unknown ones);
- large ones are walked in Python (`_splice`): the fields of each enclosing
  message are scanned, skipping every value by its length; the one
  sub-message patched (context, metadata) is rebuilt through its view; the
  length prefixes are recomputed; the pieces are zero-copy slices of the
  input joined once, so the payload is copied once, not three times.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _build_views() -> dict[str, Any]:
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
        ("tracestate", 6, field.TYPE_STRING, ""),
    ])
    message("TaskView", [
        ("id", 1, field.TYPE_STRING, ""),
        ("type", 2, field.TYPE_STRING, ""),
        ("context", 4, field.TYPE_MESSAGE, ".sutradhar.router.views.ContextView"),
    ])
    # The sub-messages the router patches, each declaring only the fields it sets: parsed, patched and
    # serialized again, the other fields pass through as unknown fields, byte for byte.
    message("ContextPatch", [("deadline", 4, field.TYPE_MESSAGE, ".google.protobuf.Timestamp")])
    message("TaskPatch", [
        ("id", 1, field.TYPE_STRING, ""),
        ("context", 4, field.TYPE_MESSAGE, ".sutradhar.router.views.ContextPatch"),
    ])
    message("ExecuteRequestPatch", [("task", 1, field.TYPE_MESSAGE, ".sutradhar.router.views.TaskPatch")])
    message("MetadataPatch", [
        ("instance_id", 4, field.TYPE_STRING, ""),
        ("attempts", 5, field.TYPE_INT32, ""),
        ("task_id", 6, field.TYPE_STRING, ""),
    ])
    message("ResultPatch", [("metadata", 4, field.TYPE_MESSAGE, ".sutradhar.router.views.MetadataPatch")])
    message("ExecuteResponsePatch", [("result", 1, field.TYPE_MESSAGE, ".sutradhar.router.views.ResultPatch")])
    message("StreamResultPatch", [("result", 3, field.TYPE_MESSAGE, ".sutradhar.router.views.ResultPatch")])
    # A stream's final event read for `result.success` only (the data is skipped).
    message("ResultView", [("success", 1, field.TYPE_BOOL, "")])
    message("StreamResultView", [("result", 3, field.TYPE_MESSAGE, ".sutradhar.router.views.ResultView")])
    # A unary answer read the same way: the wire format is checked, the agent's data kept as unknown bytes.
    message("ExecuteResponseView", [("result", 1, field.TYPE_MESSAGE, ".sutradhar.router.views.ResultView")])
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(fdp.name)
    except KeyError:
        pool.Add(fdp)

    def cls(name: str) -> type[Message]:
        found: type[Message] = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"sutradhar.router.views.{name}"))
        return found

    return {m.name: cls(m.name) for m in fdp.message_type}


_VIEWS = _build_views()
_RouteRequestView = _VIEWS["RouteRequestView"]
_TaskView = _VIEWS["TaskView"]
_StreamResultView = _VIEWS["StreamResultView"]
_ExecuteResponseView = _VIEWS["ExecuteResponseView"]
_ContextPatch = _VIEWS["ContextPatch"]
_MetadataPatch = _VIEWS["MetadataPatch"]
_ExecuteRequestPatch = _VIEWS["ExecuteRequestPatch"]
_RESULT_PATCHES = {1: _VIEWS["ExecuteResponsePatch"], 3: _VIEWS["StreamResultPatch"]}

#: Messages up to this many bytes are patched through the views above (upb parses,
#: the patch is set, upb serializes: the fastest for small messages, a few
#: microseconds, but three copies of the payload); larger ones are spliced in
#: Python (`_splice`: a constant ten or so microseconds and one copy).
SPLICE_VIEWS_UP_TO = 64 * 1024

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
    task_tracestate: str = ""
    """task.context.tracestate (the caller's W3C trace state), "" when unset."""
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
    return _route_request(task, peek, view)


def _route_request(task_bytes: bytes, task: Any, request: Any) -> RouteRequest:
    """The RouteRequest of a serialized task, the task (or its view) it holds, and the request
    (or its view) holding the selector and options."""
    deadline = 0.0
    traceparent = tracestate = ""
    if task.HasField("context"):
        context = task.context
        if context.HasField("deadline"):
            ts = context.deadline
            deadline = ts.seconds + ts.nanos / 1e9
        traceparent = context.traceparent
        tracestate = context.tracestate
    return RouteRequest(
        b"\x0a" + encode_varint(len(task_bytes)) + task_bytes,
        request.selector.SerializeToString(deterministic=True),
        request.options if request.HasField("options") else _EMPTY_OPTIONS,
        task.id,
        task.type,
        deadline,
        traceparent,
        tracestate,
    )


def split_route_stream_request(data: bytes) -> RouteRequest:
    """`split_route_request` for ExecuteStream (errors name its request type)."""
    return split_route_request(data, EXECUTE_STREAM_REQUEST)


def _malformed(request_type: str, why: str) -> RouteRequest:
    return RouteRequest(b"", b"", _EMPTY_OPTIONS, "", "", error=f"request is not a valid {request_type}: {why}")


class MalformedMessage(ValueError):
    """Bytes the splice cannot walk: truncated, or not protobuf wire format."""


Parts = tuple[list[bytes | memoryview], int]
"""A message being rebuilt: its pieces (zero-copy slices of the input where
possible) and their total size; joined once, at the outermost level."""


def _record(number: int, payload: bytes) -> bytes:
    return encode_varint((number << 3) | 2) + encode_varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _record(number, text.encode())


def _varint_at(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    value = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise MalformedMessage("a varint runs over 10 bytes")


def _skip(buf: bytes, pos: int, key: int) -> int:
    """The position after the value of the field `key` (a field key: number and
    wire type) that starts at `pos`; groups are skipped whole."""
    wire_type = key & 7
    if wire_type == 0:
        while buf[pos] > 0x7F:
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
        while True:
            inner, pos = _varint_at(buf, pos)
            if inner & 7 == 4:
                if inner >> 3 != key >> 3:
                    raise MalformedMessage(f"group {key >> 3} is closed as group {inner >> 3}")
                return pos
            pos = _skip(buf, pos, inner)
    raise MalformedMessage(f"field {key >> 3} has the invalid wire type {wire_type}")


def _fields(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """(key, record start, value start, record end) of each field of the message
    in buf[pos:end], without decoding (or copying) any value."""
    out: list[tuple[int, int, int, int]] = []
    try:
        while pos < end:
            start = pos
            key = buf[pos]
            pos += 1
            if key > 0x7F:
                key, pos = _varint_at(buf, start)
            if key < 8:
                raise MalformedMessage("a field has number 0")
            if key & 7 == 2:  # the common case inline: a length-delimited field
                length = buf[pos]
                pos += 1
                if length > 0x7F:
                    length, pos = _varint_at(buf, pos - 1)
                value = pos
                pos += length
            else:
                value = pos
                pos = _skip(buf, pos, key)
            out.append((key, start, value, pos))
    except IndexError:
        raise MalformedMessage("the message is truncated") from None
    if pos > end:
        raise MalformedMessage("a field runs past the end of its message")
    return out


def _splice(
    buf: bytes, start: int, end: int, number: int, edit: Callable[[bytes, int, int], Parts] | None,
    *, drop: int = 0, head: bytes = b"",
) -> Parts:
    """The message in buf[start:end] with every occurrence of its message field
    `number` made one (where the first was, else at the end) holding `edit` of
    their merged contents (occurrences concatenated: protobuf's merge), every
    occurrence of field `drop` left out, and `head` first. The other fields
    stay as they are, byte for byte, as slices of `buf`. Without `edit` (and
    `number` 0), only `drop` and `head` apply."""
    key = (number << 3) | 2
    view = memoryview(buf)
    pieces: list[bytes | memoryview] = [head] if head else []
    size = len(head)
    contents: list[tuple[int, int]] = []
    slot = -1
    last = start
    for field_key, field_start, value, field_end in _fields(buf, start, end):
        if field_key == key:
            contents.append((value, field_end))
        elif field_key >> 3 == number:
            raise MalformedMessage(f"message field {number} has wire type {field_key & 7}, not 2")
        elif field_key >> 3 != drop:
            continue
        if field_start > last:
            pieces.append(view[last:field_start])
            size += field_start - last
        last = field_end
        if slot < 0 and field_key == key:
            slot = len(pieces)
            pieces.append(b"")
    if last < end:
        pieces.append(view[last:end])
        size += end - last
    if edit is None:
        return pieces, size
    if len(contents) == 1:
        inner, inner_size = edit(buf, *contents[0])
    else:
        merged = b"".join(view[value:field_end] for value, field_end in contents)
        inner, inner_size = edit(merged, 0, len(merged))
    header = encode_varint(key) + encode_varint(inner_size)
    if slot < 0:
        pieces.append(header)
        pieces.extend(inner)
    else:
        pieces[slot:slot + 1] = [header, *inner]
    return pieces, size + len(header) + inner_size


def _leaf(view_cls: Any, patch: Callable[[Any], None]) -> Callable[[bytes, int, int], Parts]:
    """An `edit` that rebuilds a small sub-message with upb: parsed as `view_cls`
    (a view declaring only the fields patched; the others are kept as unknown
    fields, byte for byte), patched, serialized."""

    def edit(buf: bytes, start: int, end: int) -> Parts:
        message = _parsed(view_cls, buf[start:end])
        patch(message)
        data: bytes = message.SerializeToString()
        return [data], len(data)

    return edit


def result_metadata_fields(instance_id: str, attempts: int, task_id: str = "") -> bytes:
    """The ResultMetadata fields the router sets, serialized: instance_id,
    attempts, and task_id when the router assigned it (see `set_result_metadata`)."""
    meta = _string(4, instance_id) + b"\x28" + encode_varint(attempts)
    if task_id:
        meta += _string(6, task_id)
    return meta


def _parsed(view_cls: Any, data: bytes) -> Any:
    try:
        return view_cls.FromString(data)
    except DecodeError as err:
        raise MalformedMessage(_decode_reason(err)) from None


def _set_metadata(data: bytes, result_field: int, fields: bytes) -> bytes:
    if len(data) <= SPLICE_VIEWS_UP_TO:
        response = _parsed(_RESULT_PATCHES[result_field], data)
        response.result.metadata.MergeFromString(fields)
        spliced: bytes = response.SerializeToString()
        return spliced
    metadata = _leaf(_MetadataPatch, lambda meta: meta.MergeFromString(fields))

    def result(buf: bytes, start: int, end: int) -> Parts:
        return _splice(buf, start, end, 4, metadata)

    pieces, _ = _splice(data, 0, len(data), result_field, result)
    return b"".join(pieces)


def set_result_metadata(response: bytes, fields: bytes) -> bytes:
    """A serialized ExecuteResponse with `fields` (`result_metadata_fields`)
    set in result.metadata in place of the agent's values of those fields: one
    `result`, one `metadata`, the agent's data copied, never decoded. Raises
    `MalformedMessage` when the response is not protobuf wire format."""
    return _set_metadata(response, 1, fields)


def set_stream_result_metadata(event: bytes, fields: bytes) -> bytes:
    """`set_result_metadata` for a stream's final event (field 3: result)."""
    return _set_metadata(event, 3, fields)


def patch_task(task_record: bytes, *, task_id: str = "", deadline: float = 0.0) -> bytes:
    """The ExecuteRequest `task_record` (see `RouteRequest`) with task.id set
    to `task_id` and/or task.context.deadline to `deadline` (unix seconds),
    each in place of the old value: one `task`, one `context`, the payload
    copied, never decoded. Raises `MalformedMessage` when the record is not
    protobuf wire format (never for a record `split_route_request` made)."""
    if not task_id and not deadline:
        return task_record
    seconds = int(deadline)
    nanos = int((deadline - seconds) * 1e9)

    def set_deadline(context: Any) -> None:
        context.ClearField("deadline")  # the whole Timestamp replaced, never merged
        context.deadline.seconds = seconds
        context.deadline.nanos = nanos

    if len(task_record) <= SPLICE_VIEWS_UP_TO:
        request = _parsed(_ExecuteRequestPatch, task_record)
        if task_id:
            request.task.id = task_id
        if deadline:
            set_deadline(request.task.context)
        patched: bytes = request.SerializeToString()
        return patched
    context = _leaf(_ContextPatch, set_deadline) if deadline else None
    head = _string(1, task_id) if task_id else b""

    def task(buf: bytes, start: int, end: int) -> Parts:
        return _splice(buf, start, end, 4 if deadline else 0, context, drop=1 if task_id else 0, head=head)

    pieces, _ = _splice(task_record, 0, len(task_record), 1, task)
    return b"".join(pieces)


def is_stream_result(event: bytes) -> bool:
    """Is this ExecuteStreamResponse the final result event (field 3)?"""
    return bool(event) and event[0] == 0x1A


def response_succeeded(response: bytes) -> bool:
    """`result.success` of a serialized ExecuteResponse, without decoding the agent's data (upb
    checks the wire format and keeps the rest as unknown fields). DecodeError when it is not
    protobuf wire format."""
    return bool(_ExecuteResponseView.FromString(response).result.success)


def stream_result_succeeded(event: bytes) -> bool:
    """`result.success` of a final stream event (see `is_stream_result`); an
    event that does not parse counts as failed."""
    try:
        return bool(_StreamResultView.FromString(event).result.success)
    except DecodeError:
        return False
