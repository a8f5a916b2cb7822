"""Prometheus discovery of the agents' own /metrics: the registry's `/scrape-targets`.

Prometheus's HTTP service discovery (`http_sd_configs`) polls a URL that answers a JSON list of
target groups, ``[{"targets": ["host:port"], "labels": {...}}]``. The registry serves one on its
metrics port, listing every registered instance that carries the `METRICS_PORT_LABEL` (the scheduler
sets it on replicas whose /metrics answered at registration, an SDK agent on itself when it serves
one): the target is the instance endpoint's host with that port. Labels are Prometheus
``__meta_sutradhar_*`` labels, for the scrape config to relabel (deploy/prometheus/prometheus.yml keeps
``instance_id`` and ``deployment``); they are not target labels themselves, because the agents' own
series carry ``namespace`` and ``agent`` already.

`target_groups` is the pure part; `ScrapeTargets` reads the instances (all namespaces, in batches)
when Prometheus asks, at most once per `min_interval`, from the HTTP server's thread onto the
registry's event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, Final

from sutradhar._labels import DEPLOYMENT_LABEL, METRICS_PORT_LABEL
from sutradhar.services.common import keys
from sutradhar.services.common.probing import split_host_port
from sutradhar.services.common.store import Store, prefix_end
from sutradhar.v1 import registry_pb2

#: The path of the discovery document on the registry's metrics port.
PATH: Final = "/scrape-targets"
#: Instances read per etcd request.
SCAN_BATCH: Final = 500
#: A request waits at most this long for etcd before it answers 503 (Prometheus keeps its last targets).
READ_TIMEOUT: Final = 5.0


def metrics_target(instance: registry_pb2.Instance) -> str | None:
    """"host:port" of the instance's /metrics, or None when it advertises none (no label, a label that
    is not a port, or an endpoint without a host: an in-process or URL instance)."""
    port = instance.labels.get(METRICS_PORT_LABEL, "")
    if not port.isdigit() or not 1 <= int(port) <= 65535 or "://" in instance.endpoint:
        return None
    try:
        host, _ = split_host_port(instance.endpoint)
    except ValueError:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def target_groups(instances: Iterable[registry_pb2.Instance]) -> list[dict[str, Any]]:
    """One http_sd target group per instance with a metrics port, in the order given."""
    groups = []
    for instance in instances:
        target = metrics_target(instance)
        if target is None:
            continue
        groups.append({
            "targets": [target],
            "labels": {
                "__meta_sutradhar_namespace": instance.namespace,
                "__meta_sutradhar_agent": instance.agent_id,
                "__meta_sutradhar_instance_id": instance.id,
                "__meta_sutradhar_deployment": instance.labels.get(DEPLOYMENT_LABEL, ""),
                "__meta_sutradhar_runtime": instance.runtime,
                "__meta_sutradhar_version": instance.version,
                "__meta_sutradhar_state": registry_pb2.InstanceState.Name(instance.state)
                .removeprefix("INSTANCE_STATE_").lower(),
            },
        })
    return groups


async def read_instances(store: Store) -> list[registry_pb2.Instance]:
    """Every registered instance, all namespaces, read in bounded batches."""
    prefix = keys.kind_prefix(keys.INSTANCES)
    start, end = prefix, prefix_end(prefix)
    out: list[registry_pb2.Instance] = []
    while True:
        scan = await store.scan(start, end, limit=SCAN_BATCH)
        out.extend(keys.decode(kv.value, registry_pb2.Instance) for kv in scan.kvs)
        if not scan.more or not scan.kvs:
            return out
        start = scan.kvs[-1].key + "\0"


class ScrapeTargets:
    """The discovery document, read on demand and kept for `min_interval` (a burst of requests, or
    several Prometheus servers, costs one etcd read)."""

    def __init__(self, read: Callable[[], Awaitable[Iterable[registry_pb2.Instance]]], *,
                 min_interval: timedelta = timedelta(seconds=2), monotonic: Callable[[], float] = time.monotonic,
                 timeout: float = READ_TIMEOUT) -> None:
        self._read = read
        self.timeout = timeout
        self.min_interval = min_interval.total_seconds()
        self._monotonic = monotonic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._read_at = 0.0

    async def _instances(self) -> list[registry_pb2.Instance]:
        return list(await self._read())

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the store runs on (the registry's, at start)."""
        self._loop = loop

    def document(self) -> bytes:
        """The JSON document (called on the HTTP server's thread); RuntimeError when etcd cannot be read
        in time, with the reason, which the endpoint answers as 503."""
        with self._lock:
            now = self._monotonic()
            if self._body is not None and now - self._read_at < self.min_interval:
                return self._body
            if self._loop is None:
                raise RuntimeError("the registry is not serving yet")
            future = asyncio.run_coroutine_threadsafe(self._instances(), self._loop)
            try:
                instances = future.result(timeout=self.timeout)
            except TimeoutError as err:
                future.cancel()
                raise RuntimeError(f"reading the instances from etcd took over {self.timeout:g}s") from err
            except Exception as err:
                raise RuntimeError(f"reading the instances from etcd failed: {err}") from err
            self._body = json.dumps(target_groups(instances), separators=(",", ":")).encode()
            self._read_at = now
            return self._body
