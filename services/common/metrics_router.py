"""The router's Prometheus metrics (docs/observability.md, "Metrics").

Hot path: one `attempt()` per attempt, which finds the instance's pre-bound children by the Backend
object (a dict lookup, no `labels()` call) and increments / observes them. Children are bound on an
instance's first attempt (and per gRPC code on that code's first occurrence), and dropped by
`forget()` when the instance leaves the view, so label cardinality follows the live instances.

What the router already keeps per instance (in-flight, breaker state, ejections) is read from the
view at scrape time by a collector: it costs the hot path nothing and gone instances vanish with it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sutradhar._prometheus import LATENCY_BUCKETS

#: Labels of the per-instance series.
INSTANCE_LABELS = ("namespace", "agent", "instance_id")
#: Breaker states as the `state` label shows them.
BREAKER_STATES = ("closed", "open", "half_open")
_OK = grpc.StatusCode.OK


class _Children:
    """The pre-bound children of one instance."""

    __slots__ = ("by_code", "latency", "ok", "values")

    def __init__(self, requests: Counter, latency: Histogram, values: tuple[str, str, str]) -> None:
        self.values = values
        self.ok = requests.labels(*values, "OK")
        self.latency = latency.labels(*values)
        self.by_code: dict[grpc.StatusCode, Any] = {}


class RouterMetrics:
    """The router's metrics in their own registry (`registry`), served by the router's MetricsEndpoint.

    `view` is the router's View (read at scrape time); `clock` its monotonic clock (breaker timeouts).
    """

    def __init__(self, view: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sutradhar_router_requests", "Attempts the router sent to an instance, by the gRPC code they ended with "
            "(CANCELLED: a hedge that lost or a caller that went away).",
            (*INSTANCE_LABELS, "code"), registry=self.registry,
        )
        self.latency = Histogram(
            "sutradhar_router_request_duration_seconds", "Duration of attempts to an instance, any outcome.",
            INSTANCE_LABELS, buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.retries = Counter(
            "sutradhar_router_retries", "Retries: attempts after a failed one, within the retry budget.",
            ("namespace", "agent"), registry=self.registry,
        )
        self.hedges = Counter(
            "sutradhar_router_hedges", "Hedged attempts: extra attempts sent while an earlier one still ran.",
            ("namespace", "agent"), registry=self.registry,
        )
        self.refusals = Counter(
            "sutradhar_router_ratelimit_refusals", "Calls refused by a rate limit (RESOURCE_EXHAUSTED) before any "
            "instance was tried.", ("namespace", "agent"), registry=self.registry,
        )
        self._children: dict[Any, _Children] = {}
        self._view = view
        self.registry.register(_ViewCollector(view, clock))

    # -- hot path ---------------------------------------------------------

    def attempt(self, backend: Any, code: grpc.StatusCode, seconds: float) -> None:
        """One attempt to `backend` ended with `code` after `seconds`."""
        children = self._children.get(backend)
        if children is None:
            if self._view.backends.get(backend.key) is not backend:
                return  # an attempt that outlived its instance's removal: no series for a gone instance
            children = self._children[backend] = _Children(
                self.requests, self.latency, (backend.namespace, backend.agent_id, backend.instance_id)
            )
        if code is _OK:
            children.ok.inc()
        else:
            child = children.by_code.get(code)
            if child is None:
                child = children.by_code[code] = self.requests.labels(*children.values, code.name)
            child.inc()
        children.latency.observe(seconds)

    # -- rarer events -----------------------------------------------------

    def pool(self, pool: Any) -> None:
        """A pool was resolved (once per view change): its per-agent counters exist from now on, at 0."""
        agent = _agent(pool)
        for metric in (self.retries, self.hedges, self.refusals):
            metric.labels(pool.namespace, agent)

    def retry(self, pool: Any) -> None:
        self.retries.labels(pool.namespace, _agent(pool)).inc()

    def hedge(self, pool: Any) -> None:
        self.hedges.labels(pool.namespace, _agent(pool)).inc()

    def refused(self, pool: Any) -> None:
        self.refusals.labels(pool.namespace, _agent(pool)).inc()

    def forget(self, backend: Any) -> None:
        """`backend` left the view: drop its children."""
        children = self._children.pop(backend, None)
        if children is None:
            return
        for code in ("OK", *(c.name for c in children.by_code)):
            _remove(self.requests, *children.values, code)
        _remove(self.latency, *children.values)


def _agent(pool: Any) -> str:
    """The agent label of a pool: its instances' agent id (the policy's agent when they are mixed or none)."""
    types = {b.agent_id for b in pool.backends}
    if len(types) == 1:
        return next(iter(types))
    return str(pool.limit_agent or "")


def _remove(metric: Any, *values: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*values)


class _ViewCollector(Collector):
    """Per-instance state the router keeps anyway, read from the view at scrape time."""

    def __init__(self, view: Any, clock: Callable[[], float]) -> None:
        self.view = view
        self.clock = clock

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        now = self.clock()
        in_flight = GaugeMetricFamily(
            "sutradhar_router_in_flight", "Attempts running now on an instance.", labels=INSTANCE_LABELS)
        breaker = GaugeMetricFamily(
            "sutradhar_router_breaker_state", "Circuit breaker state of an instance: 1 for the current state.",
            labels=(*INSTANCE_LABELS, "state"))
        ejected = GaugeMetricFamily(
            "sutradhar_router_instance_ejected", "1 while an instance is ejected by outlier detection.",
            labels=INSTANCE_LABELS)
        ejections = CounterMetricFamily(
            "sutradhar_router_ejections", "Outlier ejections of an instance since the router first saw it.",
            labels=INSTANCE_LABELS)
        instances = GaugeMetricFamily(
            "sutradhar_router_instances", "Instances in the router's view, by registry state (serving: also 0 for "
            "a registered agent without any).",
            labels=("namespace", "agent", "state"))
        # Every registered agent has a "serving" series, 0 without serving instances (alerts need the zero).
        by_state: dict[tuple[str, str, str], int] = {(ns, agent, "serving"): 0 for ns, agent in list(self.view.agents)}
        for backend in list(self.view.backends.values()):
            values = (backend.namespace, backend.agent_id, backend.instance_id)
            in_flight.add_metric(values, backend.in_flight)
            current = backend.breaker_state(now).name.lower()
            for state in BREAKER_STATES:
                breaker.add_metric((*values, state), 1.0 if state == current else 0.0)
            ejected.add_metric(values, 1.0 if backend.outlier.ejected(now) else 0.0)
            ejections.add_metric(values, backend.outlier.ejections)
            key = (backend.namespace, backend.agent_id, backend.state.removeprefix("INSTANCE_STATE_").lower())
            by_state[key] = by_state.get(key, 0) + 1
        for key, count in by_state.items():
            instances.add_metric(key, count)
        yield from (in_flight, breaker, ejected, ejections, instances)
