"""gRPC server scaffolding shared by agents (SDK) and the mesh services.

Every server Sutradhar starts serves its own API, the standard
`grpc.health.v1.Health` service and server reflection; runs every handler
through one middleware chain (`sutradhar._middleware`: errors to gRPC
statuses first, then whatever middleware the server was given), composed once
per method as it is registered; and shuts down gracefully: health goes
NOT_SERVING first, then in-flight calls get `grace` to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from sutradhar._errors import SutradharError
from sutradhar._middleware import Chain, ChainedRegistrar, Middleware
from sutradhar._tls import TlsSource, server_credentials

log = logging.getLogger(__name__)

_Servicer = TypeVar("_Servicer")

#: Default largest message a server accepts or sends (4 MiB, gRPC's default).
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


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


@dataclass
class GrpcHost:
    """One gRPC server with health and reflection, bound to `host:port`.

    Build it, register servicers with `add_servicer` (or method handlers with
    `add_method_handlers`), then `await start()`. Both send every handler
    through `chain`, composed there and then; a handler registered on
    `server` directly would bypass it. `port` holds the bound port afterwards
    (pass 0 to pick a free one).

    grpc.health.v1 runs through the chain too (stages see `Method.infrastructure`
    and may skip it); reflection's bidirectional stream is registered as it is
    (see `sutradhar._middleware`), and both keep answering grpcurl.
    """

    service_names: Iterable[str]
    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    tls: TlsSource | None = None
    """The server's certificate, key and trust bundle: the port then speaks mutual TLS only,
    requires a client certificate of the bundle, and picks up rotated files for each new
    connection (`sutradhar._tls`). None: plaintext (development with --insecure only)."""
    require_client_auth: bool = True
    """With `tls`: require a client certificate on `port` (every port of the mesh). False only
    for a server whose callers all authenticate with a bearer token (the registry's bootstrap port)."""
    token_port: int | None = None
    """A second port of the same server (with `tls`) that asks for no client certificate:
    callers that hold only a bearer token connect there, server-authenticated TLS, and
    authentication refuses any call without a token. None: no such port; 0 picks a free one."""
    middleware: Sequence[Middleware] = ()
    """Stages after the built-in errors stage (tracing, metrics, authentication, audit,
    authorization, rate limits), ordered by `Middleware.stage`."""
    server: grpc.aio.Server = field(init=False)
    chain: Chain = field(init=False)
    health: health.aio.HealthServicer = field(init=False)

    def __post_init__(self) -> None:
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.chain = Chain(self.middleware)
        self._registrar = ChainedRegistrar(self.server, self.chain)
        self.health = health.aio.HealthServicer()
        self.add_servicer(health_pb2_grpc.add_HealthServicer_to_server, self.health)
        self.service_names = list(self.service_names)
        self.add_servicer(
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
            reflection.aio.ReflectionServicer([*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]),
        )

    def add_servicer(self, add_to_server: Callable[[_Servicer, Any], None], servicer: _Servicer) -> None:
        """Register `servicer` with its generated ``add_XServicer_to_server``
        function, every method through the chain."""
        add_to_server(servicer, self._registrar)

    def add_method_handlers(self, service_name: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        """Register hand-made method handlers (method name -> handler) of
        `service_name`, every one through the chain."""
        self._registrar.add_registered_method_handlers(service_name, handlers)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def token_address(self) -> str | None:
        """"host:port" of the token port (after start), None without one."""
        return None if self.token_port is None else f"{self.host}:{self.token_port}"

    async def start(self) -> None:
        """Bind, start serving, and report NOT_SERVING until `set_serving()`."""
        try:
            if self.tls is None:
                bound = self.server.add_insecure_port(self.address)
            else:
                bound = self.server.add_secure_port(
                    self.address, server_credentials(self.tls, require_client_auth=self.require_client_auth)
                )
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
        if self.token_port is not None:
            if self.tls is None:
                raise SutradharError("a token port needs TLS (a certificate for the server); drop --token-port")
            token_bound = 0
            with contextlib.suppress(RuntimeError):
                token_bound = self.server.add_secure_port(
                    f"{self.host}:{self.token_port}", server_credentials(self.tls, require_client_auth=False)
                )
            if token_bound == 0:
                raise SutradharError(
                    f"cannot listen on {self.host}:{self.token_port} (token port): the port is in use or not "
                    "allowed; stop what listens there or choose another --token-port"
                )
            self.token_port = token_bound
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


