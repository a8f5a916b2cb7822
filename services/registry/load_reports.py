"""`ReportLoad`: the load callers that route themselves (the SDK's `DirectClient`) observed,
written where routers write theirs (`keys.load_key`, value `keys.load_value`) so the
autoscaler sums it with the routers' (docs/clients.md, decision 0020).

Each reporter gets one lease (TTL `LEASE_TTL`), renewed by its reports (at most every
third of the TTL), so its records disappear `LEASE_TTL` after its last report: when the
caller exits, crashes or stops sending traffic. The write rate is bounded per reporter
and namespace (`MIN_INTERVAL`) and per report (`MAX_LOADS` entries); reporters not heard
of for two TTLs are forgotten, so the registry's memory stays bounded by the live ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sutradhar._errors import InvalidArgument, ResourceExhausted
from sutradhar._names import validate_dns_label, validate_instance_id, validate_namespace
from sutradhar.services.common import keys
from sutradhar.services.common.load_records import RenewedLease, commit_in_chunks
from sutradhar.services.common.store import Op, Store
from sutradhar.v1 import registry_pb2 as pb

LEASE_TTL = timedelta(seconds=10)
#: A reporter reports each namespace at most this often.
MIN_INTERVAL = timedelta(milliseconds=500)
#: Entries in one report at most.
MAX_LOADS = 1000


@dataclass
class _Reporter:
    lease: RenewedLease
    seen: float = 0.0
    last_report: dict[str, float] = field(default_factory=dict)


class LoadReports:
    """Writes callers' load reports under one lease per reporter."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._reporters: dict[str, _Reporter] = {}

    def _check(self, request: pb.ReportLoadRequest, reporter: _Reporter | None, now: float) -> str:
        namespace = request.namespace or "default"
        validate_namespace(namespace)
        validate_dns_label(request.reporter_id, field="reporter_id", what="reporter id")
        if len(request.loads) > MAX_LOADS:
            raise InvalidArgument(
                f"loads: {len(request.loads)} entries, at most {MAX_LOADS} per report; report the instances "
                "of one window in several requests", field="loads")
        for i, load in enumerate(request.loads):
            validate_instance_id(load.instance_id, field=f"loads[{i}].instance_id")
            validate_dns_label(load.agent_id, field=f"loads[{i}].agent_id", what="agent id")
            for name in ("in_flight", "rps"):
                value = getattr(load, name)
                if not math.isfinite(value) or value < 0:
                    raise InvalidArgument(f"loads[{i}].{name}: must be a finite number >= 0, got {value}",
                                          field=f"loads[{i}].{name}")
            for name in ("latency_p50", "latency_p99"):
                latency = getattr(load, name)
                if latency.seconds < 0 or latency.nanos < 0:
                    raise InvalidArgument(f"loads[{i}].{name}: must be a duration >= 0, got "
                                          f"{latency.ToTimedelta()}", field=f"loads[{i}].{name}")
        last = reporter.last_report.get(namespace) if reporter is not None else None
        interval = MIN_INTERVAL.total_seconds()
        if last is not None and now - last < interval:
            raise ResourceExhausted(
                f"reporter {request.reporter_id!r} reported namespace {namespace!r} {now - last:.3f}s ago; "
                f"report each namespace at most every {interval:g}s")
        return namespace

    def _forget_stale(self, now: float) -> None:
        stale = [rid for rid, r in self._reporters.items() if now - r.seen > 2 * LEASE_TTL.total_seconds()]
        for rid in stale:
            del self._reporters[rid]

    async def report(self, request: pb.ReportLoadRequest) -> pb.ReportLoadResponse:
        """Write one report's records under its reporter's lease."""
        now = self.clock()
        namespace = self._check(request, self._reporters.get(request.reporter_id), now)
        self._forget_stale(now)
        reporter = self._reporters.get(request.reporter_id)
        if reporter is None:
            reporter = self._reporters[request.reporter_id] = _Reporter(
                RenewedLease(self.store, LEASE_TTL, what=f"load reporter {request.reporter_id!r}"))
        reporter.seen = now
        reporter.last_report[namespace] = now
        lease = await reporter.lease.get(now)
        updated = time.time()
        name = f"client-{request.reporter_id}"
        ops = [Op(keys.load_key(namespace, load.instance_id, name),
                  keys.load_value(load.agent_id, load.in_flight, load.rps, updated,
                                  p50=load.latency_p50.ToNanoseconds() / 1e9,
                                  p99=load.latency_p99.ToNanoseconds() / 1e9,
                                  breaker_open=load.breaker_open, ejected=load.ejected), lease)
               for load in request.loads]
        await commit_in_chunks(self.store, ops)
        response = pb.ReportLoadResponse()
        response.ttl.FromTimedelta(LEASE_TTL)
        return response
