"""Prometheus metrics of the SDK and the mesh: the `/metrics` HTTP endpoint, the latency buckets, an
agent replica's metrics (docs/observability.md, "Metrics").

prometheus_client is not in the SDK's base install: it is imported here only when an agent is served
with a metrics port (``pip install 'sutradhar[metrics]'``, or the `mesh` extra). Task type labels are
bounded: a type the agent declares in `task_types` is its own label value; without declared types the
first `MAX_TASK_TYPES` distinct types are, and later ones count as "other". The task id never is.

`MetricsEndpoint` serves one `prometheus_client.CollectorRegistry` on its own HTTP port: an agent's
(`AgentPrometheus.serve`) and each mesh service's (services/common/metrics_rpc.py, the router). Every
owner keeps its own registry (several services can run in one process, as the tests do). The endpoint
is a threaded WSGI server running prometheus_client's exposition app: a scrape never runs on the
event loop. An owner may add JSON documents at other paths (the registry's `/scrape-targets`,
services/registry/scrape_targets.py).
"""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sutradhar._errors import FailedPrecondition

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Latency buckets in seconds, from 100 microseconds (a routed call on loopback takes a few hundred) to 30 s;
#: the agents' and the services' alike.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
#: Distinct task types labelled as themselves when the agent declares none.
MAX_TASK_TYPES = 32
OTHER = "other"
OUTCOMES = ("success", "failure")


# -- the endpoint -----------------------------------------------------------

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
    from prometheus_client import make_wsgi_app

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
    """`/metrics` of one registry on ``host:port`` (port 0 picks a free one; a host with a ":" is IPv6),
    and `documents` at their paths, started and stopped by its owner."""

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
        """``http://host:port/metrics`` (the host in brackets when it is IPv6)."""
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


def available() -> bool:
    """True when prometheus_client can be imported."""
    return importlib.util.find_spec("prometheus_client") is not None


class AgentPrometheus:
    """Tasks by type and outcome, task latency and in-flight of one replica, in their own registry.

    `in_flight` is read at scrape time (the servicer counts it anyway). FailedPrecondition when
    prometheus_client is not installed.
    """

    def __init__(self, *, agent: str, namespace: str, task_types: list[str], in_flight: Callable[[], int]) -> None:
        if not available():
            raise FailedPrecondition(
                f"agent {agent}: a metrics port needs prometheus-client; pip install 'sutradhar[metrics]' "
                "(or leave --metrics-port / SUTRADHAR_METRICS_PORT unset)"
            )
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.registry import Collector

        self.registry = CollectorRegistry(auto_describe=True)
        self._tasks = Counter("sutradhar_agent_tasks", "Tasks this replica ran, by task type and outcome (failure: a "
                              "failed result, an exception, a deadline or a cancellation).",
                              ("namespace", "agent", "task_type", "outcome"), registry=self.registry)
        self._latency = Histogram("sutradhar_agent_task_duration_seconds", "Time from a task's arrival to its result.",
                                  ("namespace", "agent", "task_type"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self._constant = (namespace, agent)
        self._declared = frozenset(task_types)
        self._children: dict[str, tuple[Any, Any, Any]] = {}
        for task_type in task_types or [""]:
            self._bind(task_type)

        class _InFlight(Collector):
            def collect(self) -> Iterator[Any]:
                family = GaugeMetricFamily("sutradhar_agent_in_flight", "Tasks running on this replica now.",
                                           labels=("namespace", "agent"))
                family.add_metric(list(outer._constant), in_flight())
                yield family

        outer = self
        self.registry.register(_InFlight())
        self.endpoint: MetricsEndpoint | None = None
        """Where /metrics is served, once `serve` started it."""

    def _bind(self, task_type: str) -> tuple[Any, Any, Any]:
        values = (*self._constant, task_type)
        children = (self._tasks.labels(*values, "success"), self._tasks.labels(*values, "failure"),
                    self._latency.labels(*values))
        self._children[task_type] = children
        return children

    def task_done(self, task_type: str, ok: bool, seconds: float) -> None:
        """One task ended."""
        children = self._children.get(task_type)
        if children is None:
            if self._declared or len(self._children) >= MAX_TASK_TYPES:
                children = self._children.get(OTHER) or self._bind(OTHER)
            else:
                children = self._bind(task_type)
        children[0 if ok else 1].inc()
        children[2].observe(seconds)

    # -- serving ------------------------------------------------------------

    def serve(self, host: str, port: int) -> MetricsEndpoint:
        """Serve /metrics on host:port (0: a free port) in a daemon thread; the started endpoint
        (its `port` and `url`). OSError when the port cannot be bound."""
        endpoint = MetricsEndpoint(self.registry, host, port)
        endpoint.start()
        self.endpoint = endpoint
        return endpoint

    def close(self) -> None:
        """Stop serving /metrics (nothing when not serving)."""
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            endpoint.stop()
