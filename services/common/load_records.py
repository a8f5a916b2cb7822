"""Writing load records (`keys.load_key`, `keys.load_value`) under a lease that is kept
alive while its writer writes: the routers' `LoadPublisher` and the registry's
`ReportLoad` for callers that route themselves share this. Reading them back:
`parse_record` and `LoadSum` (the router's `GetStats` sums other reporters' records)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sutradhar._errors import NotFound, SutradharError
from sutradhar.services.common.store import Op, Store

log = logging.getLogger(__name__)

#: Ops in one etcd transaction (etcd allows 128).
TXN_OPS = 100
#: The reporter part of a load key written for a caller routing itself (`ReportLoad`).
DIRECT_PREFIX = "client-"


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


@dataclass(frozen=True)
class LoadRecord:
    """One load key read back: what one reporter observed of one instance over its last window."""

    namespace: str
    instance_id: str
    reporter: str
    """A router id, or ``client-<reporter id>`` for a direct caller (`direct`)."""
    in_flight: float
    rps: float
    p50: float = 0.0
    """Median latency in seconds (0: not reported)."""
    p99: float = 0.0
    breaker_open: bool = False
    """The reporter's breaker for the instance is open or half-open."""
    ejected: bool = False
    """The reporter ejects the instance."""

    @property
    def direct(self) -> bool:
        """Written for a caller that routes itself (the SDK's DirectClient)."""
        return self.reporter.startswith(DIRECT_PREFIX)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"not a number >= 0: {value!r}")
    return float(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"not true or false: {value!r}")
    return value


def parse_record(key: str, value: bytes) -> LoadRecord | None:
    """The record of one load key and value; None when either is malformed (not ours to fail on)."""
    parts = key.rsplit("/", 3)
    if len(parts) != 4 or not all(parts[1:]):
        return None
    try:
        data = json.loads(value)
        return LoadRecord(namespace=parts[1], instance_id=parts[2], reporter=parts[3],
                          in_flight=_number(data.get("in_flight", 0)), rps=_number(data.get("rps", 0)),
                          p50=_number(data.get("p50_ms", 0)) / 1000, p99=_number(data.get("p99_ms", 0)) / 1000,
                          breaker_open=_flag(data.get("breaker_open", False)),
                          ejected=_flag(data.get("ejected", False)))
    except (ValueError, TypeError, AttributeError):
        return None


@dataclass
class LoadSum:
    """Records of several reporters of one instance, summed: in-flight and rps add up; the
    median is the rps-weighted mean of the reporters' medians, the p99 the highest; the
    reporters whose breaker is open, and those that eject it, are counted."""

    reporters: int = 0
    in_flight: float = 0.0
    rps: float = 0.0
    p99: float = 0.0
    breakers_open: int = 0
    ejecting: int = 0
    _weighted_p50: float = 0.0
    _p50_weight: float = 0.0

    def add(self, record: LoadRecord) -> None:
        """Count one more reporter's record."""
        self.reporters += 1
        self.in_flight += record.in_flight
        self.rps += record.rps
        self.p99 = max(self.p99, record.p99)
        self.breakers_open += record.breaker_open
        self.ejecting += record.ejected
        if record.p50 > 0:
            weight = record.rps or 1e-9  # an idle window's median still counts when nothing else does
            self._weighted_p50 += record.p50 * weight
            self._p50_weight += weight

    @property
    def p50(self) -> float:
        """The rps-weighted mean of the reporters' medians, in seconds (0: none reported)."""
        return self._weighted_p50 / self._p50_weight if self._p50_weight else 0.0
