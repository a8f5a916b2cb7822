"""Spans of the mesh services: the router's routed calls and attempts, the control plane's RPCs and etcd calls.

Tracing is on when `sutradhar._tracing.setup` found ``OTEL_*`` asking for it
(the services call it at start with their name); off, `RouterTracing.create`
gives None, `TracingMiddleware` stays out of every method and `etcd_span`
yields at once.

The router (`RouterTracing`) propagates by hand: per routed call it reads
``traceparent`` from the gRPC metadata (else ``task.context.traceparent``) and
takes the sampler's decision itself (`sutradhar._tracing.Sampling`). Unsampled,
it makes no span: the call gets a `Forward` that hands every attempt the
caller's ``traceparent`` unchanged (a new unsampled one when the caller sent
none, so the agent does not start a trace of its own). Sampled, it gets a
`CallTrace`: a SERVER span for the routed call and a CLIENT span per attempt,
each attempt's context sent to the agent as its ``traceparent``.

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
from typing import Any, Final
from urllib.parse import urlsplit

import grpc

from sutradhar import _tracing
from sutradhar._log_context import traceparent_of
from sutradhar._middleware import Method, Outcome, Stage, Streaming, Unary
from sutradhar._tracing import code_of, end_span, remote_parent
from sutradhar.services.common.probing import IN_PROCESS

ROUTER_EXECUTE: Final = "sutradhar.v1.RouterService/Execute"
ROUTER_EXECUTE_STREAM: Final = "sutradhar.v1.RouterService/ExecuteStream"
AGENT_EXECUTE: Final = "sutradhar.v1.AgentService/Execute"
AGENT_EXECUTE_STREAM: Final = "sutradhar.v1.AgentService/ExecuteStream"

def split_address(address: str) -> tuple[str, int | None]:
    """(host, port) of a ``host:port`` endpoint (``[v6]:port`` too); port None when there is none."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    return host.strip("[]"), int(port)


def attempt_attributes(endpoint: str, method: str) -> dict[str, Any]:
    """The semantic-convention attributes of an attempt's CLIENT span by the instance's kind: a gRPC
    agent (``host:port``) gets ``rpc.system.name``/``rpc.method`` and ``server.*``; an HTTP agent (a
    URL, JSON over HTTP) ``http.request.method``, ``url.full`` (its ``/execute``) and ``server.*``; an
    in-process agent (no peer: the router runs it) ``rpc.method`` only."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return {"http.request.method": "POST", "url.full": f"{endpoint.rstrip('/')}/execute",
                "server.address": parts.hostname or "", "server.port": port}
    if endpoint == IN_PROCESS:
        return {"rpc.method": method}
    host, grpc_port = split_address(endpoint)
    return {"rpc.system.name": "grpc", "rpc.method": method, "server.address": host,
            **({"server.port": grpc_port} if grpc_port is not None else {})}


def configure_tracing(service: str) -> bool:
    """Turn tracing on at a service's start when ``OTEL_*`` asks for it (before its servers are
    built: middleware is composed then); whether it is on. SystemExit with one line for a
    malformed ``OTEL_*`` value or a missing OpenTelemetry install. Queued spans are exported
    at exit (the provider's exit hook)."""
    try:
        return _tracing.setup(service)
    except (ValueError, ImportError) as err:
        raise SystemExit(f"error: {err}") from None


class Forward:
    """An unsampled routed call: every attempt carries this `metadata` (the caller's
    ``traceparent``, or a new unsampled one) and no span is made."""

    __slots__ = ("metadata",)
    sampled = False

    def __init__(self, value: str) -> None:
        self.metadata = (("traceparent", value),)

    def attempt(self, backend: Any, number: int, hedge: bool = False) -> tuple[None, tuple[tuple[str, str], ...]]:
        """No span; the metadata to send."""
        return None, self.metadata


class CallTrace:
    """A sampled routed call: its SERVER span (`server`) and a CLIENT span per attempt."""

    __slots__ = ("_attempt_name", "_context", "_tracer", "server")
    sampled = True

    def __init__(self, tracer: Any, server: Any, attempt_name: str) -> None:
        from opentelemetry import trace

        self._tracer = tracer
        self.server = server
        self._context = trace.set_span_in_context(server)
        self._attempt_name = attempt_name

    def attempt(self, backend: Any, number: int, hedge: bool = False) -> tuple[Any, tuple[tuple[str, str], ...]]:
        """Start the CLIENT span of attempt `number` on `backend`; (span, metadata to send)."""
        from opentelemetry.trace import SpanKind

        attributes: dict[str, Any] = {
            **attempt_attributes(backend.endpoint, self._attempt_name),
            "sutradhar.namespace": backend.namespace,
            "sutradhar.agent": backend.agent_id,
            "sutradhar.instance": backend.instance_id,
            "sutradhar.attempt": number,
        }
        if hedge:
            attributes["sutradhar.hedge"] = True
        span = self._tracer.start_span(self._attempt_name, context=self._context, kind=SpanKind.CLIENT,
                                       attributes=attributes)
        ctx = span.get_span_context()
        return span, (("traceparent", _tracing.traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags))),)

    def chose(self, backend: Any, number: int) -> None:
        """Note on the SERVER span that attempt `number` went to `backend`."""
        self.server.add_event("sutradhar.instance.chosen", {
            "sutradhar.instance": backend.instance_id, "sutradhar.attempt": number})

    @staticmethod
    def attempt_end(span: Any, err: BaseException | None, *, breaker: str, ejected: bool, task_failed: bool) -> None:
        """End an attempt's span: its code, the instance's breaker state after it, an ejection event."""
        span.set_attribute("sutradhar.breaker.state", breaker)
        if task_failed:
            span.set_attribute("sutradhar.task.success", False)
        if ejected:
            span.add_event("sutradhar.instance.ejected")
        end_span(span, code_of(err), err, server=False)

    def retry(self, code: str, pause: float, attempts: int) -> None:
        """An event on the SERVER span: attempt `attempts` failed with `code`, the next follows after `pause` s."""
        self.server.add_event("sutradhar.retry", {
            "sutradhar.attempt": attempts, "rpc.response.status_code": code, "sutradhar.retry.backoff_s": pause})

    def end(self, err: BaseException | None) -> None:
        """End the SERVER span with the call's outcome."""
        end_span(self.server, code_of(err), err, server=True)


