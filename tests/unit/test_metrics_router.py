"""RouterMetrics without a network: pre-bound children, codes, scrape-time view state, forgetting instances."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
from prometheus_client import generate_latest

from sutradhar._routing.backend import Backend
from sutradhar.services.common.metrics_router import RouterMetrics


def backend(instance_id: str, agent: str = "echo", namespace: str = "ns") -> Backend:
    b = Backend(namespace, instance_id)
    b.agent_id = agent
    b.agent_type = agent
    b.state = "INSTANCE_STATE_SERVING"
    return b


def value(metrics: RouterMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_attempts_count_by_instance_and_code_and_fill_the_histogram() -> None:
    a, b = backend("a"), backend("b")
    view = SimpleNamespace(backends={a.key: a, b.key: b}, agents={("ns", "echo"): object()})
    metrics = RouterMetrics(view, clock=lambda: 0.0)
    for _ in range(3):
        metrics.attempt(a, grpc.StatusCode.OK, 0.0002)
    metrics.attempt(b, grpc.StatusCode.UNAVAILABLE, 0.003)
    labels = {"namespace": "ns", "agent": "echo"}
    assert value(metrics, "sutradhar_router_requests_total", **labels, instance_id="a", code="OK") == 3
    assert value(metrics, "sutradhar_router_requests_total", **labels, instance_id="b", code="UNAVAILABLE") == 1
    assert value(metrics, "sutradhar_router_request_duration_seconds_bucket", **labels, instance_id="a",
                 le="0.00025") == 3
    assert value(metrics, "sutradhar_router_request_duration_seconds_count", **labels, instance_id="b") == 1
    assert value(metrics, "sutradhar_router_breaker_state", **labels, instance_id="a", state="closed") == 1
    assert value(metrics, "sutradhar_router_breaker_state", **labels, instance_id="a", state="open") == 0
    assert value(metrics, "sutradhar_router_instances", **labels, state="serving") == 2


def test_a_forgotten_instance_leaves_no_series() -> None:
    a = backend("a")
    view = SimpleNamespace(backends={a.key: a}, agents={})
    metrics = RouterMetrics(view)
    metrics.attempt(a, grpc.StatusCode.OK, 0.001)
    metrics.attempt(a, grpc.StatusCode.DEADLINE_EXCEEDED, 0.001)
    view.backends.clear()
    metrics.forget(a)
    metrics.forget(a)  # twice is harmless
    assert 'instance_id="a"' not in generate_latest(metrics.registry).decode()
    # An attempt still running when the instance left ends later: it brings no series back.
    metrics.attempt(a, grpc.StatusCode.OK, 0.001)
    assert 'instance_id="a"' not in generate_latest(metrics.registry).decode()


def test_a_registered_agent_without_instances_shows_zero_serving() -> None:
    view = SimpleNamespace(backends={}, agents={("ns", "gone"): object()})
    metrics = RouterMetrics(view)
    assert value(metrics, "sutradhar_router_instances", namespace="ns", agent="gone", state="serving") == 0


def test_pools_bind_their_counters_at_zero() -> None:
    a = backend("a")
    metrics = RouterMetrics(SimpleNamespace(backends={}, agents={}))
    pool = SimpleNamespace(namespace="ns", backends=[a], limit_agent="echo")
    metrics.pool(pool)
    for name in ("retries", "hedges", "ratelimit_refusals"):
        assert value(metrics, f"sutradhar_router_{name}_total", namespace="ns", agent="echo") == 0
    metrics.retry(pool)
    metrics.hedge(pool)
    metrics.refused(pool)
    assert value(metrics, "sutradhar_router_retries_total", namespace="ns", agent="echo") == 1
