"""The one middleware chain every Sutradhar gRPC server runs its handlers through.

A `Middleware` wraps a method's behaviour (the function gRPC calls with the
request and the `ServicerContext`). The `Chain` composes the middleware of a
server ONCE per method, when the method's handler is registered
(`GrpcHost.add_servicer` / `GrpcHost.add_method_handlers`): a call then runs
plain nested function calls, with no per-call lookup or handler rebuilding.

Order is fixed by `Stage`, outermost first, whatever order middleware is
passed in::

    ERRORS          this module's `Errors`, always present and always first:
                    SutradharError -> its status, any other exception ->
                    INTERNAL with the reason (never UNKNOWN), an undecodable
                    request -> INVALID_ARGUMENT; status details are cut to
                    MAX_STATUS_DETAILS_BYTES
    TRACING         spans around the call, refused calls included
    METRICS         counts and latencies by status code, refused calls
                    included (an UNAUTHENTICATED storm must show)
    AUTHENTICATION  who calls (peer certificate / SPIFFE id from
                    `context.auth_context()`, tokens from metadata)
    AUDIT           record who did what, and the authorization decision:
                    it wraps AUTHORIZATION, so denials are recorded too
                    (Kubernetes audits after authentication, around
                    authorization)
    AUTHORIZATION   may they call this method on this namespace
    RATE_LIMIT      per namespace / per caller limits, after authorization,
                    so a caller who may not call cannot drain a bucket
    AUDIT_GATE      writes an allowed mutation's audit record before its
                    handler runs (inside RATE_LIMIT: a refused flood writes
                    nothing to etcd)

Stages outside AUTHENTICATION (tracing, metrics) see a refused call as the
`SutradharError` it raised (`.code` is its status), since ERRORS turns
exceptions into statuses outermost.

Why middleware and not `grpc.aio.ServerInterceptor`: an interceptor sees only
the method name and the invocation metadata, and rebuilds the handler on every
call; a middleware runs with the decoded request and the `ServicerContext`
(peer, `auth_context()`, deadline, `abort`), so certificate identity can be
checked there, and it is composed once.

What a middleware gets and may do:

- `Method` at composition time: the full name ``/pkg.Service/Method``, the
  service, whether the response streams, and `infrastructure` (the standard
  grpc.health.v1 and reflection services, which authentication may skip by
  returning `call_next` unchanged: a skipped stage costs nothing per call).
- the request and the `ServicerContext` per call; it may raise a
  `SutradharError` (e.g. `Unauthenticated`) which `Errors` turns into a status.
- per-request context: each call runs in its own asyncio task, so a
  `contextvars.ContextVar` set by a middleware is seen by the stages inside it
  and by the handler, and by no other call.

A stage that acts on how a call ends (tracing, metrics, the log context's call
lines) wraps the stages inside in `Outcome`: ``with Outcome(context, ended):``
around ``return await call_next(...)``, or around the ``async for`` of a
stream, calls ``ended(status, error, seconds)`` once, however the block is
left, with the status code name the call ends with (`status_of`, as `Errors`
answers it).

Streams: a unary-stream method is wrapped by `Middleware.stream`, which gets
the request and context once and returns an async iterator; the stage sees
each response as it passes (``async for item in call_next(...): yield item``)
and the end or the error of the stream. A handler that writes with
`context.write` instead of yielding (grpc.health.v1 `Watch`) is adapted to a
stream that yields nothing, so stages see its start and end but not its
messages. Client-streaming and bidirectional methods (only reflection's
`ServerReflectionInfo` on our servers) are registered as they are, outside the
chain: no Sutradhar API streams requests.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError

from sutradhar._errors import InvalidArgument, SutradharError

log = logging.getLogger(__name__)

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
"""A unary-response behaviour: ``await behaviour(request, context) -> response``."""

Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
"""A streaming-response behaviour: ``async for response in behaviour(request, context)``."""

#: Services every server hosts for tooling (grpcurl, load balancers), not for callers of the mesh.
INFRASTRUCTURE_SERVICES = frozenset({
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
})

#: Largest status message (UTF-8 bytes) a server sends. gRPC percent-encodes
#: the message into a header and a client drops a response whose headers pass
#: 8 KiB (the caller then sees RESOURCE_EXHAUSTED "Stream removed" instead of
#: the real status), so a message quoting a huge input must be cut.
MAX_STATUS_DETAILS_BYTES = 1024


def status_details(message: str) -> str:
    """`message` cut to at most MAX_STATUS_DETAILS_BYTES UTF-8 bytes, saying so."""
    raw = message.encode()
    if len(raw) <= MAX_STATUS_DETAILS_BYTES:
        return message
    head = raw[: MAX_STATUS_DETAILS_BYTES - 48].decode(errors="ignore")
    return f"{head}... ({len(message) - len(head)} characters cut)"


@dataclass(frozen=True)
class UndecodableRequest:
    """What `tolerant_deserializer` returns for bytes that are not a valid request."""

    error: InvalidArgument


def tolerant_deserializer(
    deserializer: Callable[[bytes], Any] | None,
) -> Callable[[bytes], Any] | None:
    """Wrap a request deserializer so that bad bytes (corrupt wire format,
    invalid UTF-8 in a string field) give an `UndecodableRequest` instead of
    raising: an exception there becomes gRPC's UNKNOWN, outside any handler.
    `Errors` answers such a request with INVALID_ARGUMENT."""
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", "request message")

    def parse(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError as err:
            return UndecodableRequest(InvalidArgument(f"request is not a valid {name}: {err}", field="request"))

    return parse


class Stage(IntEnum):
    """Where a middleware sits in the chain; lower runs first (further out)."""

    ERRORS = 0
    TRACING = 10
    METRICS = 20
    AUTHENTICATION = 30
    AUDIT = 40
    AUTHORIZATION = 50
    RATE_LIMIT = 60
    AUDIT_GATE = 70


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC method as middleware sees it when the chain is composed."""

    service: str
    """Fully qualified service name, e.g. ``sutradhar.v1.RegistryService``."""
    name: str
    """Method name, e.g. ``GetAgent``."""
    server_streaming: bool = False
    """True when the response is a stream (`Middleware.stream` wraps it)."""

    @property
    def full_name(self) -> str:
        """``/service/name``, as gRPC names the method in a call."""
        return f"/{self.service}/{self.name}"

    @property
    def infrastructure(self) -> bool:
        """True for grpc.health.v1 and reflection: tooling, not the mesh's API."""
        return self.service in INFRASTRUCTURE_SERVICES


