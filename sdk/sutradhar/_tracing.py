"""OpenTelemetry tracing for SDK agents and the mesh services, configured by the standard ``OTEL_*`` variables.

Tracing is off unless the environment asks for an exporter (`exporter_names`):
``OTEL_TRACES_EXPORTER=otlp`` (or ``console``), or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) with
``OTEL_TRACES_EXPORTER`` unset. ``OTEL_TRACES_EXPORTER=none`` or
``OTEL_SDK_DISABLED=true`` keep it off. Off, nothing of OpenTelemetry is
imported and no span is made: the OpenTelemetry packages are the ``tracing``
extra (the ``mesh`` extra includes them), not part of the SDK's base install.

`setup` uses the application's own tracer provider when the process installed one
globally before (`adopt`: an application that set up OpenTelemetry itself keeps its
exporters and sampler, and Sutradhar's spans join them; it never shuts that provider
down). One installed later is taken too: while tracing is off, `active` looks for it
again at most once every `LOOK_EVERY` seconds once something asked for tracing.
Otherwise it installs the process's global tracer provider once: a batch span
processor sending to the OTLP gRPC exporter (``OTEL_EXPORTER_OTLP_*``,
``OTEL_BSP_*`` as the OpenTelemetry SDK reads them), the resource's
``service.name`` from ``OTEL_SERVICE_NAME`` (else the service or agent id), and
the sampler of ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default
``parentbased_traceidratio`` with ratio 1.0). Agent code then makes its own
spans with ``opentelemetry.trace.get_tracer(__name__)``: they are children of
the agent's SERVER span around ``execute``.

`Sampling` is that sampler's decision taken by hand for the router's hot path
(the six standard samplers): an unsampled call never reaches the OpenTelemetry
SDK, so it makes no span object. `traceparent` formats a W3C header value.

An agent's SERVER span around a task has one definition, `task_span`, ended by
`end_task_span`: an SDK agent starts it with `start_task_span` (current for the
rest of the call's task), the router's in-process agents with `task_scope`
(current only while the agent's own code runs; see `TaskScope`).
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sutradhar import _tracestate_log
from sutradhar._log_context import traceparent_parts

log = logging.getLogger(__name__)
_tracestate_log.install()  # a caller's malformed tracestate: at most a line a minute

#: The exporters `setup` knows (``OTEL_TRACES_EXPORTER`` values besides ``none``).
EXPORTERS: Final = ("otlp", "console")
#: The sampler used when ``OTEL_TRACES_SAMPLER`` is unset.
DEFAULT_SAMPLER: Final = "parentbased_traceidratio"
#: W3C trace flags: sampled.
SAMPLED: Final = 0x01
_ID_MASK_64: Final = (1 << 64) - 1


def exporter_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The span exporters the environment asks for; () when tracing is off.

    ValueError names an exporter `setup` does not have."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ("otlp",) if endpoint else ()
    names = tuple(n.strip() for n in raw.split(",") if n.strip() and n.strip() != "none")
    for name in names:
        if name not in EXPORTERS:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={raw!r}: {name!r} is not one of {', '.join(EXPORTERS)} or none "
                "(the OTLP exporter speaks gRPC; point OTEL_EXPORTER_OTLP_ENDPOINT at a collector)"
            )
    return names


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment turns tracing on (see `exporter_names`)."""
    return bool(exporter_names(environ))


def _sampler_from_env(env: Mapping[str, str]) -> Any:
    """The OpenTelemetry sampler of ``OTEL_TRACES_SAMPLER`` (default `DEFAULT_SAMPLER`) and its argument."""
    from opentelemetry.sdk.trace import sampling

    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or DEFAULT_SAMPLER
    raw_arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        rate = float(raw_arg) if raw_arg else 1.0
    except ValueError:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={raw_arg!r} is not a number between 0 and 1") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={raw_arg!r} is not a number between 0 and 1")
    samplers: dict[str, Any] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(rate),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(sampling.TraceIdRatioBased(rate)),
    }
    sampler = samplers.get(name)
    if sampler is None:
        raise ValueError(f"OTEL_TRACES_SAMPLER={name!r} is not one of {', '.join(samplers)}")
    return sampler


