"""An agent replica's Prometheus metrics and its `/metrics` endpoint (docs/observability.md, "Metrics").

prometheus_client is not in the SDK's base install: it is imported here only when an agent is served
with a metrics port (``pip install 'sutradhar[metrics]'``, or the `mesh` extra). Task type labels are
bounded: a type the agent declares in `task_types` is its own label value; without declared types the
first `MAX_TASK_TYPES` distinct types are, and later ones count as "other". The task id never is.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sutradhar._errors import FailedPrecondition

#: Latency buckets in seconds, the router's (services/common/metrics.py): 100 microseconds to 30 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
#: Distinct task types labelled as themselves when the agent declares none.
MAX_TASK_TYPES = 32
OTHER = "other"
OUTCOMES = ("success", "failure")


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
        self._server: Any = None
        self._thread: threading.Thread | None = None

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

    # -- the endpoint -------------------------------------------------------

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0: a free port) in a daemon thread; the bound port."""
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
