"""The trace of one routed call, as the routing engine (`sutradhar._route_engine`) takes it.

Two callers route through the engine and trace their calls with what is here, one
definition for both: the router service (``services.common.tracing.RouterTracing``,
whose call span is the SERVER span of ``RouterService/Execute``) and the SDK's
`DirectClient` (`DirectTracing`, whose call span is an INTERNAL span of the same
name in the caller's process: the routed call crosses no process boundary there,
each attempt does).

`start_call` takes the sampler's decision by hand (`sutradhar._tracing.Sampling`).
Unsampled, it makes no span: the call gets a `Forward` that hands every attempt the
caller's ``traceparent`` and ``tracestate`` (a new unsampled ``traceparent`` when
there is none, so the agent does not start a trace of its own). Sampled, it gets a
`CallTrace`: the call's span and a CLIENT span per attempt, each attempt's context
sent to the agent as its ``traceparent`` and ``tracestate`` (the caller's trace
state, which the spans carry on).

Names and attributes follow the OpenTelemetry RPC semantic conventions: the span
name is the fully qualified method, ``rpc.system.name`` ``grpc``, ``rpc.method``,
``rpc.response.status_code`` (the status name), ``error.type`` on failures,
``server.address`` / ``server.port``; an attempt on an HTTP agent has the HTTP
client attributes instead (`attempt_attributes`). The mesh's own attributes are
under ``sutradhar.``: namespace, agent, instance, attempt number, breaker state;
ejections and retries are span events.

Nothing of OpenTelemetry is imported until a sampled call is traced: tracing must be
on (`sutradhar._tracing.active`), which needs the ``tracing`` extra.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from sutradhar import _tracing
from sutradhar._log_context import trace_context_of
from sutradhar._routing.backend import IN_PROCESS_ENDPOINT
from sutradhar._tracing import code_of, end_span

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
    if endpoint == IN_PROCESS_ENDPOINT:
        return {"rpc.method": method}
    host, grpc_port = split_address(endpoint)
    return {"rpc.system.name": "grpc", "rpc.method": method, "server.address": host,
            **({"server.port": grpc_port} if grpc_port is not None else {})}


class Forward:
    """An unsampled routed call: every attempt carries this `metadata` (the caller's
    ``traceparent`` and ``tracestate``, or a new unsampled ``traceparent``) and no span is made."""

    __slots__ = ("metadata",)
    sampled = False

    def __init__(self, value: str, state: str = "") -> None:
        self.metadata: tuple[tuple[str, str], ...] = (
            (("traceparent", value), ("tracestate", state)) if state else (("traceparent", value),))

    def attempt(self, backend: Any, number: int, hedge: bool = False) -> tuple[None, tuple[tuple[str, str], ...]]:
        """No span; the metadata to send."""
        return None, self.metadata


class CallTrace:
    """A sampled routed call: its span (`call`: the router's SERVER span, a direct caller's
    INTERNAL one) and a CLIENT span per attempt under it."""

    __slots__ = ("_attempt_name", "_context", "_server_side", "_tracer", "call")
    sampled = True

    def __init__(self, tracer: Any, call: Any, attempt_name: str, *, server_side: bool = True) -> None:
        from opentelemetry import trace

        self._tracer = tracer
        self.call = call
        self._context = trace.set_span_in_context(call)
        self._attempt_name = attempt_name
        self._server_side = server_side

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
        return span, Forward(*_tracing.trace_context(span.get_span_context())).metadata

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
        """An event on the call's span: attempt `attempts` failed with `code`, the next follows after `pause` s."""
        self.call.add_event("sutradhar.retry", {
            "sutradhar.attempt": attempts, "rpc.response.status_code": code, "sutradhar.retry.backoff_s": pause})

    def end(self, err: BaseException | None) -> None:
        """End the call's span with the call's outcome (an error status by the RPC conventions'
        rule for its side: the server's codes for the router, any failure for a direct caller)."""
        end_span(self.call, code_of(err), err, server=self._server_side)