class Middleware(Protocol):
    """One stage of the chain. Both methods run once per method at server start.

    `unary` gets the method and the next behaviour (the stages inside, then
    the handler) and returns the behaviour to call instead; `stream` does the
    same for a streaming response. Return `call_next` itself to stay out of a
    method (that costs nothing per call).
    """

    @property
    def stage(self) -> Stage:
        """Where this middleware runs; see `Stage`."""
        ...

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """The behaviour for a unary-response `method` that ends in `call_next`."""
        ...

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """The behaviour for a streaming-response `method` that ends in `call_next`."""
        ...


def status_of(err: BaseException | None, context: grpc.aio.ServicerContext) -> str:
    """The status code name a call ends with when the stages inside end with `err` (None: no error),
    as `Errors` answers it: a SutradharError's code, the code of an abort, CANCELLED when it did
    not fail but was stopped (a cancellation, a stream closed by its consumer: any BaseException
    that is not an Exception), INTERNAL for any other error."""
    if err is None:
        return "OK"
    if isinstance(err, SutradharError):
        return err.code.name
    if isinstance(err, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "ABORTED"
    if not isinstance(err, Exception):
        return "CANCELLED"
    return "INTERNAL"


Ended = Callable[[str, BaseException | None, float], None]
"""What a stage does when a call ends: ``ended(status, error, seconds)`` gets the status code name
(`status_of`), the error the stages inside ended with (None: none) and the seconds the call took."""


class Outcome:
    """The end of a call, for the stages that act on it (tracing, metrics, the call log).

    ``with Outcome(context, ended):`` around ``return await call_next(request, context)``, or around
    ``async for item in call_next(request, context): yield item``, calls `ended` once when the block
    is left, however it is left: returned, raised, cancelled, or the stream closed. The error goes on
    to the stages outside; `ended` should not raise. One small object per call, no generator.
    """

    __slots__ = ("_context", "_ended", "_started")

    def __init__(self, context: grpc.aio.ServicerContext, ended: Ended) -> None:
        self._context = context
        self._ended = ended
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._ended(status_of(error, self._context), error, time.perf_counter() - self._started)


async def _abort(context: grpc.aio.ServicerContext, err: Exception, full_name: str) -> None:
    """End the call with the status of `err` (call it in an `except` clause:
    an unexpected error is logged with its traceback)."""
    if isinstance(err, SutradharError):
        await context.abort(err.code, status_details(err.message))
    log.exception("unhandled error in %s", full_name)
    await context.abort(grpc.StatusCode.INTERNAL, status_details(f"internal error: {type(err).__name__}: {err}"))


class Errors:
    """The first stage: turns every failure of the stages inside into a status.

    A `SutradharError` becomes its code with its message, any other exception
    INTERNAL with its type and message (logged with the traceback; never
    UNKNOWN), an `UndecodableRequest` INVALID_ARGUMENT; messages are cut by
    `status_details`. `context.abort` and cancellation pass through.
    """

    stage = Stage.ERRORS

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """`call_next` with errors turned into statuses."""
        full_name = method.full_name

        async def errors(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                if type(request) is UndecodableRequest:
                    raise request.error
                return await call_next(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await _abort(context, err, full_name)

        return errors

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """`call_next` with errors turned into statuses (also after some responses went out)."""
        full_name = method.full_name

        async def errors(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            responses: AsyncIterator[Any] | None = None
            try:
                if type(request) is UndecodableRequest:
                    raise request.error
                responses = call_next(request, context)
                async for item in responses:
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await _abort(context, err, full_name)
            finally:
                if isinstance(responses, AsyncGenerator):
                    await responses.aclose()

        return errors


def _writer_as_stream(behaviour: Callable[..., Awaitable[None]]) -> Streaming:
    """A handler that writes its responses with `context.write` as a stream that yields none."""

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await behaviour(request, context)
        return
        yield  # pragma: no cover - makes this an async generator

    return stream


class Chain:
    """The middleware of one server in `Stage` order, `Errors` first.

    `handler` and `handlers` compose it around method handlers; do that once,
    at registration. Middleware of the same stage keep the order given.
    """

    def __init__(self, middleware: Iterable[Middleware] = ()) -> None:
        later = sorted(middleware, key=lambda m: m.stage)
        for m in later:
            if m.stage == Stage.ERRORS:
                raise ValueError(f"{type(m).__name__}: Stage.ERRORS is the chain's own first stage; choose a later one")
        self.middleware: tuple[Middleware, ...] = (Errors(), *later)

    def unary(self, method: Method, behaviour: Unary) -> Unary:
        """`behaviour` wrapped by every stage, the first outermost."""
        for m in reversed(self.middleware):
            behaviour = m.unary(method, behaviour)
        return behaviour

    def stream(self, method: Method, behaviour: Streaming) -> Streaming:
        """`behaviour` (a streaming response) wrapped by every stage, the first outermost."""
        for m in reversed(self.middleware):
            behaviour = m.stream(method, behaviour)
        return behaviour

    def handler(self, service: str, name: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` of method `name` of `service` with its behaviour run through
        the chain and a tolerant request deserializer; request-streaming
        handlers are returned as they are."""
        if handler.request_streaming:
            return handler
        deserializer = tolerant_deserializer(handler.request_deserializer)
        if handler.response_streaming:
            behaviour = handler.unary_stream
            if inspect.iscoroutinefunction(behaviour):
                behaviour = _writer_as_stream(behaviour)
            return grpc.unary_stream_rpc_method_handler(
                self.stream(Method(service, name, server_streaming=True), behaviour),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self.unary(Method(service, name), handler.unary_unary),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )

    def handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> dict[str, grpc.RpcMethodHandler]:
        """Every handler of `service` (method name -> handler) through the chain."""
        return {name: self.handler(service, name, h) for name, h in handlers.items()}


class ChainedGenericHandler(grpc.GenericRpcHandler):
    """A `GenericRpcHandler` whose handlers run through `chain`, composed on
    the first call of each method and kept (a generic handler's answer for a
    method is taken to be fixed)."""

    def __init__(self, inner: grpc.GenericRpcHandler, chain: Chain) -> None:
        self._inner = inner
        self._chain = chain
        self._composed: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The chained handler for the called method, or None when `inner` has none."""
        name: str = handler_call_details.method  # type: ignore[attr-defined]
        try:
            return self._composed[name]
        except KeyError:
            pass
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None  # not kept: callers choose the names, the cache must not grow with them
        service, _, method = name.lstrip("/").rpartition("/")
        composed = self._composed[name] = self._chain.handler(service, method, handler)
        return composed


class ChainedRegistrar:
    """Stands in for a `grpc.aio.Server` where generated ``add_XServicer_to_server``
    functions register handlers, sending every handler through `chain`."""

    def __init__(self, server: grpc.aio.Server, chain: Chain) -> None:
        self._server = server
        self._chain = chain

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        """Register `method_handlers` of `service_name`, each through the chain."""
        self._server.add_registered_method_handlers(service_name, self._chain.handlers(service_name, method_handlers))

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """Register generic handlers whose handlers run through the chain."""
        chained = tuple(ChainedGenericHandler(h, self._chain) for h in generic_rpc_handlers)
        self._server.add_generic_rpc_handlers(chained)


__all__ = [
    "INFRASTRUCTURE_SERVICES",
    "MAX_STATUS_DETAILS_BYTES",
    "Chain",
    "ChainedGenericHandler",
    "ChainedRegistrar",
    "Ended",
    "Errors",
    "Method",
    "Middleware",
    "Outcome",
    "Stage",
    "Streaming",
    "Unary",
    "UndecodableRequest",
    "status_details",
    "status_of",
    "tolerant_deserializer",
]
