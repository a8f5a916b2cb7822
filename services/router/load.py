"""Publishes what this router observes of each instance's load, for the
scheduler's autoscaler.

Every `period` (1 s), for each instance that had traffic in the window (and
once more, with zeros, in the first idle window after traffic), the router
writes ``/sutradhar/v1/load/<namespace>/<instance-id>/<router-id>``
with the JSON value ``{"agent_id", "in_flight", "rps", "updated"}`` -
`in_flight` is the time-weighted average of in-flight calls over the window,
`rps` the calls sent per second, `updated` unix seconds - under this router's
lease (TTL 10 s, kept alive), so the keys of a dead router disappear. When
an instance leaves the router's view (deregistered, lease lapsed), its load
key is deleted in the next window, so instances replaced by rolling updates
do not pile up keys under a long-lived router.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sutradhar._errors import SutradharError
from sutradhar._routing.view import View
from sutradhar.services.common import keys
from sutradhar.services.common.load_records import RenewedLease, commit_in_chunks
from sutradhar.services.common.store import Op, Store

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=10)


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
                ops.append(Op(key, keys.load_value(b.agent_id, sample.in_flight, sample.rps, updated), lease))
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
