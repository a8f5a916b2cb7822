"""etcd latency of a service, and the registry's objects by kind (docs/observability.md, "Metrics").

`EtcdMetrics` times every call a `Store` makes (`Store.on_call`): a histogram by etcd RPC
(Range, Txn, Put, DeleteRange, LeaseGrant, ...) and outcome, children bound on first use (a few
RPC names times two outcomes). `RegistryObjects` counts the registry's objects by kind every
`interval` with count-only range reads (no values are read), so a scrape never waits on etcd.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, Final

from prometheus_client import CollectorRegistry, Gauge, Histogram

from sutradhar._errors import SutradharError
from sutradhar._prometheus import LATENCY_BUCKETS
from sutradhar.services.common import keys
from sutradhar.services.common.store import Store, prefix_end

log = logging.getLogger(__name__)

#: What the registry keeps, by the `kind` label its gauge uses.
REGISTRY_KINDS: Final = (keys.AGENTS, keys.INSTANCES, keys.ROLEBINDINGS, keys.TOKENS, keys.RATELIMITS,
                         keys.RESOURCEQUOTAS, keys.SECRETS, keys.CONFIGMAPS)


class EtcdMetrics:
    """`sutradhar_etcd_request_duration_seconds{op, outcome}` for one store; `instrument` hooks it in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram("sutradhar_etcd_request_duration_seconds", "Time of one etcd call made by this "
                                  "service, by etcd RPC and outcome (ok, error).", ("op", "outcome"),
                                  buckets=LATENCY_BUCKETS, registry=registry)
        self._children: dict[tuple[str, bool], Any] = {}

    def instrument(self, store: Store) -> None:
        """Time every call `store` makes from now on."""
        store.on_call = self.observe

    def observe(self, op: str, seconds: float, ok: bool) -> None:
        child = self._children.get((op, ok))
        if child is None:
            child = self._children[(op, ok)] = self.duration.labels(op, "ok" if ok else "error")
        child.observe(seconds)


class RegistryObjects:
    """`sutradhar_registry_objects{kind}`, refreshed every `interval` by `run()`."""

    def __init__(self, registry: CollectorRegistry, store: Store, *,
                 interval: timedelta = timedelta(seconds=15)) -> None:
        self.store = store
        self.interval = interval
        gauge = Gauge("sutradhar_registry_objects", "Objects the registry keeps in etcd, by kind (all namespaces), "
                      "counted every 15 s.", ("kind",), registry=registry)
        self._children = {kind: gauge.labels(kind) for kind in REGISTRY_KINDS}

    async def refresh(self) -> None:
        """Count every kind once (count-only reads)."""
        for kind, child in self._children.items():
            prefix = keys.kind_prefix(kind)
            scan = await self.store.scan(prefix, prefix_end(prefix), count_only=True)
            child.set(scan.count)

    async def run(self) -> None:
        """Refresh until cancelled; an unreachable etcd keeps the last counts (and is logged once per outage)."""
        failing = False
        while True:
            try:
                await self.refresh()
                failing = False
            except SutradharError as err:
                if not failing:
                    log.warning("registry object counts not refreshed: %s", err)
                failing = True
            await asyncio.sleep(self.interval.total_seconds())
