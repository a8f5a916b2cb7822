"""The reconciler over fakes (store, runtime, registry, prober) and virtual time:
start, readiness, status, crash -> back-off -> restart, scale down, delete."""

from __future__ import annotations

from datetime import timedelta

from scheduler_fakes import Harness

from sutradhar._values import to_struct
from sutradhar.services.common import keys
from sutradhar.services.scheduler.reconciler import Reconciler, Result
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P

KEY = ("ns", "web")


async def setup(replicas: int = 2) -> tuple[Harness, Reconciler]:
    h = Harness(backoff_base=timedelta(seconds=1), crash_loop_restarts=2)
    agent = registry_pb2.Agent(id="echo", namespace="ns", type="echo", version="1.0.0", runtime="process",
                               config=to_struct({"command": ["echo-agent"]}))
    await h.store.put(keys.agent_key("ns", "echo"), keys.encode(agent))
    d = P.Deployment(name="web", namespace="ns", generation=1,
                     spec=P.DeploymentSpec(agent_id="echo", replicas=replicas))
    await h.store.put(keys.deployment_key("ns", "web"), keys.encode(d))
    return h, Reconciler(h.store, h.supervisor)


async def stored(h: Harness) -> P.Deployment:
    kv = await h.store.get(keys.deployment_key("ns", "web"))
    assert kv is not None
    return keys.decode(kv.value, P.Deployment)


def condition(d: P.Deployment, ctype: str) -> P.DeploymentCondition:
    return next(c for c in d.status.conditions if c.type == ctype)


async def test_a_deployment_is_started_made_ready_and_reported_rolled_out():
    h, r = await setup(replicas=2)
    result = await r.reconcile(KEY)
    assert len(h.runtime.started) == 2
    assert result == Result(requeue_after=timedelta(seconds=1))  # replicas are starting
    d = await stored(h)
    assert d.status.replicas == 2 and d.status.ready_replicas == 0
    assert condition(d, "RolledOut").reason == "RolloutInProgress"
    # the monitors probe, register and mark the replicas ready
    slots = h.supervisor.slots[KEY]
    await h.clock.run_until(lambda: all(s.ready for s in slots.values()))
    assert len(h.registry.instances) == 2
    assert await r.reconcile(KEY) == Result()
    d = await stored(h)
    assert (d.status.ready_replicas, d.status.updated_replicas, d.status.available_replicas) == (2, 2, 2)
    rolled = condition(d, "RolledOut")
    assert rolled.status == P.CONDITION_STATUS_TRUE and rolled.reason == "RolloutComplete"
    assert rolled.message == f"revision {d.status.current_revision} (version 1.0.0): 2 of 2 updated and ready"
    assert [e.reason for e in d.status.events].count("Ready") == 2
    await h.close()


async def test_a_crashed_replica_restarts_only_once_its_back_off_has_passed():
    h, r = await setup(replicas=1)
    await r.reconcile(KEY)
    (slot,) = h.supervisor.slots[KEY].values()
    await h.clock.run_until(lambda: slot.ready)
    # the replica exits: its monitor sees it on its next check, backs off 1 s
    h.runtime.exit_at[slot.id] = h.clock.monotonic()
    await h.clock.run_until(lambda: slot.phase == P.REPLICA_PHASE_BACK_OFF)
    crashed_at = h.clock.now()
    assert slot.back_off_until == crashed_at + 1 and h.registry.instances == {}
    result = await r.reconcile(KEY)
    assert len(h.runtime.started) == 1  # not yet
    assert result.requeue_after == timedelta(seconds=1)  # when the back-off ends
    h.clock.advance(1)
    await r.reconcile(KEY)
    assert [s.replica_id for s in h.runtime.started] == [slot.id, slot.id]  # restarted under its id
    assert slot.phase == P.REPLICA_PHASE_STARTING and slot.restarts == 1
    d = await stored(h)
    assert [e.reason for e in d.status.events][-2:] == ["Crashed", "Restarted"]
    assert condition(d, "CrashLoopBackOff").status == P.CONDITION_STATUS_FALSE
    await h.close()


async def test_crash_loop_back_off_is_reported_after_the_second_restart():
    h, r = await setup(replicas=1)
    await r.reconcile(KEY)
    (slot,) = h.supervisor.slots[KEY].values()
    h.runtime.exit_message = "exited with code 3: boom"
    for restarts in (1, 2):
        h.runtime.exit_at[slot.id] = h.clock.monotonic()
        await h.clock.run_until(lambda n=restarts: slot.restarts == n and slot.phase == P.REPLICA_PHASE_BACK_OFF)
        h.runtime.exit_at.pop(slot.id)
        h.runtime.stopped.clear()
        h.clock.advance(slot.back_off_until - h.clock.now())
        await r.reconcile(KEY)
    h.runtime.exit_at[slot.id] = h.clock.monotonic()
    await h.clock.run_until(lambda: slot.restarts == 3 and slot.phase == P.REPLICA_PHASE_BACK_OFF)
    await r.reconcile(KEY)
    looping = condition(await stored(h), "CrashLoopBackOff")
    assert looping.status == P.CONDITION_STATUS_TRUE
    assert looping.message == f"replica {slot.id} exited with code 3: boom (restarted 3 times; next restart in 4s)"
    await h.close()


async def test_scaling_down_stops_the_extra_replica_and_deleting_stops_all():
    h, r = await setup(replicas=2)
    await r.reconcile(KEY)
    slots = h.supervisor.slots[KEY]
    await h.clock.run_until(lambda: all(s.ready for s in slots.values()))
    d = await stored(h)
    d.spec.replicas = 1
    await h.store.put(keys.deployment_key("ns", "web"), keys.encode(d))
    await r.reconcile(KEY)
    await h.clock.run_until(lambda: len(slots) == 1)
    assert len(h.runtime.stopped) == 1 and len(h.registry.instances) == 1
    await h.store.delete(keys.deployment_key("ns", "web"))
    await r.reconcile(KEY)
    await h.clock.run_until(lambda: KEY not in h.supervisor.slots or not h.supervisor.slots[KEY])
    assert len(h.runtime.stopped) == 2 and h.registry.instances == {}
    await h.close()
