"""The scheduler's Prometheus metrics (docs/observability.md, "Metrics").

Deployment state (desired, ready, available, updated replicas, restarts, conditions) is read at
scrape time from the statuses the leader's reconciler last computed (`Reconciler.statuses`); a
member that does not lead exports none, so summing over scheduler members counts each deployment
once. Reconcile duration and errors are observed around each reconcile (`SchedulerMetrics.reconcile`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sutradhar._prometheus import LATENCY_BUCKETS
from sutradhar.v1 import scheduler_pb2

T = TypeVar("T")
_LABELS = ("namespace", "deployment")
_TRUE = scheduler_pb2.ConditionStatus.Value("CONDITION_STATUS_TRUE")


class SchedulerMetrics:
    """Registers the scheduler's metrics in `registry`; `controller` is the scheduler's Controller."""

    def __init__(self, registry: CollectorRegistry, controller: Any) -> None:
        self.controller = controller
        self.duration = Histogram("sutradhar_scheduler_reconcile_duration_seconds", "Time of one reconcile of one "
                                  "deployment.", buckets=LATENCY_BUCKETS, registry=registry)
        self.errors = Counter("sutradhar_scheduler_reconcile_errors", "Reconciles that raised (retried with backoff).",
                              registry=registry)
        self.decisions = Counter("sutradhar_scheduler_autoscaler_decisions", "Autoscaler steps by decision: up, "
                                 "down, unchanged, capped (a scale-up a quota cut short).",
                                 ("namespace", "deployment", "decision"), registry=registry)
        registry.register(_Deployments(controller))
        controller.reconciler.on_autoscale = self.autoscaled

    def autoscaled(self, key: tuple[str, str], decision: str) -> None:
        """Count one autoscaler decision of deployment `key` (namespace, name)."""
        self.decisions.labels(key[0], key[1], decision).inc()

    async def reconcile(self, run: Callable[[], Awaitable[T]]) -> T:
        """`run()` (one reconcile), timed and its failure counted."""
        begin = time.perf_counter()
        try:
            return await run()
        except Exception:
            self.errors.inc()
            raise
        finally:
            self.duration.observe(time.perf_counter() - begin)


class _Deployments(Collector):
    def __init__(self, controller: Any) -> None:
        self.controller = controller

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"sutradhar_scheduler_{name}", doc, labels=(*_LABELS, *extra))

        desired = gauge("desired_replicas", "Replicas the deployment wants now (spec, or the autoscaler's choice).")
        current = gauge("replicas", "Replicas that exist, any revision and phase.")
        ready = gauge("ready_replicas", "Replicas that pass readiness and are registered.")
        available = gauge("available_replicas", "Ready replicas the health service has not taken out of rotation.")
        updated = gauge("updated_replicas", "Replicas of the current revision (rollout progress: against desired).")
        restarts = gauge("replica_restarts", "Restarts of the deployment's current replicas, summed.")
        condition = gauge("deployment_condition", "1 while a condition holds (Available, Progressing, "
                          "CrashLoopBackOff, ReplicaFailure, FailedToStart, Paused, RolledOut), else 0.",
                          ("condition",))
        leader = GaugeMetricFamily("sutradhar_scheduler_leader", "1 on the scheduler member that leads.")
        leading = bool(self.controller.leading)
        leader.add_metric([], 1.0 if leading else 0.0)
        families = [desired, current, ready, available, updated, restarts, condition]
        if leading:
            for (namespace, name), status in list(self.controller.reconciler.statuses.items()):
                values = (namespace, name)
                desired.add_metric(values, status.desired_replicas)
                current.add_metric(values, status.replicas)
                ready.add_metric(values, status.ready_replicas)
                available.add_metric(values, status.available_replicas)
                updated.add_metric(values, status.updated_replicas)
                restarts.add_metric(values, sum(r.restarts for r in status.replica_statuses))
                for c in status.conditions:
                    condition.add_metric((*values, c.type), 1.0 if c.status == _TRUE else 0.0)
        yield leader
        yield from families
