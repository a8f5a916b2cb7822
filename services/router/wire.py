"""The fast path: protobuf splicing so the task payload is never decoded.

`RouterServiceExecuteRequest` keeps the task in field 1, exactly where
`ExecuteRequest` keeps it, so the bytes of field 1 *are* an ExecuteRequest.
`split_route_request` walks the top-level fields only (skipping the task by
its length), parses the small selector and options, and peeks at the task's
id and type. On the way back, `ExecuteResponse` and
`RouterServiceExecuteResponse` are wire-identical; the router appends a
serialized fragment that sets ``result.metadata.instance_id`` and
``attempts`` (protobuf merges repeated occurrences of a message field, and
the last scalar wins), again without decoding the agent's data.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from sutradhar.v1 import router_pb2

_EMPTY_OPTIONS = router_pb2.RouteOptions()


class WireError(ValueError):
    """The bytes are not a valid protobuf message of the expected shape."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _skip(buf: bytes, pos: int, wire_type: int) -> int:
    if wire_type == 0:
        return _varint(buf, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 2:
        length, pos = _varint(buf, pos)
        return pos + length
    if wire_type == 5:
        return pos + 4
    raise WireError(f"unsupported wire type {wire_type}")


def fields(buf: bytes) -> list[tuple[int, int, int, int, int]]:
    """Top-level fields of a message: (number, wire_type, start, value_start, end).
    For length-delimited fields value_start..end is the payload."""
    out = []
    pos = 0
    n = len(buf)
    while pos < n:
        start = pos
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == 2:
            length, pos = _varint(buf, pos)
            value_start, end = pos, pos + length
        else:
            value_start, end = pos, _skip(buf, pos, wire_type)
        if end > n:
            raise WireError("truncated field")
        out.append((number, wire_type, start, value_start, end))
        pos = end
    return out


@dataclass
class RouteRequest:
    """A routed task as the router needs it: the task still as bytes."""

    task_record: bytes
    """Field 1 records, as they were: a valid ExecuteRequest on their own."""
    selector_bytes: bytes
    """The serialized Selector (cache key for candidate selection)."""
    options: router_pb2.RouteOptions
    task_id: str
    task_type: str
    task_deadline: float = 0.0
    """task.context.deadline as unix seconds; 0 when unset."""
    error: str = ""
    """Non-empty when the request could not be parsed; the handler reports it."""

    @property
    def selector(self) -> router_pb2.Selector:
        return router_pb2.Selector.FromString(self.selector_bytes)


def _timestamp(buf: bytes) -> float:
    seconds = nanos = 0
    for number, wire_type, _start, vs, _end in fields(buf):
        if wire_type == 0 and number == 1:
            seconds = _varint(buf, vs)[0]
        elif wire_type == 0 and number == 2:
            nanos = _varint(buf, vs)[0]
    return seconds + nanos / 1e9


def _context_deadline(context: bytes) -> float:
    deadline = 0.0
    for number, wire_type, _start, vs, end in fields(context):
        if number == 4 and wire_type == 2:
            deadline = _timestamp(context[vs:end]) or deadline
    return deadline


def _peek_task(task: bytes) -> tuple[str, str, float]:
    task_id = task_type = ""
    deadline = 0.0
    for number, wire_type, _start, vs, end in fields(task):
        if wire_type != 2:
            continue
        if number == 1:
            task_id = task[vs:end].decode("utf-8")
        elif number == 2:
            task_type = task[vs:end].decode("utf-8")
        elif number == 4:
            deadline = _context_deadline(task[vs:end]) or deadline
    return task_id, task_type, deadline


def split_route_request(data: bytes) -> RouteRequest:
    """Split a serialized RouterServiceExecute(Stream)Request. Never raises:
    a malformed request comes back with `error` set."""
    try:
        task_parts = []
        selector_parts = []
        options_parts = []
        task_id = task_type = ""
        task_deadline = 0.0
        for number, wire_type, start, vs, end in fields(data):
            if wire_type != 2:
                continue
            if number == 1:
                task_parts.append(data[start:end])
                tid, ttype, tdeadline = _peek_task(data[vs:end])
                task_id = tid or task_id
                task_type = ttype or task_type
                task_deadline = tdeadline or task_deadline
            elif number == 2:
                selector_parts.append(data[vs:end])
            elif number == 3:
                options_parts.append(data[vs:end])
        options = (
            router_pb2.RouteOptions.FromString(b"".join(options_parts)) if options_parts else _EMPTY_OPTIONS
        )
        selector_bytes = b"".join(selector_parts)
        if len(selector_parts) > 1:
            # Normalize so equal selectors share one cache entry.
            selector_bytes = router_pb2.Selector.FromString(selector_bytes).SerializeToString(deterministic=True)
        else:
            router_pb2.Selector.FromString(selector_bytes)  # validates (upb, microseconds)
        task_record = task_parts[0] if len(task_parts) == 1 else b"".join(task_parts)
        return RouteRequest(task_record, selector_bytes, options, task_id, task_type, task_deadline)
    except (WireError, DecodeError, UnicodeDecodeError) as err:
        return RouteRequest(b"", b"", _EMPTY_OPTIONS, "", "", error=f"malformed request: {err}")


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


def task_id_patch(task_id: str) -> bytes:
    """ExecuteRequest bytes that set task.id (appended to a task record)."""
    return _record(1, _string(1, task_id))


def task_deadline_patch(unix_seconds: float) -> bytes:
    """ExecuteRequest bytes that set task.context.deadline (appended)."""
    seconds = int(unix_seconds)
    nanos = int((unix_seconds - seconds) * 1e9)
    ts = b"\x08" + encode_varint(seconds)
    if nanos:
        ts += b"\x10" + encode_varint(nanos)
    return _record(1, _record(4, _record(4, ts)))


def is_stream_result(event: bytes) -> bool:
    """Is this ExecuteStreamResponse the final result event (field 3)?"""
    return bool(event) and event[0] == 0x1A
