"""The reconciler under a ResourceQuota, over fakes and virtual time: a rolling update's surge
is reduced to what the quota leaves (0: the rollout goes by max_unavailable), two rollouts in
one namespace do not take the same room, and the QuotaLimited condition follows."""

from __future__ import annotations

from scheduler_fakes import Harness

from sutradhar._values import to_struct
from sutradhar.services.common import keys
from sutradhar.services.scheduler.reconciler import Reconciler
from sutradhar.v1 import quota_pb2, registry_pb2
from sutradhar.v1 import scheduler_pb2 as P


def agent(version: str) -> registry_pb2.Agent:
    return registry_pb2.Agent(id="echo", namespace="ns", type="echo", version=version, runtime="process",
                              config=to_struct({"command": ["echo-agent"]}))


async def setup(replicas_hard: int, *names: str) -> tuple[Harness, Reconciler]:
    h = Harness()
    await h.store.put(keys.agent_key("ns", "echo"), keys.encode(agent("1.0.0")))
    for name in names:
        d = P.Deployment(name=name, namespace="ns", generation=1, spec=P.DeploymentSpec(
            agent_id="echo", replicas=2, strategy=P.DeploymentStrategy(max_surge="1", max_unavailable="0")))
        await h.store.put(keys.deployment_key("ns", name), keys.encode(d))
    q = quota_pb2.ResourceQuota(namespace="ns", name="compute",
                                spec=quota_pb2.ResourceQuotaSpec(hard={"replicas": str(replicas_hard)}))
    await h.store.put(keys.resourcequota_key("ns", "compute"), keys.encode(q))
    r = Reconciler(h.store, h.supervisor)
    for name in names:  # every replica of the first revision started and ready
        await r.reconcile(("ns", name))
        slots = h.supervisor.slots[("ns", name)]
        await h.clock.run_until(lambda slots=slots: all(s.ready for s in slots.values()))
        await r.reconcile(("ns", name))
    return h, r


async def stored(h: Harness, name: str) -> P.Deployment:
    kv = await h.store.get(keys.deployment_key("ns", name))
    assert kv is not None
    return keys.decode(kv.value, P.Deployment)


def condition(d: P.Deployment, ctype: str) -> P.DeploymentCondition:
    return next(c for c in d.status.conditions if c.type == ctype)


def live(h: Harness, name: str) -> int:
    return sum(1 for s in h.supervisor.slots[("ns", name)].values() if s.phase != P.REPLICA_PHASE_TERMINATING)


async def test_a_rollout_at_the_quota_starts_no_surge_replica_and_stops_an_old_one_first() -> None:
    h, r = await setup(2, "web")
    started = len(h.runtime.started)
    await h.store.put(keys.agent_key("ns", "echo"), keys.encode(agent("1.1.0")))
    await r.reconcile(("ns", "web"))
    assert len(h.runtime.started) == started  # no surge replica: the quota has no room
    assert live(h, "web") == 1  # max_unavailable 0 with no surge becomes 1: one old replica stops
    limited = condition(await stored(h, "web"), "QuotaLimited")
    assert limited.status == P.CONDITION_STATUS_TRUE and limited.reason == "SurgeLimited"
    assert limited.message == ("rolling update surge reduced from 1 to 0 replicas by quota ns/compute: "
                               "replicas used 2, hard 2; old replicas are replaced as max_unavailable allows "
                               "(at least one at a time)")
    await h.close()


async def test_room_for_one_surge_replica_goes_to_one_rollout_at_a_time() -> None:
    h, r = await setup(5, "web", "api")  # 4 desired, room for 1 more
    started = len(h.runtime.started)
    await h.store.put(keys.agent_key("ns", "echo"), keys.encode(agent("1.1.0")))
    await r.reconcile(("ns", "web"))
    assert len(h.runtime.started) == started + 1  # web takes the one surge replica
    assert condition(await stored(h, "web"), "QuotaLimited").status == P.CONDITION_STATUS_FALSE
    await r.reconcile(("ns", "api"))
    assert len(h.runtime.started) == started + 1  # api sees web's surge: no room left, no surge
    limited = condition(await stored(h, "api"), "QuotaLimited")
    assert limited.reason == "SurgeLimited" and "replicas used 5, hard 5" in limited.message
    assert live(h, "web") + live(h, "api") <= 5
    await h.close()


async def test_without_a_rollout_the_condition_is_within_quota() -> None:
    h, r = await setup(2, "web")
    await r.reconcile(("ns", "web"))
    within = condition(await stored(h, "web"), "QuotaLimited")
    assert (within.status, within.reason) == (P.CONDITION_STATUS_FALSE, "WithinQuota")
    await h.close()