@dataclass(frozen=True, slots=True)
class Sampling:
    """A standard sampler's decision by hand: `root_bound` against the low 64 bits of a
    new trace id (``TraceIdRatioBased``'s rule; 0 never, 2**64 always), and whether
    a parent's sampled flag decides instead (the ``parentbased_*`` samplers)."""

    root_bound: int
    parent_based: bool

    @classmethod
    def of(cls, sampler: Any) -> Sampling:
        """The decision of one of `_sampler_from_env`'s samplers."""
        from opentelemetry.sdk.trace import sampling

        parent_based = isinstance(sampler, sampling.ParentBased)
        root = sampler._root if parent_based else sampler
        if isinstance(root, sampling.TraceIdRatioBased):
            bound = root.bound
        elif root is sampling.ALWAYS_OFF:
            bound = 0
        else:
            bound = 1 << 64
        return cls(root_bound=bound, parent_based=parent_based)

    @classmethod
    def deferred(cls) -> Sampling:
        """Every span goes to the provider's own sampler (an application's provider, `adopt`,
        whose sampler is not read by hand): a span it does not sample is non-recording."""
        return cls(root_bound=1 << 64, parent_based=False)

    def sample(self, trace_id: int, parent_sampled: bool | None) -> bool:
        """Whether a span of `trace_id` is sampled; `parent_sampled` None: a root (no parent)."""
        if parent_sampled is not None and self.parent_based:
            return parent_sampled
        return (trace_id & _ID_MASK_64) < self.root_bound


def traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """The W3C ``traceparent`` value (version 00) of a span context."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a valid ``traceparent`` value, else None."""
    parts = traceparent_parts(value)
    if parts is None:
        return None
    trace_id, span_id, flags = parts
    return int(trace_id, 16), int(span_id, 16), int(flags, 16)


def new_trace_id() -> int:
    """A random, valid (non-zero) 128-bit trace id."""
    return random.getrandbits(128) or 1


def new_span_id() -> int:
    """A random, valid (non-zero) 64-bit span id."""
    return random.getrandbits(64) or 1


class _Tracing:
    """The process's tracing once `setup` turned it on (or `adopt` took the application's provider)."""

    def __init__(self, provider: Any, sampling: Sampling, ids: Any, *, owned: bool = True) -> None:
        self.provider = provider
        self.sampling = sampling
        self.ids = ids
        """The `_make_id_generator` generator the router's hot path chooses root trace ids with;
        None for an application's provider (its own generator picks them)."""
        self.owned = owned
        """Whether `shutdown` shuts the provider down (not an application's own)."""

    def tracer(self, name: str) -> Any:
        return self.provider.get_tracer(name)


_state: _Tracing | None = None
#: The provider `setup` made global, which `adopt` never takes for an application's.
_installed: Any = None
#: Seconds between two looks of `active` for a provider the application installed after tracing
#: was asked for (`adopt`): a client made, or an agent started, before the program set up OpenTelemetry.
LOOK_EVERY: Final = 1.0
#: Whether `active` looks (`adopt` was called), and when next (seconds of `_clock`).
_looking = False
_next_look = 0.0
_clock: Callable[[], float] = time.monotonic