class RouterTracing:
    """The router's tracing: `start` per routed call (see the module docstring)."""

    def __init__(self, state: Any, address: str) -> None:
        self._tracer = state.tracer("sutradhar.router")
        self._sampling: _tracing.Sampling = state.sampling
        self._ids = state.ids
        self._host, self._port = split_address(address)

    @classmethod
    def create(cls, address: str) -> RouterTracing | None:
        """The router's tracing, None while tracing is off; `address` is where the router listens."""
        state = _tracing.active()
        return None if state is None else cls(state, address)

    def start(self, metadata: Any, task_traceparent: str, stream: bool = False) -> Forward | CallTrace:
        """The trace of one routed call, from the caller's context (metadata first, then the task's)."""
        value = traceparent_of(metadata) or task_traceparent
        parent = _tracing.parse_traceparent(value) if value else None
        if parent is None:
            trace_id = _tracing.new_trace_id()
            if not self._sampling.sample(trace_id, None):
                return Forward(_tracing.traceparent(trace_id, _tracing.new_span_id(), 0))
            return self._sampled(None, trace_id, stream)
        if not self._sampling.sample(parent[0], bool(parent[2] & _tracing.SAMPLED)):
            return Forward(value.strip().lower())
        return self._sampled(parent, parent[0], stream)

    def _sampled(self, parent: tuple[int, int, int] | None, trace_id: int, stream: bool) -> CallTrace | Forward:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        context = None
        if parent is None:
            self._ids.next_trace_id = trace_id
        else:
            remote = SpanContext(parent[0], parent[1], is_remote=True, trace_flags=TraceFlags(parent[2] & 0xFF))
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        method = ROUTER_EXECUTE_STREAM if stream else ROUTER_EXECUTE
        attributes: dict[str, Any] = {"rpc.system.name": "grpc", "rpc.method": method, "server.address": self._host}
        if self._port is not None:
            attributes["server.port"] = self._port
        server = self._tracer.start_span(method, context=context, kind=SpanKind.SERVER, attributes=attributes)
        self._ids.next_trace_id = 0
        if not server.is_recording():  # a sampler outside `Sampling`'s rule said no after all
            ctx = server.get_span_context()
            return Forward(_tracing.traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags)))
        return CallTrace(self._tracer, server, AGENT_EXECUTE_STREAM if stream else AGENT_EXECUTE)


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
    """A SERVER span named `name` under the call's ``traceparent``, current inside the block and
    ended when the block is left, with the status the call ends with (`Outcome`)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    parent_context = remote_parent(traceparent_of(context.invocation_metadata()))
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
    "configure_tracing",
    "etcd_span",
    "split_address",
]
