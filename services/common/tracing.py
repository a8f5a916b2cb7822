"""Spans of the mesh services: the router's routed calls and attempts, the control plane's RPCs and etcd calls.

Tracing is on when `sutradhar._tracing.setup` found ``OTEL_*`` asking for it
(the services call it at start with their name); off, `RouterTracing.create`
gives None, `TracingMiddleware` stays out of every method and `etcd_span`
yields at once.

The router (`RouterTracing`) propagates by hand: per routed call it reads
``traceparent`` and ``tracestate`` from the gRPC metadata (else the task's
``context.traceparent`` and ``context.tracestate``) and
takes the sampler's decision itself (`sutradhar._tracing.Sampling`). Unsampled,
it makes no span: the call gets a `Forward` that hands every attempt the
caller's ``traceparent`` and ``tracestate`` unchanged (a new unsampled one when the caller sent
none, so the agent does not start a trace of its own). Sampled, it gets a
`CallTrace`: a SERVER span for the routed call and a CLIENT span per attempt,
each attempt's context sent to the agent as its ``traceparent`` and ``tracestate``. The decision,
`Forward`, `CallTrace` and the attempts' attributes are the SDK's
(`sutradhar._route_tracing`), which the direct client traces its calls with too.

Names and attributes follow the OpenTelemetry RPC semantic conventions: the span
name is the fully qualified method (``sutradhar.v1.RouterService/Execute``),
``rpc.system.name`` ``grpc``, ``rpc.method``, ``rpc.response.status_code`` (the
status name), ``error.type`` on failures, ``server.address`` / ``server.port``; an
attempt on an HTTP agent has the HTTP client attributes instead (`attempt_attributes`).
The mesh's own attributes are under ``sutradhar.``: namespace, agent, instance,
attempt number, breaker state; ejections and retries are span events.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc

from sutradhar import _tracing
from sutradhar._log_context import trace_context_of
from sutradhar._middleware import Method, Outcome, Stage, Streaming, Unary
from sutradhar._route_tracing import (
    AGENT_EXECUTE,
    AGENT_EXECUTE_STREAM,
    ROUTER_EXECUTE,
    ROUTER_EXECUTE_STREAM,
    CallTrace,
    Forward,
    attempt_attributes,
    split_address,
    start_call,
)
from sutradhar._tracing import end_span, remote_parent


def configure_tracing(service: str) -> bool:
    """Turn tracing on at a service's start when ``OTEL_*`` asks for it (before its servers are
    built: middleware is composed then); whether it is on. SystemExit with one line for a
    malformed ``OTEL_*`` value or a missing OpenTelemetry install. Queued spans are exported
    at exit (the provider's exit hook)."""
    try:
        return _tracing.setup(service)
    except (ValueError, ImportError) as err:
        raise SystemExit(f"error: {err}") from None


class RouterTracing:
    """The router's tracing: `start` per routed call (see the module docstring)."""

    def __init__(self, state: Any, address: str) -> None:
        from opentelemetry.trace import SpanKind

        self._state = state
        self._tracer = state.tracer("sutradhar.router")
        self._server = SpanKind.SERVER
        host, port = split_address(address)
        peer = {"server.address": host, **({"server.port": port} if port is not None else {})}
        self._unary = {"rpc.system.name": "grpc", "rpc.method": ROUTER_EXECUTE, **peer}
        self._stream = {"rpc.system.name": "grpc", "rpc.method": ROUTER_EXECUTE_STREAM, **peer}

    @classmethod
    def create(cls, address: str) -> RouterTracing | None:
        """The router's tracing, None while tracing is off; `address` is where the router listens."""
        state = _tracing.active()
        return None if state is None else cls(state, address)

    def start(self, metadata: Any, task_traceparent: str, task_tracestate: str = "",
              stream: bool = False) -> Forward | CallTrace:
        """The trace of one routed call, from the caller's context (metadata first, then the
        task's: `trace_context_of`)."""
        value, state = trace_context_of(metadata, task_traceparent, task_tracestate)
        parent = _tracing.parse_traceparent(value) if value else None
        if parent is not None:
            value = value.strip().lower()
        if stream:
            return start_call(self._state, self._tracer, parent, value, None, ROUTER_EXECUTE_STREAM, self._server,
                              self._stream, AGENT_EXECUTE_STREAM, True, state)
        return start_call(self._state, self._tracer, parent, value, None, ROUTER_EXECUTE, self._server,
                          self._unary, AGENT_EXECUTE, True, state)


class TracingMiddleware:
    """A SERVER span around every control-plane RPC (not grpc.health.v1 or reflection), under
    the caller's ``traceparent``, current while the handler runs (so etcd calls nest under it and
    the log context names it). Put it before `LogContextMiddleware` in the list: same stage."""

    stage = Stage.TRACING

    def __init__(self, service: str) -> None:
        self.service = service

    def _tracer(self) -> Any:
        state = _tracing.active()
        return None if state is None else state.tracer(f"sutradhar.{self.service}")

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """`call_next` inside the call's span (unchanged while tracing is off)."""
        tracer = self._tracer()
        if tracer is None or method.infrastructure:
            return call_next
        name = method.full_name.lstrip("/")

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with _server_span(tracer, name, context):
                return await call_next(request, context)

        return traced

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """`call_next` (a streaming response) inside the call's span (unchanged while tracing is off)."""
        tracer = self._tracer()
        if tracer is None or method.infrastructure:
            return call_next
        name = method.full_name.lstrip("/")

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with _server_span(tracer, name, context):
                async for item in call_next(request, context):
                    yield item

        return traced


@contextlib.contextmanager
def _server_span(tracer: Any, name: str, context: grpc.aio.ServicerContext) -> Iterator[None]:
    """A SERVER span named `name` under the call's ``traceparent`` (and ``tracestate``), current inside the block and
    ended when the block is left, with the status the call ends with (`Outcome`)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    parent_context = remote_parent(*trace_context_of(context.invocation_metadata(), "", ""))
    span = tracer.start_span(name, context=parent_context, kind=SpanKind.SERVER,
                             attributes={"rpc.system.name": "grpc", "rpc.method": name})

    def ended(status: str, error: BaseException | None, seconds: float) -> None:
        end_span(span, status, error, server=True)

    with (trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False),
          Outcome(context, ended)):
        yield


@contextlib.contextmanager
def etcd_span(operation: str) -> Iterator[None]:
    """A CLIENT span of one etcd call (``etcd <operation>``) under the current span; nothing while
    tracing is off or outside a traced call (a background loop's etcd traffic makes no root spans)."""
    state = _tracing.active()
    if state is None:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    if not trace.get_current_span().get_span_context().is_valid:
        yield
        return
    tracer = state.tracer("sutradhar.etcd")
    attributes = {"db.system.name": "etcd", "db.operation.name": operation}
    with tracer.start_as_current_span(f"etcd {operation}", kind=SpanKind.CLIENT, attributes=attributes,
                                      record_exception=False, set_status_on_exception=False) as span:
        try:
            yield
        except BaseException as err:
            span.set_attribute("error.type", type(err).__name__)
            span.set_status(Status(StatusCode.ERROR, str(err)[:512]))
            raise


__all__ = [
    "AGENT_EXECUTE",
    "AGENT_EXECUTE_STREAM",
    "ROUTER_EXECUTE",
    "ROUTER_EXECUTE_STREAM",
    "CallTrace",
    "Forward",
    "RouterTracing",
    "TracingMiddleware",
    "attempt_attributes",
    "configure_tracing",
    "etcd_span",
    "split_address",
]