def _make_id_generator() -> Any:
    """An id generator that hands out a trace id chosen just before (`next_trace_id`), else a random one:
    the router samples a new trace by hand, then starts the root span with that same id."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class ChosenIdGenerator(RandomIdGenerator):
        next_trace_id = 0

        def generate_trace_id(self) -> int:
            chosen, self.next_trace_id = self.next_trace_id, 0
            return chosen or super().generate_trace_id()

    return ChosenIdGenerator()


def setup(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on for this process when the environment asks for it, or with the
    application's own tracer provider when it installed one (`adopt`); idempotent; whether it is on.

    `service` is ``service.name`` unless ``OTEL_SERVICE_NAME`` is set. ValueError for a
    malformed ``OTEL_*`` value; ImportError naming the extra when OpenTelemetry is not installed."""
    global _state, _installed
    if _state is not None or adopt():
        return True
    env = os.environ if environ is None else environ
    names = exporter_names(env)
    if not names:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as err:
        raise ImportError(
            f"OTEL_* turns tracing on but OpenTelemetry is not installed ({err}); "
            "install the tracing extra: pip install 'sutradhar[tracing]'"
        ) from None
    sampler = _sampler_from_env(env)
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service})
    ids = _make_id_generator()
    provider = TracerProvider(resource=resource, sampler=sampler, id_generator=ids)
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _installed = provider
    _state = _Tracing(provider, Sampling.of(sampler), ids)
    log.info("tracing on: exporter %s, sampler %s, service.name %s", ",".join(names),
             sampler.get_description(), resource.attributes.get("service.name"))
    return True


def installed_provider() -> Any | None:
    """The tracer provider the application installed globally (``trace.set_tracer_provider``);
    None when it installed none, or never imported OpenTelemetry (nothing is imported then)."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if provider is _installed or isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None  # not the application's: none, or the one `setup` installed (shut down or about to be)
    return provider


def adopt() -> bool:
    """Trace with the application's own global tracer provider (`installed_provider`) when
    tracing is not on yet; whether tracing is on. Its sampler decides every span
    (`Sampling.deferred`) and its id generator picks the trace ids; `shutdown` leaves it to
    the application. `setup` (an SDK agent starting to serve, too) and a new `AgentClient`,
    `RouterClient` or `DirectClient` call it. While none is installed, `active` looks again
    later, so a provider the program installs afterwards is taken within `LOOK_EVERY` seconds."""
    global _looking, _next_look
    if _state is not None:
        return True
    _looking, _next_look = True, _clock() + LOOK_EVERY
    return _take_installed()


def _take_installed() -> bool:
    """Trace with `installed_provider`, if there is one; whether it was taken."""
    global _state
    provider = installed_provider()
    if provider is None:
        return False
    _state = _Tracing(provider, Sampling.deferred(), None, owned=False)
    log.info("tracing on: the application's tracer provider (%s)", type(provider).__name__)
    return True


def active() -> _Tracing | None:
    """The process's tracing, None while it is off. Off after `adopt`, it looks for an
    application's provider again once `LOOK_EVERY` seconds have passed since the last look."""
    state = _state
    if state is None and _looking and _clock() >= _next_look:
        return _look()
    return state


def _look() -> _Tracing | None:
    global _next_look
    _next_look = _clock() + LOOK_EVERY
    return _state if _take_installed() else None


def shutdown() -> None:
    """Export the spans still queued and turn tracing off (at process stop)."""
    global _state
    state, _state = _state, None
    if state is not None and state.owned:
        state.provider.shutdown()


#: Status codes that mark a SERVER span as an error (the RPC conventions: the server's fault).
SERVER_ERROR_CODES: Final = frozenset({
    "UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
})


def code_of(err: BaseException | None) -> str:
    """The gRPC status name a call ends with when its handler ends with `err` (None: OK),
    as the middleware chain's `Errors` stage maps it."""
    if err is None:
        return "OK"
    code = getattr(err, "code", None)
    if callable(code):  # grpc.aio.AioRpcError
        code = code()
    name = getattr(code, "name", None)
    if isinstance(name, str):
        return name
    if not isinstance(err, Exception):  # cancelled, or a stream closed by its consumer
        return "CANCELLED"
    return "INTERNAL"


