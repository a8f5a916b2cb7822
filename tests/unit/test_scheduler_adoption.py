"""Adoption over fakes: a new leader tracks what runs instead of starting duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

from scheduler_fakes import EPOCH, Harness

from sutradhar._values import to_struct
from sutradhar.services.common import keys
from sutradhar.services.scheduler.adoption import adopt
from sutradhar.services.scheduler.clock import timestamp
from sutradhar.services.scheduler.runtimes.base import LABEL_DEPLOYMENT, Replica, ReplicaPhase
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P

KEY = ("ns", "web")


async def test_a_new_leader_adopts_running_replicas_recorded_back_offs_and_drops_stale_instances():
    h = Harness()
    agent = registry_pb2.Agent(id="echo", namespace="ns", version="1.0.0", runtime="process",
                               config=to_struct({"command": ["echo-agent"]}))
    await h.store.put(keys.agent_key("ns", "echo"), keys.encode(agent))
    d = P.Deployment(name="web", namespace="ns", spec=P.DeploymentSpec(agent_id="echo", replicas=3))
    d.status.replica_statuses.append(P.ReplicaStatus(id="web-run", revision="r1", restarts=2,
                                                     phase=P.REPLICA_PHASE_RUNNING))
    waiting = P.ReplicaStatus(id="web-wait", revision="r1", restarts=4, phase=P.REPLICA_PHASE_BACK_OFF,
                              message="exited with code 3")
    waiting.back_off_until.CopyFrom(timestamp(EPOCH + 7))
    waiting.start_time.CopyFrom(timestamp(EPOCH - 100))
    d.status.replica_statuses.append(waiting)
    await h.store.put(keys.deployment_key("ns", "web"), keys.encode(d))
    # the running replica's instance (with its lease), and one of a replica that is gone
    for inst_id, lease in (("web-run", 41), ("web-gone", 42)):
        inst = registry_pb2.Instance(id=inst_id, namespace="ns", agent_id="echo", endpoint=f"127.0.0.1:{lease}",
                                     runtime="process", lease_id=lease, labels={LABEL_DEPLOYMENT: "web"})
        await h.store.put(keys.instance_key("ns", inst_id), keys.encode(inst))
        h.registry.instances[inst_id] = inst
    h.runtime.found = [Replica(
        replica_id="web-run", runtime="process", namespace="ns", deployment="web", revision="r1", agent_id="echo",
        phase=ReplicaPhase.RUNNING, endpoint="127.0.0.1:41", native_id="4242",
        started_at=datetime.fromtimestamp(EPOCH - 50, UTC),
    )]

    await adopt(h.store, h.supervisor, current=lambda: True)

    slots = h.supervisor.slots[KEY]
    assert set(slots) == {"web-run", "web-wait"}
    run = slots["web-run"]
    assert run.lease_id == 41 and run.restarts == 2 and run.created == EPOCH - 50 and run.monitor is not None
    # its monitor checks readiness again and registers it anew
    await h.clock.settle()
    assert run.ready and run.phase == P.REPLICA_PHASE_RUNNING
    assert run.probe is not None and run.probe.kind == "grpc"
    wait = slots["web-wait"]
    assert (wait.phase, wait.restarts, wait.back_off_until, wait.created) == (
        P.REPLICA_PHASE_BACK_OFF, 4, EPOCH + 7, EPOCH - 100)
    assert "web-gone" not in h.registry.instances and "web-run" in h.registry.instances
    assert h.runtime.started == []  # nothing started twice
    assert h.reasons() == ["Adopted", "Ready"]
    await h.close()


async def test_adoption_stops_when_the_term_ends():
    h = Harness()
    d = P.Deployment(name="web", namespace="ns", spec=P.DeploymentSpec(agent_id="echo", replicas=1))
    await h.store.put(keys.deployment_key("ns", "web"), keys.encode(d))
    h.runtime.found = [Replica(replica_id="web-1", runtime="process", namespace="ns", deployment="web",
                               revision="r1", agent_id="echo", phase=ReplicaPhase.RUNNING, endpoint="127.0.0.1:1")]
    await adopt(h.store, h.supervisor, current=lambda: False)
    assert h.supervisor.slots == {}
    await h.close()
