"""Replica supervision driven by a fake clock: crash back-off and restart timing,
CrashLoopBackOff, back-off reset, readiness timeout, registration and keep-alive.

No network and no etcd: the runtime, registry and prober are fakes at the
scheduler's own seams; time moves only through the fake clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from scheduler_fakes import Harness

from sutradhar.services.scheduler.runtimes.base import ReplicaSpec
from sutradhar.services.scheduler.slots import crash_looping, crashed, reset_if_stable, restart_backoff, restart_due
from sutradhar.services.scheduler.supervision import probe_ready, readiness_settings
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P


def agent() -> registry_pb2.Agent:
    return registry_pb2.Agent(id="echo", namespace="ns", version="1.0.0", runtime="process")


def deployment() -> P.Deployment:
    return P.Deployment(name="web", namespace="ns", spec=P.DeploymentSpec(agent_id="echo", replicas=1))


async def started(h: Harness, slot_id: str = "web-1"):
    """A slot whose replica was started (its monitor not spawned: tests run it themselves)."""
    slot = h.slot(slot_id)
    slot.replica = await h.runtime.start(
        ReplicaSpec(namespace="ns", deployment="web", replica_id=slot_id, revision="r1", agent=agent()))
    return slot


async def test_a_crash_backs_off_doubling_per_restart_up_to_the_cap():
    h = Harness()
    slot = await started(h)
    t0 = h.clock.now()
    h.runtime.exit_at[slot.id] = h.clock.monotonic()
    await h.supervisor.on_exit(slot, await h.runtime.inspect(slot.replica))
    assert slot.phase == P.REPLICA_PHASE_BACK_OFF and slot.restarts == 1 and slot.message == "exited with code 3"
    assert slot.back_off_until == t0 + 1
    assert h.registry.instances == {} and h.reasons() == ["Crashed"]
    assert "restart 1 in 1s" in h.events.pending[("ns", "web")][0].message
    # not before the back-off has passed, then due
    h.clock.advance(0.999)
    assert not restart_due(slot, h.clock.now())
    h.clock.advance(0.001)
    assert restart_due(slot, h.clock.now())
    # each further crash doubles the wait: 2, 4, 8, then the cap (8)
    waits = []
    for _ in range(4):
        slot.replica, slot.phase = await h.runtime.start(h.runtime.started[0]), P.REPLICA_PHASE_RUNNING
        before = h.clock.now()
        await h.supervisor.on_exit(slot, slot.replica)
        waits.append(slot.back_off_until - before)
    assert waits == [2, 4, 8, 8]
    assert slot.restarts == 5
    await h.close()


async def test_the_restart_back_off_is_jittered_by_at_most_a_fifth():
    h = Harness(rand=None)  # the real random source
    backoff = restart_backoff(h.config)
    for restarts in range(1, 6):
        slot = h.slot(f"web-{restarts}")
        slot.restarts = restarts - 1
        delay = crashed(slot, "exited", now=h.clock.now(), backoff=backoff).total_seconds()
        nominal = min(2 ** (restarts - 1), 8)
        assert 0.8 * nominal <= delay <= nominal
        assert slot.back_off_until - h.clock.now() == pytest.approx(delay)
    await h.close()


async def test_crash_loop_back_off_after_the_configured_restarts():
    h = Harness(crash_loop_restarts=3)
    slot = await started(h)
    looping = []
    for _ in range(4):
        slot.replica, slot.phase = await h.runtime.start(h.runtime.started[0]), P.REPLICA_PHASE_RUNNING
        assert not crash_looping(slot, h.config)  # a running replica is not looping
        await h.supervisor.on_exit(slot, slot.replica)
        looping.append(crash_looping(slot, h.config))
    assert looping == [False, False, True, True]
    await h.close()


async def test_a_crashed_replica_is_restarted_under_its_id_once_due():
    h = Harness()
    slot = await started(h)
    await h.supervisor.on_exit(slot, slot.replica)
    h.clock.advance(1)
    assert restart_due(slot, h.clock.now())
    await h.supervisor.start(slot, agent(), deployment(), restart=True)
    assert slot.phase == P.REPLICA_PHASE_STARTING and slot.back_off_until == 0 and slot.restarts == 1
    assert [s.replica_id for s in h.runtime.started] == ["web-1", "web-1"]
    assert h.reasons() == ["Crashed", "Restarted"]
    await h.close()


async def test_a_failed_start_backs_off_without_a_replica():
    h = Harness()
    slot = h.slot()

    async def refuse(spec):
        from sutradhar._errors import InvalidArgument

        raise InvalidArgument("command 'nope' not found", field="agent.config.command")

    h.runtime.start = refuse  # type: ignore[method-assign]
    await h.supervisor.start(slot, agent(), deployment(), restart=False)
    assert slot.phase == P.REPLICA_PHASE_FAILED and slot.restarts == 0 and slot.replica is None
    assert slot.back_off_until == h.clock.now() + 1 and "not found" in slot.message
    await h.supervisor.start(slot, agent(), deployment(), restart=True)
    assert slot.restarts == 1 and slot.back_off_until == h.clock.now() + 1
    await h.supervisor.start(slot, agent(), deployment(), restart=True)
    assert slot.restarts == 2 and slot.back_off_until == h.clock.now() + 2
    await h.close()


async def test_readiness_then_registration_then_a_crash():
    h = Harness()
    slot = await started(h)
    endpoint = slot.replica.endpoint
    h.probers.answers = [False, False, True]
    h.runtime.exit_at[slot.id] = h.clock.monotonic() + 30
    await h.run(h.supervisor.monitor(slot))
    # probed until ready, registered (ready since then), watched until it exited at t+30
    assert h.probers.kinds() == ["tcp", "grpc"] * 3 and h.probers.forgotten == [endpoint]
    assert h.reasons() == ["Ready", "Crashed"]
    assert slot.phase == P.REPLICA_PHASE_BACK_OFF and slot.restarts == 1 and not slot.ready
    assert h.registry.leases == 1 and h.registry.instances == {}
    assert h.clock.monotonic() >= 1000 + 30
    await h.close()


async def test_a_replica_not_ready_within_the_readiness_timeout_is_stopped_and_counted():
    h = Harness(readiness_timeout=timedelta(seconds=10), monitor_period=timedelta(seconds=1))
    slot = await started(h)
    endpoint = slot.replica.endpoint
    h.probers.answers = [False]
    start = h.clock.monotonic()
    await h.run(h.supervisor.monitor(slot))
    # probed every 50 ms until the deadline passed, then stopped, counted as a crash
    assert 10 < h.clock.monotonic() - start <= 10.1
    assert all(s == pytest.approx(0.05) for s in h.clock.slept)
    assert h.runtime.stopped == [slot.id, slot.id]  # the stop for the timeout, then the exit's cleanup
    assert slot.phase == P.REPLICA_PHASE_BACK_OFF and slot.restarts == 1
    assert slot.message == (f"not ready within 10s (grpc readiness probe of {endpoint}: "
                            "health status NOT_SERVING)")
    assert h.registry.leases == 0 and h.probers.forgotten == [endpoint]
    assert set(h.probers.kinds()) == {"tcp", "grpc"}  # the port, then the probe, each time
    await h.close()


async def test_a_replica_that_exits_while_starting_is_a_crash_not_a_timeout():
    h = Harness()
    slot = await started(h)
    h.probers.answers = [False]
    h.runtime.exit_at[slot.id] = h.clock.monotonic() + 2
    await h.run(h.supervisor.monitor(slot))
    assert slot.message == "exited with code 3" and slot.restarts == 1
    assert h.clock.monotonic() - 1000 == pytest.approx(2, abs=0.06)
    await h.close()


async def test_the_back_off_resets_after_a_replica_was_ready_long_enough():
    h = Harness(backoff_reset=timedelta(seconds=60), monitor_period=timedelta(seconds=1))
    slot = await started(h)
    slot.restarts = 3  # crashed three times before
    slot.ready, slot.ready_since, slot.lease_id = True, h.clock.now(), 1
    h.runtime.exit_at[slot.id] = h.clock.monotonic() + 90
    task = asyncio.create_task(h.supervisor.monitor(slot))
    await h.clock.run_until(lambda: h.clock.monotonic() >= 1000 + 59)
    assert slot.restarts == 3  # not yet: ready for less than backoff_reset
    await h.clock.run_until(task.done)
    # reset after 60 s of readiness, so the crash at 90 s waits only backoff_base again
    assert slot.restarts == 1
    assert slot.back_off_until - h.clock.now() == 1
    await h.close()


def test_reset_if_stable_needs_readiness_for_longer_than_the_reset():
    h = Harness()
    slot = h.slot()
    slot.restarts, slot.ready_since = 2, 100.0
    assert not reset_if_stable(slot, 160.0, timedelta(seconds=60))
    assert reset_if_stable(slot, 160.5, timedelta(seconds=60)) and slot.restarts == 0
    slot.restarts, slot.ready_since = 2, 0.0  # never ready
    assert not reset_if_stable(slot, 1e9, timedelta(seconds=60))


async def test_a_liveness_restart_counts_and_backs_off_like_a_crash():
    h = Harness()
    slot = await started(h)
    assert await h.supervisor.register(slot)
    await h.supervisor.restart_for_liveness(slot)
    assert slot.phase == P.REPLICA_PHASE_BACK_OFF and slot.restarts == 1 and slot.replica is None
    assert slot.back_off_until == h.clock.now() + 1 and slot.message == "restarted after a liveness failure"
    assert h.registry.instances == {} and h.runtime.stopped == [slot.id]
    assert h.reasons() == ["Ready", "Restarted"]
    await h.close()


async def test_a_lapsed_lease_is_registered_again():
    h = Harness(instance_ttl=timedelta(seconds=9))
    slot = await started(h)
    assert await h.supervisor.register(slot)
    first = slot.lease_id
    del h.registry.instances[slot.id]  # the lease lapsed (an etcd outage longer than the TTL)
    loop = asyncio.create_task(h.registrar.keep_alive_loop(h.supervisor.ready_slots, h.supervisor.lapsed))
    await h.clock.run_until(lambda: slot.lease_id != first)
    loop.cancel()
    assert h.clock.slept[0] == 3  # a third of the instance TTL
    assert slot.ready and slot.id in h.registry.instances and slot.lease_id != first
    assert h.reasons() == ["Ready", "Ready"]
    await h.close()


async def test_a_stopped_replica_is_drained_stopped_and_deregistered():
    h = Harness()
    slot = await started(h)
    assert await h.supervisor.register(slot)
    h.supervisor.begin_stop(slot, "scaled down")
    await asyncio.gather(*h.tasks)
    assert h.registry.states[slot.id] == registry_pb2.INSTANCE_STATE_DRAINING
    assert h.runtime.stopped == [slot.id] and h.registry.instances == {}
    assert h.supervisor.slots[("ns", "web")] == {}
    assert h.reasons() == ["Ready", "Stopped"]
    await h.close()


async def test_a_replica_whose_port_stays_closed_is_not_probed_and_says_why():
    h = Harness(readiness_timeout=timedelta(seconds=1))
    slot = await started(h)
    endpoint = slot.replica.endpoint
    h.probers.port_open = False
    await h.run(h.supervisor.monitor(slot))
    assert set(h.probers.kinds()) == {"tcp"}
    assert slot.message == (f"not ready within 1s (grpc readiness probe of {endpoint}: "
                            "ConnectionRefusedError: refused)")
    await h.close()


async def test_the_readiness_probe_kind_follows_the_agent_and_a_disabled_probe_needs_the_port():
    h = Harness()
    web = registry_pb2.Agent(id="web", runtime="http")
    assert readiness_settings(web, "http://127.0.0.1:8080").kind == "http"
    process = registry_pb2.Agent(id="p", runtime="process")
    assert readiness_settings(process, "127.0.0.1:9").kind == "grpc"
    process.probes.readiness.kind = "http"
    assert readiness_settings(process, "127.0.0.1:9").kind == "http"
    process.probes.readiness.disabled = True
    slot = await started(h)
    slot.probe = readiness_settings(process, slot.replica.endpoint)
    h.probers.answers = [False]  # would fail, but a disabled probe is not run
    assert (await probe_ready(h.probers, slot.replica, slot.probe)).ok
    assert h.probers.kinds() == ["tcp"]
    await h.close()
