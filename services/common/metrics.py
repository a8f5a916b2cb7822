"""Prometheus metrics shared by the mesh services: the `/metrics` HTTP endpoint and the latency buckets.

Each service keeps its own `prometheus_client.CollectorRegistry` (several services can run in one
process, as the tests do), and serves it with `MetricsEndpoint` on its own HTTP port. The endpoint
runs prometheus_client's threaded WSGI server: a scrape never runs on the service's event loop.
Metric names and labels: docs/observability.md, section "Metrics".
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)

#: Latency buckets in seconds, from 100 microseconds (a routed call on loopback takes a few hundred) to 30 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)


class MetricsEndpoint:
    """`/metrics` of one registry on ``host:port`` (port 0 picks a free one), started and stopped by its owner."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = registry
        self.host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return int(self._server.server_port) if self._server is not None else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Bind and serve in a daemon thread; OSError when the port is taken."""
        if self._server is None:
            self._server, self._thread = start_http_server(self._port, addr=self.host, registry=self.registry)

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
