"""Writing load records (`keys.load_key`, `keys.load_value`) under a lease that is kept
alive while its writer writes: the routers' `LoadPublisher` and the registry's
`ReportLoad` for callers that route themselves share this."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from sutradhar._errors import NotFound, SutradharError
from sutradhar.services.common.store import Op, Store

log = logging.getLogger(__name__)

#: Ops in one etcd transaction (etcd allows 128).
TXN_OPS = 100


class RenewedLease:
    """A lease granted on first use, renewed by `get` at most every third of its TTL,
    and granted anew when it had lapsed (`what` names its holder in the log)."""

    def __init__(self, store: Store, ttl: timedelta, *, what: str) -> None:
        self.store = store
        self.ttl = ttl
        self.what = what
        self.id = 0
        self._renewed = 0.0

    async def get(self, now: float) -> int:
        """The lease id, renewed or granted as needed (`now`: monotonic seconds)."""
        if self.id and now - self._renewed >= self.ttl.total_seconds() / 3:
            try:
                await self.store.keep_alive(self.id)
                self._renewed = now
            except NotFound:
                log.warning("%s lease %x lapsed; granting a new one", self.what, self.id)
                self.id = 0
        if not self.id:
            self.id = await self.store.grant_lease(self.ttl)
            self._renewed = now
        return self.id

    async def revoke(self) -> None:
        """Revoke the lease (its keys go at once); etcd trouble is ignored (it lapses anyway)."""
        if self.id:
            with contextlib.suppress(SutradharError):
                await self.store.revoke_lease(self.id)
            self.id = 0


async def commit_in_chunks(store: Store, ops: Sequence[Op]) -> None:
    """Apply `ops` in transactions of at most `TXN_OPS`."""
    for i in range(0, len(ops), TXN_OPS):
        await store.commit([], list(ops[i : i + TXN_OPS]))