def end_span(span: Any, code: str, err: BaseException | None, *, server: bool) -> None:
    """Set an RPC span's ``rpc.response.status_code`` (and ``error.type`` and an error status when
    `code` is one for its side: any non-OK code for a client, `SERVER_ERROR_CODES` for a server) and end it."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.response.status_code", code)
    if code != "OK":
        span.set_attribute("error.type", code)
        if not server or code in SERVER_ERROR_CODES:
            message = str(err) if err is not None else code
            span.set_status(Status(StatusCode.ERROR, message[:512]))
    span.end()


def _remote_context(parent: tuple[int, int, int], tracestate: str = "") -> Any:
    """An OpenTelemetry context whose span is the remote parent (trace id, span id, flags) with
    the W3C ``tracestate`` header value `tracestate` as its trace state (OpenTelemetry's parser:
    a malformed one is dropped whole, as the spec says, and logged at most once a minute,
    `_tracestate_log`), so spans under it carry it on."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    state = TraceState.from_header([tracestate]) if tracestate else None
    remote = SpanContext(parent[0], parent[1], is_remote=True, trace_flags=TraceFlags(parent[2] & 0xFF),
                         trace_state=state)
    return trace.set_span_in_context(NonRecordingSpan(remote))


def remote_parent(traceparent_value: str, tracestate: str = "") -> Any:
    """An OpenTelemetry context whose span is the remote parent `traceparent_value` names, with
    `tracestate` (`_remote_context`); None (a root) when `traceparent_value` is empty or malformed."""
    parent = parse_traceparent(traceparent_value) if traceparent_value else None
    return None if parent is None else _remote_context(parent, tracestate)


#: The instrumentation scope of the agents' task spans.
AGENT_TRACER: Final = "sutradhar.agent"


def task_span(method: str, parent: Any, *, namespace: str, agent: str, instance: str, task_type: str) -> Any:
    """Start the SERVER span of one task an agent runs, `method` (``sutradhar.v1.AgentService/Execute``
    or ``.../ExecuteStream``), under the OpenTelemetry context `parent` (None: the current one, a
    root when no span is current); not made current. The one definition of the agent's span: SDK
    agents (`start_task_span`) and the router's in-process agents (`task_scope`) both start it
    here, and end it with `end_task_span`. Tracing must be on (`active`)."""
    from opentelemetry.trace import SpanKind

    state = _state
    if state is None:
        raise RuntimeError("task_span needs tracing on (sutradhar._tracing.setup)")
    return state.tracer(AGENT_TRACER).start_span(method, context=parent, kind=SpanKind.SERVER, attributes={
        "rpc.system.name": "grpc", "rpc.method": method, "sutradhar.namespace": namespace,
        "sutradhar.agent": agent, "sutradhar.instance": instance, "sutradhar.task.type": task_type,
    })


def end_task_span(span: Any, failure: BaseException | None, ok: bool) -> None:
    """End an agent's task span: the call's status (`failure`: what the call ended with, None: OK)
    and whether the task's result succeeded."""
    span.set_attribute("sutradhar.task.success", ok)
    end_span(span, code_of(failure), failure, server=True)


def start_task_span(method: str, traceparent_value: str, *, tracestate: str = "", namespace: str, agent: str,
                    instance: str, task_type: str) -> Any:
    """Start an SDK agent's task span (`task_span`) under the caller's `traceparent_value` (and
    `tracestate`, `remote_parent`) and make
    it current for the rest of the call's task (gRPC aio serves each call in a task of its own, so
    it ends with the call), so spans the handler starts with ``opentelemetry.trace.get_tracer(...)``
    are its children. None while tracing is off; end it with `end_task_span`."""
    if active() is None:
        return None
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    span = task_span(method, remote_parent(traceparent_value, tracestate), namespace=namespace, agent=agent,
                     instance=instance, task_type=task_type)
    otel_context.attach(trace.set_span_in_context(span))
    return span


