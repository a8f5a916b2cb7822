"""The per-call logging context: what a log line says about the call it was written in.

One `contextvars.ContextVar` holds a `LogContext` for the call being served.
Code sets it where it knows the fields, once per call:

- an SDK agent's servicer around `execute` (request id, task id, agent,
  instance, namespace, the trace of the task's ``traceparent``);
- the control plane's `LogContextMiddleware` (namespace and method of the
  request, the trace of the call's ``traceparent`` metadata);
- the router passes fields with ``extra=`` on its warning and error lines
  instead (setting a context per routed call would cost on the hot path).

The JSON log formatter (`sutradhar._logs.JsonFormatter`) reads it for every
record. gRPC aio runs each call in its own asyncio task with its own copy of
the context, so a value set while serving one call is seen by that call's
code (and by the tasks it starts) and by no other call.

Where tracing is on (`sutradhar._tracing`) and the call has a span, `trace_id` /
`span_id` are that span's (set through `bind` / `set_context` by the code that
starts it: the agent servicer, `TracingMiddleware`); otherwise they come from
the W3C ``traceparent`` the call carried (`trace_from_traceparent`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from typing import Any, Final

#: The fields of a `LogContext`, in the order a JSON log line shows them.
FIELDS: Final = ("request_id", "task_id", "trace_id", "span_id", "namespace", "agent", "instance", "method")


@dataclass(frozen=True, slots=True)
class LogContext:
    """What is known of the call a log record is written in; empty: not known or not applicable."""

    request_id: str = ""
    """The caller's request id (a task's ``context.request_id``), else the task id."""
    task_id: str = ""
    """The task being executed (SDK agents)."""
    trace_id: str = ""
    """W3C trace id, 32 lower-case hex digits."""
    span_id: str = ""
    """W3C span (parent) id, 16 lower-case hex digits."""
    namespace: str = ""
    """Namespace the call is about."""
    agent: str = ""
    """Agent id."""
    instance: str = ""
    """Instance id."""
    method: str = ""
    """gRPC method, ``/package.Service/Method``."""

    def items(self) -> Iterator[tuple[str, str]]:
        """The non-empty fields as (name, value), in `FIELDS` order."""
        for name in FIELDS:
            value = getattr(self, name)
            if value:
                yield name, value


assert tuple(f.name for f in fields(LogContext)) == FIELDS

EMPTY: Final = LogContext()

_CONTEXT: ContextVar[LogContext] = ContextVar("sutradhar_log_context", default=EMPTY)


def current() -> LogContext:
    """The context of the call this code runs in (`EMPTY` outside any)."""
    return _CONTEXT.get()


def set_context(context: LogContext) -> None:
    """Make `context` the current one for the rest of this task (and the tasks it starts).

    Used where a call runs in a task of its own (every gRPC aio call does), so
    the value ends with the call; elsewhere use `bind`."""
    _CONTEXT.set(context)


@contextlib.contextmanager
def bind(**values: str) -> Iterator[LogContext]:
    """Add `values` (fields of `LogContext`; empty strings leave a field as it
    is) to the current context inside the ``with`` block, then restore it."""
    base = _CONTEXT.get()
    token = _CONTEXT.set(replace(base, **{k: v for k, v in values.items() if v}))
    try:
        yield _CONTEXT.get()
    finally:
        _CONTEXT.reset(token)


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


def traceparent_parts(value: str) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) in lower-case hex of a W3C ``traceparent``
    header value, or None when it is missing or malformed (version ff, an all-zero
    id, a version 00 header with extra fields) as the W3C Trace Context spec says."""
    match = _TRACEPARENT.match(value.strip().lower()) if value else None
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:
        return None
    if version == "00" and len(value.strip()) != 55:
        return None
    return trace_id, span_id, flags


def trace_from_traceparent(value: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C ``traceparent`` header value, or
    ("", "") when it is missing or malformed (`traceparent_parts`)."""
    parts = traceparent_parts(value)
    return ("", "") if parts is None else (parts[0], parts[1])


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode(errors="replace")


def traceparent_of(metadata: Any) -> str:
    """The ``traceparent`` value in gRPC invocation metadata (pairs of key and value), or ""."""
    for key, value in metadata or ():
        if key == "traceparent":
            return _text(value)
    return ""


def header_safe(value: str) -> bool:
    """Whether `value` can be sent as an HTTP header or gRPC metadata value as it is: printable
    ASCII (a W3C ``tracestate`` is nothing else), so a malformed one is dropped instead of
    failing the call that would carry it."""
    return value.isascii() and value.isprintable()


def trace_context_of(metadata: Any, task_traceparent: str, task_tracestate: str) -> tuple[str, str]:
    """(``traceparent``, ``tracestate``) of a call: the gRPC metadata's when it carries a
    ``traceparent`` (its ``tracestate`` entries joined with ",", as W3C says of repeated headers),
    else the task's own ``context.traceparent`` and ``context.tracestate``. The one rule of
    which trace context a call continues: the router, the direct client's agents and SDK agents
    all read it here. ``tracestate`` is "" when it cannot travel as a header (`header_safe`);
    its syntax is checked where a span context is made of it (`sutradhar._tracing`)."""
    traceparent = ""
    states: list[str] = []
    for key, value in metadata or ():
        if key == "traceparent":
            traceparent = traceparent or _text(value)
        elif key == "tracestate":
            states.append(_text(value))
    if traceparent:
        state = ",".join(part.strip() for part in states if part.strip())
    else:
        traceparent, state = task_traceparent, task_tracestate.strip()
    return traceparent, (state if state and header_safe(state) else "")


__all__ = [
    "EMPTY",
    "FIELDS",
    "LogContext",
    "bind",
    "current",
    "header_safe",
    "set_context",
    "trace_context_of",
    "trace_from_traceparent",
    "traceparent_of",
    "traceparent_parts",
]
