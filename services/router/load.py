"""Publishes what this router observes of each instance's load, for the
scheduler's autoscaler.

Every `period` (1 s), for each instance that had traffic in the window (and
once more, with zeros, in the first idle window after traffic), the router
writes ``/sutradhar/v1/load/<namespace>/<instance-id>/<router-id>``
with the JSON value ``{"agent_id", "in_flight", "rps", "updated"}`` -
`in_flight` is the time-weighted average of in-flight calls over the window,
`rps` the calls sent per second, `updated` unix seconds, and ``p50_ms`` /
``p99_ms`` the recent latency percentiles when measured - under this router's
lease (TTL 10 s, kept alive), so the keys of a dead router disappear. When
an instance leaves the router's view (deregistered, lease lapsed), its load
key is deleted in the next window, so instances replaced by rolling updates
do not pile up keys under a long-lived router.

`LoadReader` is the reading side, for `GetStats`: the records every reporter
(this router, other routers, direct callers through the registry's `ReportLoad`)
wrote in a namespace, read at most once per period and namespace and summed per
instance, so `sutradhar stats` and `top` show the mesh-wide load even when most
calls bypass the router.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from sutradhar._errors import SutradharError
from sutradhar._routing.view import View
from sutradhar._values import to_duration
from sutradhar.services.common import keys
from sutradhar.services.common.load_records import LoadSum, RenewedLease, commit_in_chunks, parse_record
from sutradhar.services.common.store import Op, Store, prefix_end
from sutradhar.v1 import router_pb2

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=10)
#: Load records one `LoadReader.read` reads at most (the rest are left out, and said so).
MAX_RECORDS = 20_000
#: Namespaces (and "all") whose records `LoadReader` keeps at once.
MAX_CACHED = 64
#: Longest wait for one read of the records: GetStats answers the router's own counters without them after it.
READ_TIMEOUT = timedelta(seconds=1)


class LoadPublisher:
    """Writes the load keys of one router every period."""

    def __init__(
        self,
        store: Store,
        view: View,
        router_id: str,
        *,
        period: timedelta = timedelta(seconds=1),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.view = view
        self.router_id = router_id
        self.period = period.total_seconds()
        self.clock = clock
        self._lease = RenewedLease(store, LEASE_TTL, what="router")
        #: (namespace, instance id) -> load key this router has written and not deleted.
        self._published: dict[tuple[str, str], str] = {}

    @property
    def lease(self) -> int:
        """This router's lease id (0 before the first write)."""
        return self._lease.id

    async def publish_once(self) -> int:
        """Write one window's load keys and delete those of instances gone from
        the view; returns how many keys were written or deleted."""
        now = self.clock()
        samples = []
        live: set[tuple[str, str]] = set()
        for backend in list(self.view.backends.values()):
            live.add((backend.namespace, backend.instance_id))
            sample = backend.take_load(now)
            if sample is not None:
                samples.append((backend, sample))
        gone = {ident: key for ident, key in self._published.items() if ident not in live}
        ops = [Op(key) for key in gone.values()]
        written: dict[tuple[str, str], str] = {}
        if samples:
            lease = await self._lease.get(now)
            updated = time.time()
            for b, sample in samples:
                key = keys.load_key(b.namespace, b.instance_id, self.router_id)
                written[(b.namespace, b.instance_id)] = key
                p50, p99 = b.percentiles()
                ops.append(Op(key, keys.load_value(b.agent_id, sample.in_flight, sample.rps, updated, p50=p50,
                                                   p99=p99, breaker_open=sample.breaker_open,
                                                   ejected=sample.ejected), lease))
        await commit_in_chunks(self.store, ops)
        for ident in gone:
            del self._published[ident]
        self._published.update(written)
        return len(ops)

    async def run(self) -> None:
        """Publish every period until cancelled; etcd trouble is logged, never fatal."""
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.publish_once()
                if self.lease:
                    await self._lease.get(self.clock())
            except SutradharError as err:
                log.warning("cannot publish load to etcd: %s", err)

    async def close(self) -> None:
        """Revoke the lease: this router's load keys go at once."""
        if self.lease:
            await self._lease.revoke()
            self._published.clear()