class TaskScope:
    """What an in-process agent's code runs under inside the router: its task span (`span`), or, for
    an unsampled call, only the caller's context (`span` None: no span is started, yet spans the
    agent's code starts stay unsampled in the caller's trace instead of starting traces of their
    own). `enter` makes it current and `leave` puts back what was current before, around each step
    of the agent: the router's own code never runs under it, though a streamed task's generator is
    resumed by the router's handler in the same asyncio task. `leave` keeps what the agent's code
    left current (a span it holds open across a ``yield``) for the next `enter`."""

    __slots__ = ("_context", "span")

    def __init__(self, span: Any, context: Any) -> None:
        self.span = span
        self._context = context

    def enter(self) -> Any:
        """Make the scope current; the token to hand to `leave`."""
        from opentelemetry import context as otel_context

        return otel_context.attach(self._context)

    def leave(self, token: Any) -> None:
        """Keep what is current now for the next `enter` and put back what was current before it."""
        from opentelemetry import context as otel_context

        self._context = otel_context.get_current()
        otel_context.detach(token)

    def end(self, failure: BaseException | None, ok: bool) -> None:
        """End the task span, if there is one (`end_task_span`)."""
        if self.span is not None:
            end_task_span(self.span, failure, ok)


def task_scope(method: str, traceparent_value: str, *, tracestate: str = "", namespace: str, agent: str,
               instance: str, task_type: str) -> TaskScope | None:
    """The `TaskScope` of one task of an in-process agent under `traceparent_value` (the router's
    attempt) and its `tracestate`; None while tracing is off. The sampler's decision is taken by hand (`Sampling`, the
    router's hot-path rule): unsampled, no span is started; sampled, the task span (`task_span`)
    under the attempt. Without a valid `traceparent_value` the task span is a root the sampler
    decides on."""
    state = active()
    if state is None:
        return None
    from opentelemetry import trace
    from opentelemetry.context import Context

    parent = parse_traceparent(traceparent_value) if traceparent_value else None
    attributes = {"namespace": namespace, "agent": agent, "instance": instance, "task_type": task_type}
    if parent is None:
        root = Context()  # nothing of the router's own context
        span = task_span(method, root, **attributes)
        return TaskScope(span, trace.set_span_in_context(span, root))
    context = _remote_context(parent, tracestate)
    if not state.sampling.sample(parent[0], bool(parent[2] & SAMPLED)):
        return TaskScope(None, context)
    span = task_span(method, context, **attributes)
    return TaskScope(span, trace.set_span_in_context(span, context))


def _current_span_context() -> Any | None:
    """The current span's context while tracing is on and one is current (sampled or not); else None."""
    if active() is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return ctx if ctx.is_valid else None


def trace_context(ctx: Any) -> tuple[str, str]:
    """(``traceparent``, ``tracestate``) header values of the OpenTelemetry span context `ctx`
    (``tracestate`` "" when its trace state is empty)."""
    state = ctx.trace_state
    return traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags)), state.to_header() if state else ""


def current_trace_context() -> tuple[str, str]:
    """(``traceparent``, ``tracestate``) of the current span (sampled or not) while tracing is
    on; ("", "") when tracing is off or no span is current. The SDK's clients put them in a task
    that has no ``traceparent``, so the router or agent it reaches continues the caller's trace."""
    ctx = _current_span_context()
    return ("", "") if ctx is None else trace_context(ctx)


def current_ids() -> tuple[str, str]:
    """(trace id, span id) in hex of the active recording span, ("", "") when there is none."""
    ctx = _current_span_context()
    return ("", "") if ctx is None else (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


__all__ = [
    "AGENT_TRACER",
    "DEFAULT_SAMPLER",
    "EXPORTERS",
    "SAMPLED",
    "SERVER_ERROR_CODES",
    "Sampling",
    "TaskScope",
    "active",
    "code_of",
    "current_ids",
    "current_trace_context",
    "enabled",
    "end_span",
    "end_task_span",
    "exporter_names",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "remote_parent",
    "setup",
    "shutdown",
    "start_task_span",
    "task_scope",
    "task_span",
    "trace_context",
    "traceparent",
]
