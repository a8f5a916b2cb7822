"""The work queue: dedupe, one worker per key, requeue while processing, back-off."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sutradhar.services.scheduler.workqueue import WorkQueue


async def test_duplicates_collapse():
    q: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_a_key_in_flight_is_not_handed_out_twice_but_comes_back():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # changed while being processed
    assert len(q) == 0
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"


async def test_add_after_and_rate_limit():
    q: WorkQueue[str] = WorkQueue(base_delay=timedelta(milliseconds=10), max_delay=timedelta(milliseconds=40))
    q.add_after("a", timedelta(milliseconds=30))
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "a"
    q.done("a")
    delays = [q.add_rate_limited("b").total_seconds() for _ in range(4)]
    # the shared back-off's jitter takes off at most a fifth of each delay
    for delay, nominal in zip(delays, [0.01, 0.02, 0.04, 0.04], strict=True):
        assert nominal * 0.8 <= delay <= nominal
    q.forget("b")
    assert 0.008 <= q.add_rate_limited("b").total_seconds() <= 0.01
    q.close()


async def test_rate_limit_doubles_per_failure_up_to_the_cap_without_jitter():
    q: WorkQueue[str] = WorkQueue(
        base_delay=timedelta(milliseconds=10), max_delay=timedelta(milliseconds=40), rand=lambda: 0.0
    )
    assert [q.add_rate_limited("b").total_seconds() for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    q.forget("b")
    assert q.add_rate_limited("b").total_seconds() == 0.01
    q.close()
