"""The health service's Prometheus metrics (docs/observability.md, "Metrics").

Probes are counted as they end (`HealthMetrics.probe`, children bound per probe kind and result up
front); probe lag and instances by state are read from the member's state at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sutradhar._prometheus import LATENCY_BUCKETS
from sutradhar.services.common.probing import ProbeName
from sutradhar.v1 import registry_pb2

#: Probe lag quantiles exported (of the member's recent lags).
LAG_QUANTILES = (0.5, 0.99)


class HealthMetrics:
    """Registers the health member's metrics in `registry`; `manager` is its HealthManager."""

    def __init__(self, registry: CollectorRegistry, manager: Any) -> None:
        probes = Counter("sutradhar_health_probes", "Probes this member ran, by probe (readiness, liveness) and "
                         "result (success, failure).", ("probe", "result"), registry=registry)
        latency = Histogram("sutradhar_health_probe_duration_seconds", "Time of one probe.", ("probe",),
                            buckets=LATENCY_BUCKETS, registry=registry)
        self._children = {
            (name, ok): probes.labels(name.value, "success" if ok else "failure")
            for name in ProbeName for ok in (True, False)
        }
        self._latency = {name: latency.labels(name.value) for name in ProbeName}
        registry.register(_State(manager))

    def probe(self, which: ProbeName, ok: bool, seconds: float) -> None:
        """One probe ended."""
        self._children[(which, ok)].inc()
        self._latency[which].observe(seconds)


class _State(Collector):
    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        manager = self.manager
        lags = sorted(list(manager.scheduler.stats.lags))  # list(): one C-level copy while the loop runs on
        lag = GaugeMetricFamily("sutradhar_health_probe_lag_seconds", "How late probes start against their "
                                "schedule, over the member's recent probes (quantile label).", labels=("quantile",))
        for q in LAG_QUANTILES:
            lag.add_metric((str(q),), lags[min(len(lags) - 1, int(q * len(lags)))] if lags else 0.0)
        targets = GaugeMetricFamily("sutradhar_health_probed_instances", "Instances this member probes.")
        targets.add_metric([], len(manager.targets))
        states = GaugeMetricFamily("sutradhar_health_instances", "Instances in the registry by namespace and "
                                   "state, as this member sees them.", labels=("namespace", "state"))
        counts: dict[tuple[str, str], int] = {}
        for inst in list(manager.instances.values()):
            state = registry_pb2.InstanceState.Name(inst.state).removeprefix("INSTANCE_STATE_").lower()
            key = (inst.namespace, state)
            counts[key] = counts.get(key, 0) + 1
        for key, count in counts.items():
            states.add_metric(key, count)
        yield from (lag, targets, states)
