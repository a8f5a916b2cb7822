"""Prometheus metrics shared by the mesh services: the `/metrics` HTTP endpoint and the latency buckets.

Each service keeps its own `prometheus_client.CollectorRegistry` (several services can run in one
process, as the tests do), and serves it with `MetricsEndpoint` on its own HTTP port. The endpoint
is a threaded WSGI server running prometheus_client's exposition app: a scrape never runs on the
service's event loop. A service may add JSON documents at other paths (the registry's
`/scrape-targets`, services/registry/scrape_targets.py).
Metric names and labels: docs/observability.md, section "Metrics".
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

#: Latency buckets in seconds, from 100 microseconds (a routed call on loopback takes a few hundred) to 30 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)


#: A JSON document served at a path of the metrics port: called per request on the server's thread; a
#: RuntimeError is answered 503 with its message.
Document = Callable[[], bytes]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: Prometheus scrapes every few seconds."""


def _app(registry: CollectorRegistry, documents: Mapping[str, Document]) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        document = documents.get(environ.get("PATH_INFO", ""))
        if document is None:
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        try:
            body, status, kind = document(), "200 OK", "application/json"
        except RuntimeError as err:
            body, status, kind = f"{err}\n".encode(), "503 Service Unavailable", "text/plain; charset=utf-8"
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    return app


class MetricsEndpoint:
    """`/metrics` of one registry on ``host:port`` (port 0 picks a free one), and `documents` at their
    paths, started and stopped by its owner."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0,
                 documents: Mapping[str, Document] | None = None) -> None:
        self.registry = registry
        self.host = host
        self._port = port
        self.documents = dict(documents or {})
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

    def url_of(self, path: str) -> str:
        """The URL of `path` on this endpoint (after start)."""
        return self.url.removesuffix("/metrics") + path

    def start(self) -> None:
        """Bind and serve in a daemon thread; OSError when the port is taken."""
        if self._server is None:
            server_class = _Server6 if ":" in self.host else _Server
            server = make_server(self.host, self._port, _app(self.registry, self.documents),
                                 server_class=server_class, handler_class=_QuietHandler)
            thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
            thread.start()
            self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
