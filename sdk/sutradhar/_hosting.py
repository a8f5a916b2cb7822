"""gRPC server scaffolding shared by agents (SDK) and the mesh services.

Every server Sutradhar starts serves its own API, the standard
`grpc.health.v1.Health` service and server reflection; turns the project's
errors into gRPC statuses in one interceptor; and shuts down gracefully:
health goes NOT_SERVING first, then in-flight calls get `grace` to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sutradhar._errors import InvalidArgument, SutradharError

log = logging.getLogger(__name__)

#: Default largest message a server accepts or sends (4 MiB, gRPC's default).
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

#: The one log line format of agents served by the SDK and of the mesh services.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def reconnect_options(
    *,
    initial: timedelta = timedelta(milliseconds=200),
    maximum: timedelta = timedelta(seconds=1),
    connect_timeout: timedelta | None = None,
) -> list[tuple[str, int]]:
    """Channel options that retry a lost connection at least every `maximum`.

    gRPC's default reconnect back-off grows to 120 s, so a client of a service
    (or of etcd) that restarted would stay UNAVAILABLE long after it is back.
    `connect_timeout` (gRPC's "min reconnect back-off") bounds one attempt;
    leave it unset for peers that may be far away.
    """
    options = [
        ("grpc.initial_reconnect_backoff_ms", int(initial.total_seconds() * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(maximum.total_seconds() * 1000)),
    ]
    if connect_timeout is not None:
        options.append(("grpc.min_reconnect_backoff_ms", int(connect_timeout.total_seconds() * 1000)))
    return options


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


def _internal_details(err: Exception) -> str:
    return status_details(f"internal error: {type(err).__name__}: {err}")


@dataclass(frozen=True)
class UndecodableRequest:
    """What `tolerant_deserializer` returns for bytes that are not a valid request."""

    error: InvalidArgument


def tolerant_deserializer(
    deserializer: Callable[[bytes], Any] | None,
) -> Callable[[bytes], Any] | None:
    """Wrap a request deserializer so that bad bytes (corrupt wire format,
    invalid UTF-8 in a string field) give an `UndecodableRequest` instead of
    raising: an exception there becomes gRPC's UNKNOWN, outside any handler."""
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


def _wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            if isinstance(request, UndecodableRequest):
                raise request.error
            return await behavior(request, context)
        except SutradharError as err:
            await context.abort(err.code, status_details(err.message))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as err:
            log.exception("unhandled error in %s", behavior)
            await context.abort(grpc.StatusCode.INTERNAL, _internal_details(err))

    return wrapper


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            if isinstance(request, UndecodableRequest):
                raise request.error
            async for item in behavior(request, context):
                yield item
        except SutradharError as err:
            await context.abort(err.code, status_details(err.message))
        except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
            raise
        except Exception as err:
            log.exception("unhandled error in %s", behavior)
            await context.abort(grpc.StatusCode.INTERNAL, _internal_details(err))

    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns a `SutradharError` raised by a handler into its gRPC status, and
    any other exception into INTERNAL with the message (never UNKNOWN); a
    request that does not decode gets INVALID_ARGUMENT; status messages are
    cut to MAX_STATUS_DETAILS_BYTES."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=tolerant_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream),
                request_deserializer=tolerant_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler


@dataclass
class GrpcHost:
    """One gRPC server with health and reflection, bound to `host:port`.

    Build it, register servicers on `server`, then `await start()`. `port`
    holds the bound port afterwards (pass 0 to pick a free one).
    """

    service_names: Iterable[str]
    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    interceptors: list[grpc.aio.ServerInterceptor] = field(default_factory=list)
    error_interceptor: bool = True
    """False leaves out ErrorInterceptor (a hot path whose handlers abort by themselves)."""
    server: grpc.aio.Server = field(init=False)
    health: health.aio.HealthServicer = field(init=False)

    def __post_init__(self) -> None:
        self.server = grpc.aio.server(
            interceptors=[ErrorInterceptor(), *self.interceptors] if self.error_interceptor else self.interceptors,
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names = list(self.service_names)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind, start serving, and report NOT_SERVING until `set_serving()`."""
        try:
            bound = self.server.add_insecure_port(self.address)
        except RuntimeError as err:
            bound = 0
            reason = str(err)
        else:
            reason = ""
        if bound == 0:
            raise SutradharError(
                f"cannot listen on {self.address}: the port is in use or not allowed {reason}".strip()
                + "; stop what listens there or choose another port"
            )
        self.port = bound
        await self.server.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def set_serving(self, serving: bool = True) -> None:
        """Report SERVING (or NOT_SERVING) for the server and each service."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: timedelta = timedelta(seconds=5)) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let in-flight ones finish."""
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        await self.server.stop(grace.total_seconds())


def install_signal_handlers(stop: asyncio.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT (Ctrl-C)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


