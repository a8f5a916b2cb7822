"""The audit log on a real etcd: append-only records, list with filters and pages,
follow, and retention by age and by count (oldest first)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sutradhar._errors import AlreadyExists, FailedPrecondition, InvalidArgument
from sutradhar.services.common.audit import PREFIX, AuditBatch, AuditLog, timestamp
from sutradhar.services.common.audit_records import AuditFilter
from sutradhar.services.common.etcd_server import LocalEtcd, free_port
from sutradhar.services.common.store import EtcdEndpoint, Store, prefix_end
from sutradhar.v1 import audit_pb2 as pb

T0 = datetime(2026, 5, 10, 14, 0, tzinfo=UTC)


class Clock:
    """A wall clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


def record(namespace: str, *, verb: str = "create", principal: str = "spiffe://sutradhar.local/ns/default/user/alice",
           decision: int = pb.AUDIT_DECISION_ALLOW, at: datetime | None = None) -> pb.AuditEvent:
    event = pb.AuditEvent(
        stage=pb.AUDIT_STAGE_RESPONSE_COMPLETE, namespace=namespace, verb=verb, resource="agents", name="echo",
        principal=principal, decision=decision, status_code="OK", method="/sutradhar.v1.RegistryService/RegisterAgent",
        request_id="r1",
    )
    if at is not None:
        event.request_received_time.CopyFrom(timestamp(at))
    return event


@pytest.fixture
def own_etcd() -> Iterator[LocalEtcd]:
    """An etcd of this test alone (retention deletes across the whole audit prefix)."""
    root = Path(tempfile.mkdtemp(prefix="sutradhar-audit-etcd-"))
    server = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def own_store(own_etcd: LocalEtcd) -> AsyncIterator[Store]:
    s = Store(EtcdEndpoint.parse(own_etcd.endpoint))
    try:
        yield s
    finally:
        await s.close()


async def everything(log: AuditLog, flt: AuditFilter, page_size: int = 0) -> tuple[list[pb.AuditEvent], int]:
    """Every matching record through every page, and how many pages it took."""
    events: list[pb.AuditEvent] = []
    token, pages = "", 0
    while True:
        page = await log.list(flt, page_size=page_size, page_token=token)
        events.extend(page.events)
        pages += 1
        token = page.next_page_token
        if not token:
            return events, pages


async def test_records_are_listed_in_time_order_with_filters_and_pages(store: Store, unique: str) -> None:
    clock = Clock(T0)
    log = AuditLog(store, now=clock)
    other = f"{unique}-other"
    bob = "spiffe://sutradhar.local/ns/default/user/bob"
    ids = []
    for i in range(7):
        clock.advance(timedelta(seconds=1))
        event = record(unique, verb="delete" if i % 3 == 0 else "create", at=clock(),
                       principal=f"{bob} (token jti-{i})" if i == 4 else "spiffe://sutradhar.local/ns/default/user/alice",
                       decision=pb.AUDIT_DECISION_DENY if i == 5 else pb.AUDIT_DECISION_ALLOW)
        ids.append((await log.append(event)).audit_id)
        await log.append(record(other, at=clock()))

    got, pages = await everything(log, AuditFilter(namespace=unique), page_size=2)
    assert [e.audit_id for e in got] == ids and ids == sorted(ids)
    assert pages == 4
    assert [e.audit_id for e in (await everything(log, AuditFilter(namespace=unique, verb="delete")))[0]] == ids[::3]
    # A SPIFFE ID alone matches every token of it.
    assert [e.audit_id for e in (await everything(log, AuditFilter(namespace=unique, principal=bob)))[0]] == [ids[4]]
    denied = (await everything(log, AuditFilter(namespace=unique, decision=pb.AUDIT_DECISION_DENY)))[0]
    assert [e.audit_id for e in denied] == [ids[5]]
    since = (await everything(log, AuditFilter(namespace=unique, since=T0 + timedelta(seconds=5))))[0]
    assert [e.audit_id for e in since] == ids[4:]
    every = [e.namespace for e in (await everything(log, AuditFilter(namespace="*", since=T0)))[0]]
    assert every.count(unique) == 7 and every.count(other) == 7
    with pytest.raises(InvalidArgument, match="page_token"):
        await log.list(AuditFilter(namespace=unique), page_token="not-a-token")


