"""The etcd store against a real etcd: guarded writes, leases, watches, a dead etcd."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from sutradhar._errors import AlreadyExists, Conflict, DeadlineExceeded, NotFound, Unavailable
from sutradhar.services.common.etcd_server import LocalEtcd, free_port
from sutradhar.services.common.store import EtcdEndpoint, EventType, Guard, Op, Store
from tests.support import eventually


async def test_commit_guards_create_update_and_conflict(store: Store, unique: str) -> None:
    key = f"/test/{unique}/a"
    rev = await store.commit([Guard(key, 0)], [Op(key, b"1")])
    with pytest.raises(AlreadyExists):
        await store.commit([Guard(key, 0)], [Op(key, b"2")])
    kv = await store.get(key)
    assert kv is not None and kv.value == b"1" and kv.mod_revision == rev
    await store.commit([Guard(key, kv.mod_revision)], [Op(key, b"2")])
    with pytest.raises(Conflict, match="changed since it was read"):
        await store.commit([Guard(key, kv.mod_revision)], [Op(key, b"3")])
    assert (await store.get(key)).value == b"2"  # type: ignore[union-attr]
    await store.delete(key)
    with pytest.raises(NotFound):
        await store.commit([Guard(key, kv.mod_revision)], [Op(key, b"4")])


async def test_failed_commit_writes_nothing(store: Store, unique: str) -> None:
    a, b = f"/test/{unique}/a", f"/test/{unique}/b"
    await store.put(a, b"x")
    with pytest.raises(AlreadyExists):
        await store.commit([Guard(a, 0)], [Op(a, b"y"), Op(b, b"y")])
    assert await store.get(b) is None


async def test_list_is_sorted_and_scoped_to_the_prefix(store: Store, unique: str) -> None:
    for name in ("c", "a", "b"):
        await store.put(f"/test/{unique}/{name}", name.encode())
    await store.put(f"/test/{unique}x/other", b"no")
    items, revision = await store.list(f"/test/{unique}/")
    assert [i.key.rsplit("/", 1)[1] for i in items] == ["a", "b", "c"]
    assert revision >= max(i.mod_revision for i in items)


async def test_leased_key_disappears_when_the_lease_lapses(store: Store, unique: str) -> None:
    key = f"/test/{unique}/leased"
    lease = await store.grant_lease(timedelta(seconds=2))
    await store.put(key, b"alive", lease=lease)
    assert (await store.keep_alive(lease)).total_seconds() > 0
    kv = await store.get(key)
    assert kv is not None and kv.lease == lease
    async def lapsed() -> bool:
        return await store.get(key) is None

    await eventually(lapsed, within=6, period=0.1, what="the leased key lapsed")
    assert await store.get(key) is None
    with pytest.raises(NotFound):
        await store.keep_alive(lease)


async def test_watch_resumes_from_a_revision(store: Store, unique: str) -> None:
    prefix = f"/test/{unique}/"
    first = await store.put(prefix + "1", b"one")
    await store.put(prefix + "2", b"two")
    await store.delete(prefix + "1")
    seen = []

    async def collect() -> None:
        async for event in store.watch(prefix, start_revision=first):
            seen.append((event.type, event.kv.key.rsplit("/", 1)[1], event.prev.value if event.prev else None))
            if len(seen) == 3:
                return

    await asyncio.wait_for(collect(), 5)
    assert seen == [(EventType.PUT, "1", None), (EventType.PUT, "2", None), (EventType.DELETE, "1", b"one")]


async def test_dead_etcd_is_unavailable_with_a_hint(tmp_path: Path) -> None:
    etcd = LocalEtcd(tmp_path / "data", client_port=free_port(), log_path=tmp_path / "etcd.log")
    etcd.start()
    store = Store(EtcdEndpoint.parse(etcd.endpoint), timeout=timedelta(seconds=1))
    try:
        await store.put("/test/x", b"1")
        etcd.stop()
        with pytest.raises(Unavailable, match=r"unreachable.*check that etcd is running"):
            await store.get("/test/x")
    finally:
        etcd.stop()
        with contextlib.suppress(Exception):
            await store.close()


async def test_write_timeout_on_a_hung_etcd_is_deadline_exceeded_outcome_unknown(tmp_path: Path) -> None:
    """A write that reached a hung (SIGSTOPped) etcd may be applied when it
    resumes, so its timeout is DEADLINE_EXCEEDED ("read before retrying"), not
    UNAVAILABLE (safe to retry); reads stay UNAVAILABLE. No empty "TimeoutError: "."""
    etcd = LocalEtcd(tmp_path / "data", client_port=free_port(), log_path=tmp_path / "etcd.log")
    etcd.start()
    assert etcd.process is not None
    pid = etcd.process.pid
    store = Store(EtcdEndpoint.parse(etcd.endpoint), timeout=timedelta(seconds=1))
    stopped = False
    try:
        kv_rev = await store.put("/test/hung/a", b"before")
        os.kill(pid, signal.SIGSTOP)
        stopped = True
        with pytest.raises(DeadlineExceeded) as commit_err:
            await store.commit([Guard("/test/hung/a", kv_rev)], [Op("/test/hung/a", b"during")])
        message = str(commit_err.value)
        assert commit_err.value.code.name == "DEADLINE_EXCEEDED"
        assert "outcome is unknown" in message and "read" in message and "before retrying" in message
        assert "timed out after 1s" in message and "TimeoutError: )" not in message
        for write in (
            lambda: store.put("/test/hung/b", b"x"),
            lambda: store.delete("/test/hung/a"),
            lambda: store.grant_lease(timedelta(seconds=5)),
        ):
            with pytest.raises(DeadlineExceeded, match="outcome is unknown"):
                await write()
        with pytest.raises(Unavailable) as read_err:
            await store.get("/test/hung/a")
        assert not isinstance(read_err.value, DeadlineExceeded)
        assert read_err.value.code.name == "UNAVAILABLE"
        assert "timed out after 1s" in str(read_err.value) and "TimeoutError: )" not in str(read_err.value)
        os.kill(pid, signal.SIGCONT)
        stopped = False
        # Once etcd resumes, the store answers again (and may show writes that "failed").
        async def answers() -> bool:
            await store.get("/test/hung/a")
            return True

        await eventually(answers, within=5, period=0.1, ignoring=(Unavailable,))
        assert await store.revision() >= kv_rev
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        etcd.stop()
        with contextlib.suppress(Exception):
            await store.close()
