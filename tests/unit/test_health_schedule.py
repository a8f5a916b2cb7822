"""The due-time heap, the dispatcher with a fake clock, rendezvous hashing,
event derivation and the agent aggregate."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections import Counter
from datetime import timedelta

import pytest

from sutradhar.services.common.membership import owner
from sutradhar.services.health import events
from sutradhar.services.health.report import aggregate
from sutradhar.services.health.schedule import DueQueue, Job, ProbeScheduler
from sutradhar.v1 import health_pb2, registry_pb2


async def _noop() -> None:
    return None


def _job(key: str, period: float = 1.0) -> Job:
    return Job(key=key, period=timedelta(seconds=period), run=_noop)


def test_due_queue_pops_in_due_order_and_skips_stale_entries():
    q = DueQueue()
    a, b, c = _job("a"), _job("b"), _job("c")
    q.push(a, 3.0)
    q.push(b, 1.0)
    q.push(c, 2.0)
    q.push(a, 0.5)  # rescheduled earlier: the 3.0 entry is stale
    assert q.next_due() == 0.5
    assert [j.key for j in q.pop_due(1.5)] == ["a", "b"]
    assert all(j.running for j in (a, b))
    c.active = False  # removed
    assert q.pop_due(10.0) == []
    assert q.next_due() is None


def test_due_queue_limit():
    q = DueQueue()
    for i in range(10):
        q.push(_job(str(i)), float(i))
    assert len(q.pop_due(100.0, limit=4)) == 4
    assert q.next_due() == 4.0


def test_rendezvous_splits_evenly_and_moves_only_the_dead_members_keys():
    members = ["m1", "m2", "m3"]
    keys = [f"/sutradhar/v1/instances/default/i{i}" for i in range(3000)]
    before = {k: owner(members, k) for k in keys}
    counts = Counter(before.values())
    assert all(800 < counts[m] < 1200 for m in members), counts
    after = {k: owner(["m1", "m3"], k) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(before[k] == "m2" for k in moved)
    assert all(after[k] in ("m1", "m3") for k in keys)
    assert owner([], keys[0]) is None


async def test_scheduler_runs_jobs_on_time_with_a_fake_clock():
    now = [0.0]
    runs: list[tuple[str, float]] = []
    sched = ProbeScheduler(concurrency=4, clock=lambda: now[0])

    def make(key: str) -> Job:
        async def run() -> None:
            runs.append((key, now[0]))

        return Job(key=key, period=timedelta(seconds=1), run=run)

    sched.add(make("a"), 0.0)
    sched.add(make("b"), 0.5)
    task = asyncio.create_task(sched.run())
    try:
        for step in range(1, 31):
            now[0] = step * 0.1
            sched.wake()  # the fake clock moved: what the timer would do
            for _ in range(5):
                await asyncio.sleep(0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    a_times = [t for k, t in runs if k == "a"]
    b_times = [t for k, t in runs if k == "b"]
    # Fixed rate from each job's first due time; the first run of "a" is one
    # clock step late (the dispatcher started at 0.1), the rest are on time.
    assert a_times == pytest.approx([0.1, 1.0, 2.0, 3.0]), runs
    assert b_times == pytest.approx([0.5, 1.5, 2.5]), runs
    assert max(sched.stats.lags) < 0.11
    sched.remove("a")
    assert len(sched) == 1


def _inst(state: int, **kw) -> registry_pb2.Instance:
    inst = registry_pb2.Instance(id="i1", namespace="ns", agent_id="a", state=state, **kw)
    return inst


def test_event_diff_names_what_changed():
    old = _inst(registry_pb2.INSTANCE_STATE_SERVING)
    new = _inst(registry_pb2.INSTANCE_STATE_NOT_SERVING)
    new.health.readiness.last_result = registry_pb2.PROBE_RESULT_FAILURE
    new.health.readiness.last_message = "refused"
    new.health.restart_requested = True
    kinds = [e.type for e in events.diff(old, new, 7)]
    E = health_pb2.HealthEventType
    assert kinds == [E.HEALTH_EVENT_TYPE_PROBE_FAILED, E.HEALTH_EVENT_TYPE_RESTART_REQUESTED,
                     E.HEALTH_EVENT_TYPE_STATE_CHANGED]
    changed = events.diff(old, new, 7)[-1]
    assert changed.previous_state == registry_pb2.INSTANCE_STATE_SERVING and changed.message == "refused"
    assert changed.revision == 7 and changed.namespace == "ns"
    drained = _inst(registry_pb2.INSTANCE_STATE_DRAINING, drained=True)
    assert [e.type for e in events.diff(old, drained, 8)] == [
        E.HEALTH_EVENT_TYPE_DRAINED, E.HEALTH_EVENT_TYPE_STATE_CHANGED]
    assert events.diff(None, old, 1)[0].type == E.HEALTH_EVENT_TYPE_INSTANCE_ADDED
    assert events.diff(old, None, 2)[0].type == E.HEALTH_EVENT_TYPE_INSTANCE_REMOVED
    assert events.diff(old, old, 3) == []


def test_event_filter():
    ev = events.current(_inst(registry_pb2.INSTANCE_STATE_SERVING))
    assert events.matches(ev, "ns", "")
    assert events.matches(ev, "*", "a")
    assert not events.matches(ev, "other", "")
    assert not events.matches(ev, "ns", "b")


def test_aggregate_verdicts():
    S = health_pb2.AgentHealthStatus
    serving = _inst(registry_pb2.INSTANCE_STATE_SERVING)
    down = _inst(registry_pb2.INSTANCE_STATE_NOT_SERVING)
    drained = _inst(registry_pb2.INSTANCE_STATE_DRAINING, drained=True)
    assert aggregate("ns", "a", []).status == S.AGENT_HEALTH_STATUS_UNSPECIFIED
    assert aggregate("ns", "a", [serving, drained]).status == S.AGENT_HEALTH_STATUS_HEALTHY
    mixed = aggregate("ns", "a", [serving, down, drained])
    assert mixed.status == S.AGENT_HEALTH_STATUS_DEGRADED
    assert (mixed.total, mixed.serving, mixed.not_serving, mixed.draining) == (3, 1, 1, 1)
    assert aggregate("ns", "a", [down, drained]).status == S.AGENT_HEALTH_STATUS_UNHEALTHY


def test_endpoint_helpers():
    from sutradhar.services.common.probing import http_url, split_host_port

    assert split_host_port("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert split_host_port("http://127.0.0.1:8080/base") == ("127.0.0.1", 8080)
    assert split_host_port("https://example.invalid") == ("example.invalid", 443)
    assert http_url("http://127.0.0.1:8080/base", "/health") == "http://127.0.0.1:8080/health"
    assert http_url("127.0.0.1:9000", "/ready") == "http://127.0.0.1:9000/ready"
    with pytest.raises(ValueError):
        split_host_port("no-port")


def test_a_member_owns_nothing_until_it_sees_itself():
    from sutradhar.services.common.membership import Membership

    m = Membership(store=None, member_id="m1")  # type: ignore[arg-type]
    key = "/sutradhar/v1/instances/default/i1"
    assert not m.owns(key)
    m.members = {"m1": {}}
    assert m.owns(key)
    m.members = {"m1": {}, "m2": {}}
    assert m.owns(key) == (owner(["m1", "m2"], key) == "m1")


async def test_scheduler_bounds_concurrency_and_starts_waiting_jobs_when_slots_free():
    sched = ProbeScheduler(concurrency=2)
    gate = asyncio.Event()
    running: list[str] = []
    peak = [0]

    def make(key: str) -> Job:
        async def run() -> None:
            running.append(key)
            peak[0] = max(peak[0], len(running))
            await gate.wait()
            running.remove(key)

        return Job(key=key, period=timedelta(hours=1), run=run)

    now = sched.clock()
    for i in range(5):
        sched.add(make(f"j{i}"), now)
    task = asyncio.create_task(sched.run())
    try:
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(running) == 2
        gate.set()
        for _ in range(30):
            await asyncio.sleep(0)
        assert sched.stats.finished == 5 and peak[0] == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_job_added_while_the_scheduler_shuts_down_is_not_started_and_raises_nothing():
    """A watch event can add a job while `run()` is being cancelled and its TaskGroup waits for
    a probe to finish: the TaskGroup refuses new tasks then, and the scheduler must neither
    raise into the caller nor leave a coroutine never awaited."""
    finishing = asyncio.Event()
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            finishing.set()
            await release.wait()  # the TaskGroup is shutting down meanwhile
            raise

    ran: list[str] = []

    async def later() -> None:
        ran.append("late")

    sched = ProbeScheduler()
    sched.add(Job(key="slow", period=timedelta(seconds=1), run=slow_to_stop), due=0.0)
    runner = asyncio.create_task(sched.run())
    await asyncio.sleep(0.05)
    runner.cancel()
    async with asyncio.timeout(5):
        await finishing.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited warns when collected
        sched.add(Job(key="late", period=timedelta(seconds=1), run=later), due=0.0)
        gc.collect()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert ran == []
