"""RPC metrics of the control-plane services (registry, health, scheduler) and their `/metrics` endpoint.

`RpcMetrics` is the middleware at `Stage.METRICS` (sdk/sutradhar/_middleware.py): it counts every
call by service, method and status code, refused calls included (it sits outside authentication),
and times unary calls, under the names go-grpc-prometheus and grpc-java use, which dashboards
for gRPC servers already graph (`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`). Children are bound per method when the chain is composed and per
code on the code's first use: no `labels()` per call. Labels are bounded by the methods a service
has and the 17 status codes.

`ServiceMetrics` bundles a service's registry, this middleware and its `MetricsEndpoint`; a service
adds its own metrics to `registry` (a collector reading its state at scrape time).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from sutradhar._middleware import Method, Outcome, Stage, Streaming, Unary
from sutradhar._prometheus import LATENCY_BUCKETS, MetricsEndpoint
from sutradhar.services.common.metrics_etcd import EtcdMetrics

_RPC_LABELS = ("grpc_service", "grpc_method")


class RpcMetrics:
    """Counts and times the RPCs of one server (see the module docstring)."""

    stage = Stage.METRICS

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter("grpc_server_started", "RPCs started on the server.",
                               (*_RPC_LABELS, "grpc_type"), registry=registry)
        self.handled = Counter("grpc_server_handled", "RPCs completed on the server, by status code (streams: when "
                               "the stream ends).", (*_RPC_LABELS, "grpc_type", "grpc_code"), registry=registry)
        self.seconds = Histogram("grpc_server_handling_seconds", "Time to handle a unary RPC.",
                                 (*_RPC_LABELS, "grpc_type"), buckets=LATENCY_BUCKETS, registry=registry)

    def _children(self, method: Method, kind: str) -> tuple[Any, dict[str, Any], Any]:
        values = (method.service, method.name, kind)
        handled = self.handled
        codes: dict[str, Any] = {"OK": handled.labels(*values, "OK")}
        return self.started.labels(*values), codes, values

    def _handled(self, codes: dict[str, Any], values: tuple[str, ...], code: str) -> None:
        child = codes.get(code)
        if child is None:
            child = codes[code] = self.handled.labels(*values, code)
        child.inc()

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next
        started, codes, values = self._children(method, "unary")
        seconds = self.seconds.labels(*values)

        def ended(status: str, error: BaseException | None, took: float) -> None:
            seconds.observe(took)
            self._handled(codes, values, status)

        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started.inc()
            with Outcome(context, ended):
                return await call_next(request, context)

        return counted

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        if method.infrastructure:
            return call_next
        started, codes, values = self._children(method, "server_stream")

        def ended(status: str, error: BaseException | None, took: float) -> None:
            self._handled(codes, values, status)

        async def counted(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started.inc()
            with Outcome(context, ended):
                async for item in call_next(request, context):
                    yield item

        return counted


class ServiceMetrics:
    """One service's metrics registry, RPC middleware and `/metrics` endpoint (None: metrics off)."""

    def __init__(self, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rpc = RpcMetrics(self.registry)
        self.etcd = EtcdMetrics(self.registry)
        self.endpoint = MetricsEndpoint(self.registry, host, port)

    @classmethod
    def of(cls, config: Any) -> ServiceMetrics | None:
        """From a service config's `metrics`, `host` and `metrics_port`."""
        return cls(config.host, config.metrics_port) if config.metrics else None

    @property
    def url(self) -> str:
        return self.endpoint.url

    def start(self) -> None:
        self.endpoint.start()

    def stop(self) -> None:
        self.endpoint.stop()
