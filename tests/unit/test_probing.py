"""The one probe-spec resolution (services.common.probing), shared by health and the scheduler."""

from __future__ import annotations

from datetime import timedelta

from sutradhar.services.common.probing import ProbeName, ProbeSettings
from sutradhar.v1 import probe_pb2, registry_pb2


def test_resolve_probe_defaults():
    r = ProbeSettings.resolve(None, runtime="process")
    assert (r.kind, r.http_path, r.period, r.timeout, r.failure_threshold, r.success_threshold) == (
        "grpc", "/health", timedelta(seconds=10), timedelta(seconds=1), 3, 1,
    )
    assert ProbeSettings.resolve(probe_pb2.ProbeSpec(), runtime="http").kind == "http"
    spec = probe_pb2.ProbeSpec(kind="tcp", failure_threshold=5, success_threshold=4)
    spec.period.FromTimedelta(timedelta(milliseconds=200))
    r = ProbeSettings.resolve(spec, runtime="process")
    assert (r.kind, r.period, r.failure_threshold, r.success_threshold) == ("tcp", timedelta(milliseconds=200), 5, 4)
    assert ProbeSettings.resolve(spec, runtime="process", liveness=True).success_threshold == 1


def test_a_url_endpoint_is_probed_over_http_whatever_the_runtime():
    """The rule the scheduler got wrong: its own defaults looked at the runtime only."""
    agent = registry_pb2.Agent(id="a", runtime="process")
    readiness = ProbeSettings.for_agent(agent, ProbeName.READINESS, endpoint="http://127.0.0.1:8080")
    assert readiness.kind == "http" and readiness.enabled
    assert ProbeSettings.for_agent(agent, ProbeName.READINESS, endpoint="127.0.0.1:8080").kind == "grpc"


def test_the_health_service_uses_the_shared_definitions():
    from sutradhar.services.common import probing
    from sutradhar.services.health import manager, probes

    assert probes.ProbeSettings is probing.ProbeSettings
    assert manager.Probers is probing.Probers
