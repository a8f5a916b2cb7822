"""`AuditLog`: audit records kept in etcd, append-only, pruned only by retention.

Each record is one key, ``/sutradhar/v1/audit/<audit-id>`` (ids sort by time;
`audit_records`), holding a `sutradhar.v1.AuditEvent` as protobuf JSON.
Nothing edits or deletes a record through an API:

- `append` creates a record, guarded so that it can never overwrite one;
- `complete` is the audit stage's own second step for a mutation: the same
  record, written at REQUEST_RECEIVED before the handler ran, moves to
  RESPONSE_COMPLETE with the call's status, guarded on the revision `append`
  returned, so it happens at most once and only to a record still as written;
- `prune` (run by `run_retention`, a background task) deletes the oldest
  records, those older than `retention_age` and those past
  `retention_count`, and nothing else.

Reading: `list` pages through records in time order with an `AuditFilter`;
`follow` streams them as they are written (optionally the kept ones first).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from sutradhar._errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, SutradharError
from sutradhar.services.common import audit_records as records
from sutradhar.services.common.audit_records import AuditFilter
from sutradhar.services.common.keys import AUDIT, ROOT, audit_key, decode, encode
from sutradhar.services.common.store import EventType, Guard, KeyValue, Op, Store, prefix_end
from sutradhar.v1 import audit_pb2 as pb

log = logging.getLogger(__name__)

PREFIX: Final = f"{ROOT}{AUDIT}/"
"""Every audit record's key starts with this."""

DEFAULT_RETENTION_COUNT: Final = 100_000
DEFAULT_RETENTION_AGE: Final = timedelta(days=30)
DEFAULT_PRUNE_INTERVAL: Final = timedelta(minutes=1)

#: Keys read per etcd range request when listing, following or pruning.
SCAN_BATCH: Final = 500
#: Records one ListAuditEvents call reads at most before it answers (a rare
#: filter over a long log answers with fewer records and a next page token).
SCAN_BUDGET: Final = 20 * SCAN_BATCH
#: Deletes per etcd transaction when pruning (each is guarded on its revision).
DELETE_BATCH: Final = 64


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def timestamp(at: datetime) -> Timestamp:
    """`at` as a protobuf Timestamp."""
    ts = Timestamp()
    ts.FromDatetime(at.astimezone(UTC))
    return ts


@dataclass(frozen=True)
class Appended:
    """A record `AuditLog.append` wrote: its id and the etcd revision that wrote it."""

    audit_id: str
    revision: int


@dataclass(frozen=True)
class AuditPage:
    """One page of `AuditLog.list`: the records, and the token of the next page ("" at the end)."""

    events: list[pb.AuditEvent]
    next_page_token: str = ""


@dataclass(frozen=True)
class AuditBatch:
    """What `AuditLog.follow` yields: records, or (`synced`) the end of the initial ones."""

    events: list[pb.AuditEvent] = field(default_factory=list)
    synced: bool = False


ALL: Final = AuditFilter(namespace="*")
"""The filter every record passes."""


def _id_of(key: str) -> str:
    return key[len(PREFIX):]