async def test_a_record_is_never_overwritten_and_completed_once(store: Store, unique: str) -> None:
    log = AuditLog(store, random_hex=lambda: "abcabcabcabc")
    first = record(unique, at=T0)
    first.stage = pb.AUDIT_STAGE_REQUEST_RECEIVED
    appended = await log.append(first)
    with pytest.raises(AlreadyExists):
        await log.append(record(unique, at=T0))  # same time, same random part: the same id
    done = pb.AuditEvent()
    done.CopyFrom(first)
    done.stage, done.status_code = pb.AUDIT_STAGE_RESPONSE_COMPLETE, "OK"
    await log.complete(appended, done)
    kept = await log.get(appended.audit_id)
    assert kept is not None and kept.stage == pb.AUDIT_STAGE_RESPONSE_COMPLETE and kept.namespace == unique
    done.status_code = "INTERNAL"
    with pytest.raises(FailedPrecondition, match="no longer as it was written"):
        await log.complete(appended, done)
    kept = await log.get(appended.audit_id)
    assert kept is not None and kept.status_code == "OK"


async def test_follow_sends_kept_records_then_new_ones_and_their_completion(store: Store, unique: str) -> None:
    log = AuditLog(store)
    before = await log.append(record(unique))
    await log.append(record(f"{unique}-x"))
    got: list[AuditBatch] = []
    synced = asyncio.Event()
    arrived = asyncio.Event()

    async def follow() -> None:
        async for batch in log.follow(AuditFilter(namespace=unique), include_initial=True):
            got.append(batch)
            if batch.synced:
                synced.set()
            if sum(len(b.events) for b in got) >= 3:
                arrived.set()
                return

    task = asyncio.create_task(follow())
    await asyncio.wait_for(synced.wait(), 10)
    received = record(unique)
    received.stage = pb.AUDIT_STAGE_REQUEST_RECEIVED
    appended = await log.append(received)
    done = pb.AuditEvent()
    done.CopyFrom(received)
    done.stage = pb.AUDIT_STAGE_RESPONSE_COMPLETE
    await log.complete(appended, done)
    await asyncio.wait_for(arrived.wait(), 10)
    await task
    events = [e for b in got for e in b.events]
    assert [e.audit_id for e in events] == [before.audit_id, appended.audit_id, appended.audit_id]
    assert [e.stage for e in events[1:]] == [pb.AUDIT_STAGE_REQUEST_RECEIVED, pb.AUDIT_STAGE_RESPONSE_COMPLETE]
    assert [b.synced for b in got].count(True) == 1 and got[1].synced


async def test_retention_prunes_the_oldest_by_age_then_by_count(own_store: Store) -> None:
    clock = Clock(T0)
    log = AuditLog(own_store, retention_count=10, retention_age=timedelta(hours=1), now=clock)
    ids = []
    for _ in range(10):
        ids.append((await log.append(record("default", at=clock()))).audit_id)
        clock.advance(timedelta(minutes=10))  # records at 0, 10, ..., 90 minutes
    # Now T0 + 100 min: those older than an hour (received before T0 + 40 min) go: 4 records.
    assert await log.prune() == 4
    left = [kv.key.removeprefix(PREFIX) for kv in (await own_store.scan(PREFIX, prefix_end(PREFIX))).kvs]
    assert left == ids[4:]
    # Then the count: 9 kept, 5 may be: the 4 oldest go.
    log.retention_age, log.retention_count = timedelta(days=1), 5
    for _ in range(3):
        ids.append((await log.append(record("default", at=clock()))).audit_id)
        clock.advance(timedelta(seconds=1))
    assert await log.prune() == 4
    left = [kv.key.removeprefix(PREFIX) for kv in (await own_store.scan(PREFIX, prefix_end(PREFIX))).kvs]
    assert left == ids[-5:]
    assert await log.prune() == 0


async def test_retention_by_count_pages_through_many_records(own_store: Store) -> None:
    clock = Clock(T0)
    log = AuditLog(own_store, retention_count=30, now=clock)
    for _ in range(700):
        clock.advance(timedelta(milliseconds=1))
        await log.append(record("default", at=clock()))
    assert await log.prune() == 670
    assert (await own_store.scan(PREFIX, prefix_end(PREFIX), count_only=True)).count == 30
