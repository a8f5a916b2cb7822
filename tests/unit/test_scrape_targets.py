"""The registry's Prometheus HTTP discovery: which instances are targets, the document's shape, its
cache, and the metrics port's JSON documents (served over real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from sutradhar._labels import METRICS_PORT_LABEL
from sutradhar._prometheus import MetricsEndpoint
from sutradhar.services.registry.scrape_targets import PATH, ScrapeTargets, metrics_target, target_groups
from sutradhar.v1 import registry_pb2


def instance(endpoint: str, port: str | None = "9100", **labels: str) -> registry_pb2.Instance:
    if port is not None:
        labels[METRICS_PORT_LABEL] = port
    return registry_pb2.Instance(id="echo-1", namespace="team-a", agent_id="echo", endpoint=endpoint,
                                 runtime="process", version="1.2.0", state=registry_pb2.INSTANCE_STATE_SERVING,
                                 labels=labels)


@pytest.mark.parametrize(("endpoint", "port", "want"), [
    ("127.0.0.1:50051", "9100", "127.0.0.1:9100"),
    ("10.0.0.7:50051", "65535", "10.0.0.7:65535"),
    ("[::1]:50051", "9100", "[::1]:9100"),
    ("127.0.0.1:50051", None, None),  # no label: the agent serves no metrics
    ("127.0.0.1:50051", "http", None),  # not a port
    ("127.0.0.1:50051", "0", None),
    ("127.0.0.1:50051", "70000", None),
    ("127.0.0.1:50051", "-1", None),
    ("http://agents.example:8080", "9100", None),  # a URL agent: no host of ours to scrape
    ("in-process", "9100", None),
])
def test_metrics_target(endpoint: str, port: str | None, want: str | None) -> None:
    assert metrics_target(instance(endpoint, port)) == want


def test_a_group_per_target_with_meta_labels_only() -> None:
    groups = target_groups([
        instance("127.0.0.1:50051", **{"sutradhar.deployment": "web"}),
        instance("127.0.0.1:50052", None),
    ])
    assert groups == [{
        "targets": ["127.0.0.1:9100"],
        "labels": {
            "__meta_sutradhar_namespace": "team-a",
            "__meta_sutradhar_agent": "echo",
            "__meta_sutradhar_instance_id": "echo-1",
            "__meta_sutradhar_deployment": "web",
            "__meta_sutradhar_runtime": "process",
            "__meta_sutradhar_version": "1.2.0",
            "__meta_sutradhar_state": "serving",
        },
    }]


@pytest.fixture()
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running on its own thread, as the registry's runs beside the HTTP server's threads."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running

    async def settle() -> None:  # let cancelled reads finish before the loop stops
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(settle(), running).result(5)
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


def test_reads_at_most_once_per_interval(loop: asyncio.AbstractEventLoop) -> None:
    reads: list[int] = []
    now = [100.0]

    async def read() -> list[registry_pb2.Instance]:
        reads.append(1)
        return [instance("127.0.0.1:50051", str(9100 + len(reads)))]

    targets = ScrapeTargets(read, monotonic=lambda: now[0])
    targets.bind(loop)
    first = json.loads(targets.document())
    now[0] += 1.0
    assert json.loads(targets.document()) == first and len(reads) == 1  # within 2 s: the kept document
    now[0] += 1.5
    assert json.loads(targets.document()) != first and len(reads) == 2


def test_a_read_that_fails_or_hangs_is_a_runtime_error_naming_it(loop: asyncio.AbstractEventLoop) -> None:
    async def broken() -> list[registry_pb2.Instance]:
        raise ConnectionError("etcd 127.0.0.1:2379 refused")

    async def stuck() -> list[registry_pb2.Instance]:
        await asyncio.sleep(30)
        return []

    failing = ScrapeTargets(broken)
    with pytest.raises(RuntimeError, match="not serving yet"):
        failing.document()
    failing.bind(loop)
    with pytest.raises(RuntimeError, match=r"etcd 127\.0\.0\.1:2379 refused"):
        failing.document()
    hanging = ScrapeTargets(stuck, timeout=0.2)
    hanging.bind(loop)
    with pytest.raises(RuntimeError, match=r"took over 0\.2s"):
        hanging.document()


def test_the_metrics_port_serves_documents_beside_metrics() -> None:
    registry = CollectorRegistry()
    Counter("sutradhar_test_things", "things", registry=registry).inc(3)
    state = {"fail": False}

    def document() -> bytes:
        if state["fail"]:
            raise RuntimeError("etcd is unavailable")
        return b'[{"targets":["127.0.0.1:9100"],"labels":{}}]'

    endpoint = MetricsEndpoint(registry, "127.0.0.1", 0, documents={PATH: document})
    endpoint.start()
    try:
        with urllib.request.urlopen(endpoint.url, timeout=5) as answer:
            assert b"sutradhar_test_things_total 3.0" in answer.read()
        with urllib.request.urlopen(endpoint.url_of(PATH), timeout=5) as answer:
            assert answer.headers["Content-Type"] == "application/json"
            assert json.loads(answer.read())[0]["targets"] == ["127.0.0.1:9100"]
        state["fail"] = True
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(endpoint.url_of(PATH), timeout=5)
        assert refused.value.code == 503 and b"etcd is unavailable" in refused.value.read()
    finally:
        endpoint.stop()
