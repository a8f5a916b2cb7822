"""Conversions between plain Python values and protobuf `Value`/`Struct`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2

JSON = Any
"""A JSON-like Python value: None, bool, int, float, str, list or dict."""


def to_value(data: JSON) -> struct_pb2.Value:
    """A protobuf Value holding `data` (JSON-like; other types raise TypeError)."""
    value = struct_pb2.Value()
    if data is None:
        value.null_value = struct_pb2.NULL_VALUE
        return value
    try:
        json_format.ParseDict(data, value)
    except json_format.ParseError as err:
        raise TypeError(f"value is not JSON-like: {err}") from err
    return value


def _plain(value: struct_pb2.Value) -> JSON:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: _plain(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


def from_value(value: struct_pb2.Value | None) -> JSON:
    """The Python value held by a protobuf Value (None when unset). NaN and
    infinities, which a Value can carry but JSON cannot, come back as floats."""
    if value is None or value.WhichOneof("kind") is None:
        return None
    try:
        return json_format.MessageToDict(value)
    except ValueError:  # a non-finite number somewhere
        return _plain(value)


def to_struct(data: dict[str, JSON] | None) -> struct_pb2.Struct:
    """A protobuf Struct holding a dict."""
    struct = struct_pb2.Struct()
    if data:
        json_format.ParseDict(data, struct)
    return struct


def from_struct(struct: struct_pb2.Struct | None) -> dict[str, JSON]:
    """The dict held by a protobuf Struct."""
    if struct is None:
        return {}
    try:
        return json_format.MessageToDict(struct)
    except ValueError:  # a non-finite number somewhere
        return {k: _plain(v) for k, v in struct.fields.items()}


def to_duration(delta: timedelta) -> duration_pb2.Duration:
    """A protobuf Duration from a timedelta."""
    out = duration_pb2.Duration()
    out.FromTimedelta(delta)
    return out


def from_duration(duration: duration_pb2.Duration, default: timedelta | None = None) -> timedelta | None:
    """A timedelta from a Duration; `default` when the Duration is zero (unset)."""
    if duration.seconds == 0 and duration.nanos == 0:
        return default
    return duration.ToTimedelta()
