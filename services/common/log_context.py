"""`LogContextMiddleware`: the control plane's calls name themselves in log lines.

The registry, scheduler and health services put it in their middleware chain
(not the router: its routed calls stay free of per-call work; its warning and
error lines carry their fields with ``extra=``). Per call it sets the
`sutradhar._log_context.LogContext` of that call: the gRPC method, the
request's ``namespace`` field where the request has one, and the trace of the
call's ``traceparent`` metadata, or, where tracing is on, the ids of the call's
SERVER span (`services.common.tracing.TracingMiddleware`, at the same stage and
before this one in the list). It stays out of grpc.health.v1 and reflection.

At DEBUG (``--log-level DEBUG``) it also writes one line per finished call,
logger ``sutradhar.services.calls``: method, status code and duration (the
fields ``code`` and ``duration_ms`` in JSON). Above DEBUG that costs one level
check per call.

The value is set, not reset: gRPC aio runs every call in its own asyncio task,
so it ends with the call, and the chain's `Errors` stage (outside this one)
still sees it when it logs an unexpected error of the call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from sutradhar._log_context import LogContext, set_context, trace_from_traceparent, traceparent_of
from sutradhar._middleware import Method, Outcome, Stage, Streaming, Unary
from sutradhar._tracing import current_ids

#: The per-call DEBUG lines.
calls_log = logging.getLogger("sutradhar.services.calls")


def call_context(method: str, request: Any, context: grpc.aio.ServicerContext) -> LogContext:
    """The log context of one call of `method` (``/pkg.Service/Method``)."""
    namespace = getattr(request, "namespace", "")
    trace_id, span_id = current_ids()  # the call's span (`TracingMiddleware`, before this one), if any
    if not trace_id:
        trace_id, span_id = trace_from_traceparent(traceparent_of(context.invocation_metadata()))
    return LogContext(method=method, namespace=namespace if isinstance(namespace, str) else "",
                      trace_id=trace_id, span_id=span_id)


def _log_call(method: str, code: str, seconds: float) -> None:
    millis = seconds * 1000
    calls_log.debug("%s %s in %.1f ms", method, code, millis, extra={"code": code, "duration_ms": round(millis, 3)})


class LogContextMiddleware:
    """Sets each call's `LogContext` (see the module docstring)."""

    stage = Stage.TRACING

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """`call_next` with the call's log context set first."""
        if method.infrastructure:
            return call_next
        name = method.full_name

        def ended(status: str, error: BaseException | None, seconds: float) -> None:
            _log_call(name, status, seconds)

        async def logged(request: Any, context: grpc.aio.ServicerContext) -> Any:
            set_context(call_context(name, request, context))
            if not calls_log.isEnabledFor(logging.DEBUG):
                return await call_next(request, context)
            with Outcome(context, ended):
                return await call_next(request, context)

        return logged

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """`call_next` (a streaming response) with the call's log context set first."""
        if method.infrastructure:
            return call_next
        name = method.full_name

        def ended(status: str, error: BaseException | None, seconds: float) -> None:
            if calls_log.isEnabledFor(logging.DEBUG):
                _log_call(name, status, seconds)

        async def logged(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            set_context(call_context(name, request, context))
            with Outcome(context, ended):
                async for item in call_next(request, context):
                    yield item

        return logged