@dataclass
class InstanceLoad:
    """The load records of one instance, summed by kind of reporter."""

    own_rps: float = 0.0
    """Calls per second of the reading router's own record."""
    routers: LoadSum = field(default_factory=LoadSum)
    direct: LoadSum = field(default_factory=LoadSum)


@dataclass(frozen=True)
class Loads:
    """One read of the load records: per (namespace, instance id), and why some or all are missing."""

    by_instance: dict[tuple[str, str], InstanceLoad]
    error: str = ""


def _reported(total: LoadSum) -> router_pb2.ReportedLoad:
    return router_pb2.ReportedLoad(
        reporters=total.reporters, in_flight=round(total.in_flight, 4), rps=round(total.rps, 4),
        latency_p50=to_duration(timedelta(seconds=total.p50)), latency_p99=to_duration(timedelta(seconds=total.p99)),
        breakers_open=total.breakers_open, ejecting=total.ejecting)


def add_reported_load(stats: Iterable[router_pb2.InstanceStats], loads: Loads) -> None:
    """Fill `rps`, `routers` and `direct` of each instance's stats from `loads`."""
    for s in stats:
        load = loads.by_instance.get((s.namespace, s.instance_id))
        if load is not None:
            s.rps = round(load.own_rps, 4)
            s.routers.CopyFrom(_reported(load.routers))
            s.direct.CopyFrom(_reported(load.direct))


class LoadReader:
    """Reads the load records of a namespace ("" for all) for `GetStats`: at most once per
    `max_age` and namespace (concurrent askers share one read), a failure kept as long."""

    def __init__(self, store: Store, router_id: str, *, max_age: timedelta = timedelta(seconds=1),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.router_id = router_id
        self.max_age = max_age.total_seconds()
        self.clock = clock
        self.reads = 0
        """Reads of etcd so far."""
        self._cache: dict[str, tuple[float, Loads]] = {}
        self._lock = asyncio.Lock()

    async def read(self, namespace: str) -> Loads:
        """The summed records of `namespace` ("": every namespace), at most `max_age` old."""
        async with self._lock:
            cached = self._cache.get(namespace)
            if cached is not None and self.clock() - cached[0] < self.max_age:
                return cached[1]
            loads = await self._read(namespace)
            now = self.clock()
            self._cache = {ns: entry for ns, entry in self._cache.items() if now - entry[0] < self.max_age}
            if len(self._cache) >= MAX_CACHED:
                self._cache.pop(min(self._cache, key=lambda ns: self._cache[ns][0]))
            self._cache[namespace] = (now, loads)
            return loads

    async def _read(self, namespace: str) -> Loads:
        prefix = f"{keys.ROOT}{keys.LOAD}/{namespace}/" if namespace else f"{keys.ROOT}{keys.LOAD}/"
        self.reads += 1
        try:
            async with asyncio.timeout(READ_TIMEOUT.total_seconds()):
                scan = await self.store.scan(prefix, prefix_end(prefix), limit=MAX_RECORDS)
        except TimeoutError:
            return Loads({}, f"etcd did not return the load records within {READ_TIMEOUT.total_seconds():g}s")
        except SutradharError as err:
            return Loads({}, f"cannot read the load records from etcd: {err.message}")
        by_instance: dict[tuple[str, str], InstanceLoad] = {}
        for kv in scan.kvs:
            record = parse_record(kv.key, kv.value)
            if record is None:
                continue
            load = by_instance.setdefault((record.namespace, record.instance_id), InstanceLoad())
            if record.reporter == self.router_id:
                load.own_rps = record.rps
            else:
                (load.direct if record.direct else load.routers).add(record)
        error = (f"only the first {MAX_RECORDS} of {scan.count} load records were read" if scan.more else "")
        return Loads(by_instance, error)
