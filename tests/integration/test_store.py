"""The etcd store against a real etcd: guarded writes, leases, watches, a dead etcd."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

import pytest

from sutradhar._errors import AlreadyExists, Conflict, NotFound, Unavailable
from sutradhar.services.common.etcd_server import LocalEtcd, free_port
from sutradhar.services.common.store import EtcdEndpoint, EventType, Guard, Op, Store


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
    for _ in range(60):
        if await store.get(key) is None:
            break
        await asyncio.sleep(0.1)
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