class AuditLog:
    """The audit log in etcd (see the module docstring).

    `retention_count` and `retention_age` bound what `prune` keeps; `now`
    is the clock records and retention read; `random_hex` makes the random
    part of ids (injected so tests can make ids collide).
    """

    def __init__(
        self,
        store: Store,
        *,
        retention_count: int = DEFAULT_RETENTION_COUNT,
        retention_age: timedelta = DEFAULT_RETENTION_AGE,
        now: Callable[[], datetime] = utc_now,
        random_hex: Callable[[], str] = lambda: secrets.token_hex(6),
    ) -> None:
        if retention_count < 1:
            raise InvalidArgument(f"audit retention count must be at least 1, not {retention_count}")
        if retention_age <= timedelta(0):
            raise InvalidArgument(f"audit retention age must be positive, not {retention_age}")
        self.store = store
        self.retention_count = retention_count
        self.retention_age = retention_age
        self.now = now
        self._random_hex = random_hex

    def new_id(self, at: datetime | None = None) -> str:
        """A fresh audit id for a call received at `at` (default: now)."""
        return records.new_audit_id(at or self.now(), self._random_hex())

    # -- writing ------------------------------------------------------------

    async def append(self, event: pb.AuditEvent) -> Appended:
        """Write a new record (an id is made when `event.audit_id` is empty,
        and set on `event`). Its times default to now. Raises what the store
        raises (`Unavailable`, `WriteOutcomeUnknown`) when it cannot be
        written, and `AlreadyExists` for an id taken already: a record is
        never overwritten."""
        if not event.audit_id:
            event.audit_id = self.new_id(
                event.request_received_time.ToDatetime(tzinfo=UTC) if event.HasField("request_received_time") else None
            )
        elif not records.is_audit_id(event.audit_id):
            raise InvalidArgument(f"{event.audit_id!r} is not an audit id", field="audit_id")
        if not event.HasField("request_received_time"):
            event.request_received_time.CopyFrom(timestamp(records.time_of(event.audit_id)))
        if not event.HasField("stage_time"):
            event.stage_time.CopyFrom(timestamp(self.now()))
        key = audit_key(event.audit_id)
        revision = await self.store.commit([Guard(key, 0)], [Op(key, encode(event))])
        return Appended(event.audit_id, revision)

    async def complete(self, appended: Appended, event: pb.AuditEvent) -> None:
        """Move the record `append` wrote to RESPONSE_COMPLETE: `event` is that
        record with its status filled in (stage_time is set to now). Only once,
        and only while the record is as `append` wrote it: FailedPrecondition
        otherwise; the store's errors when etcd cannot be written."""
        if event.audit_id != appended.audit_id:
            raise InvalidArgument(f"record {event.audit_id!r} is not the one appended ({appended.audit_id!r})")
        if event.stage != pb.AUDIT_STAGE_RESPONSE_COMPLETE:
            raise InvalidArgument("a record is completed at stage RESPONSE_COMPLETE only")
        event.stage_time.CopyFrom(timestamp(self.now()))
        key = audit_key(event.audit_id)
        try:
            await self.store.commit([Guard(key, appended.revision)], [Op(key, encode(event))])
        except (Conflict, NotFound) as err:
            raise FailedPrecondition(
                f"audit record {event.audit_id} is no longer as it was written ({err}); it was not completed"
            ) from err

    # -- reading ------------------------------------------------------------

    async def get(self, audit_id: str) -> pb.AuditEvent | None:
        """One record, or None."""
        kv = await self.store.get(audit_key(audit_id))
        return None if kv is None else decode(kv.value, pb.AuditEvent)

    def _start(self, flt: AuditFilter, after: str = "") -> str:
        start = PREFIX
        if flt.since is not None:
            start = max(start, PREFIX + records.first_id_at(flt.since))
        if after:
            start = max(start, audit_key(after) + "\0")
        return start

    async def list(self, flt: AuditFilter = ALL, *, page_size: int = 0, page_token: str = "") -> AuditPage:
        """One page of records matching `flt`, oldest first. A page may be short
        (even empty) with a next token when the filter is rare: it reads at
        most SCAN_BUDGET records per call."""
        size = records.page_size_of(page_size)
        start = self._start(flt, records.after_page_token(page_token) if page_token else "")
        end = prefix_end(PREFIX)
        events: list[pb.AuditEvent] = []
        scanned = 0
        while True:
            scan = await self.store.scan(start, end, limit=SCAN_BATCH)
            for i, kv in enumerate(scan.kvs):
                scanned += 1
                event = decode(kv.value, pb.AuditEvent)
                if flt.matches(event):
                    events.append(event)
                last_of_all = i == len(scan.kvs) - 1 and not scan.more
                if len(events) == size or (scanned >= SCAN_BUDGET and not last_of_all):
                    token = "" if last_of_all else records.page_token_for(_id_of(kv.key))
                    return AuditPage(events, token)
            if not scan.more or not scan.kvs:
                return AuditPage(events)
            start = scan.kvs[-1].key + "\0"

    async def follow(self, flt: AuditFilter = ALL, *, include_initial: bool = False) -> AsyncIterator[AuditBatch]:
        """Records matching `flt` as they are written and completed; with
        `include_initial`, first the kept ones (in batches), then a `synced`
        batch. Ends with `Unavailable` when etcd goes away (follow again with
        `since`); runs until the caller stops iterating."""
        start_revision = 0
        seen: dict[str, int] = {}
        if include_initial:
            first_revision = 0
            start = self._start(flt)
            end = prefix_end(PREFIX)
            while True:
                scan = await self.store.scan(start, end, limit=SCAN_BATCH)
                first_revision = first_revision or scan.revision
                # A record written or completed after the first read is also in the
                # watch, which starts there: remember it so it is sent once.
                seen.update((kv.key, kv.mod_revision) for kv in scan.kvs if kv.mod_revision > first_revision)
                batch = [e for e in (decode(kv.value, pb.AuditEvent) for kv in scan.kvs) if flt.matches(e)]
                if batch:
                    yield AuditBatch(batch)
                if not scan.more or not scan.kvs:
                    break
                start = scan.kvs[-1].key + "\0"
            yield AuditBatch(synced=True)
            start_revision = first_revision + 1
        else:
            start_revision = await self.store.revision() + 1
        async for change in self.store.watch(PREFIX, start_revision=start_revision):
            if change.type is not EventType.PUT or change.kv.mod_revision <= seen.get(change.kv.key, 0):
                continue
            event = decode(change.kv.value, pb.AuditEvent)
            if flt.matches(event):
                yield AuditBatch([event])

    # -- retention ----------------------------------------------------------

    async def prune(self) -> int:
        """Delete the records older than `retention_age`, then the oldest past
        `retention_count`; return how many went. Safe to run from several
        servers at once: every delete is guarded on the record's revision, so
        a record another pruner removed first is not counted twice, and a
        lost race ends this pass (the next one recounts)."""
        removed = await self._delete_before(PREFIX + records.age_cutoff(self.now(), self.retention_age))
        total = (await self.store.scan(PREFIX, prefix_end(PREFIX), count_only=True)).count
        excess = records.over_count(total, self.retention_count)
        while excess > 0:
            scan = await self.store.scan(PREFIX, prefix_end(PREFIX), limit=min(excess, SCAN_BATCH), keys_only=True)
            if not scan.kvs:
                break
            gone = await self._delete(scan.kvs)
            removed += gone
            excess -= gone
            if gone < len(scan.kvs):
                break
        return removed

    async def _delete_before(self, end: str) -> int:
        removed = 0
        while True:
            scan = await self.store.scan(PREFIX, end, limit=SCAN_BATCH, keys_only=True)
            if not scan.kvs:
                return removed
            gone = await self._delete(scan.kvs)
            removed += gone
            if gone < len(scan.kvs) or not scan.more:
                return removed

    async def _delete(self, kvs: Sequence[KeyValue]) -> int:
        """Delete `kvs` (oldest first) in guarded batches; how many went before a lost race."""
        removed = 0
        for i in range(0, len(kvs), DELETE_BATCH):
            batch = kvs[i : i + DELETE_BATCH]
            try:
                await self.store.commit([Guard(kv.key, kv.mod_revision) for kv in batch], [Op(kv.key) for kv in batch])
            except (Conflict, NotFound):
                return removed
            removed += len(batch)
        return removed

    async def run_retention(self, interval: timedelta = DEFAULT_PRUNE_INTERVAL) -> None:
        """Prune every `interval` until cancelled (a task of the server's
        TaskGroup); a failed pass is logged and tried again next time."""
        while True:
            try:
                removed = await self.prune()
            except SutradharError as err:
                log.warning("audit retention: could not prune the audit log: %s", err)
            else:
                if removed:
                    log.info("audit retention: removed %d records (keeping %d, at most %s old)",
                             removed, self.retention_count, self.retention_age)
            await asyncio.sleep(interval.total_seconds())


__all__ = [
    "ALL",
    "DEFAULT_PRUNE_INTERVAL",
    "DEFAULT_RETENTION_AGE",
    "DEFAULT_RETENTION_COUNT",
    "PREFIX",
    "Appended",
    "AuditBatch",
    "AuditFilter",
    "AuditLog",
    "AuditPage",
    "timestamp",
    "utc_now",
]