def start_call(
    state: Any, tracer: Any, parent: tuple[int, int, int] | None, value: str, context: Any, name: str, kind: Any,
    attributes: dict[str, Any], attempt_name: str, server_side: bool, tracestate: str = "",
) -> Forward | CallTrace:
    """The trace of one routed call under `parent` (trace id, span id, flags of the caller's
    context; None: a new trace), whose ``traceparent`` is `value` and ``tracestate`` `tracestate`
    (passed on unchanged when unsampled, the spans' trace state when sampled), decided as the configured
    sampler would (`state.sampling`; an application's provider's own sampler decides,
    `Sampling.deferred`). Sampled, the call's span `name` of `kind` with `attributes`
    (copied: pass the same dict every time) starts under the OpenTelemetry `context`, or, when it
    is None, under the remote parent `value` names; with no parent, as a root with the very trace
    id that was sampled (`state.ids`), so the decision and the trace agree. Unsampled, nothing of
    OpenTelemetry runs."""
    if parent is None:
        trace_id = _tracing.new_trace_id()
        if not state.sampling.sample(trace_id, None):
            return Forward(_tracing.traceparent(trace_id, _tracing.new_span_id(), 0))
        if state.ids is not None:
            state.ids.next_trace_id = trace_id
    elif not state.sampling.sample(parent[0], bool(parent[2] & _tracing.SAMPLED)):
        return Forward(value, tracestate)
    elif context is None:
        context = _tracing.remote_parent(value, tracestate)
    call = tracer.start_span(name, context=context, kind=kind, attributes=attributes)
    if state.ids is not None:
        state.ids.next_trace_id = 0
    if not call.is_recording():  # a sampler outside `Sampling`'s rule said no after all
        return Forward(*_tracing.trace_context(call.get_span_context()))
    return CallTrace(tracer, call, attempt_name, server_side=server_side)


class DirectTracing:
    """A direct caller's tracing (`DirectClient`): `start` per call, under the caller's current
    OpenTelemetry span when there is one, else under the task's ``traceparent`` and
    ``tracestate``. Sampled, the
    call's span is an INTERNAL ``RouterService/Execute`` (``/ExecuteStream``) span in the caller's
    process with the router's attributes but no peer (the routing runs here); each attempt is a
    CLIENT span under it, as the router's. Made while tracing is on (`sutradhar._tracing.active`)."""

    __slots__ = ("_internal", "_tracer", "state")

    #: The instrumentation scope of a direct caller's spans.
    TRACER: Final = "sutradhar.client"

    def __init__(self, state: Any) -> None:
        from opentelemetry.trace import SpanKind

        self.state = state
        """The process's tracing this was made for."""
        self._tracer = state.tracer(self.TRACER)
        self._internal = SpanKind.INTERNAL

    def start(self, task_traceparent: str, task_tracestate: str = "", stream: bool = False) -> Forward | CallTrace:
        """The trace of one direct call (see the class docstring)."""
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            parent: tuple[int, int, int] | None = (current.trace_id, current.span_id, int(current.trace_flags))
            value, state = _tracing.trace_context(current)
            context = otel_context.get_current()
        else:
            value, state = trace_context_of(None, task_traceparent.strip().lower(), task_tracestate)
            parent = _tracing.parse_traceparent(value) if value else None
            context = None  # the task's remote parent, else a root
        if stream:
            return start_call(self.state, self._tracer, parent, value, context, ROUTER_EXECUTE_STREAM,
                              self._internal, _STREAM_CALL, AGENT_EXECUTE_STREAM, False, state)
        return start_call(self.state, self._tracer, parent, value, context, ROUTER_EXECUTE, self._internal,
                          _UNARY_CALL, AGENT_EXECUTE, False, state)


_UNARY_CALL: Final = {"rpc.system.name": "grpc", "rpc.method": ROUTER_EXECUTE}
_STREAM_CALL: Final = {"rpc.system.name": "grpc", "rpc.method": ROUTER_EXECUTE_STREAM}


__all__ = [
    "AGENT_EXECUTE",
    "AGENT_EXECUTE_STREAM",
    "ROUTER_EXECUTE",
    "ROUTER_EXECUTE_STREAM",
    "CallTrace",
    "DirectTracing",
    "Forward",
    "attempt_attributes",
    "split_address",
    "start_call",
]
