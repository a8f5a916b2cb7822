"""A deployment's status and conditions computed from slots at an explicit time."""

from __future__ import annotations

from scheduler_fakes import EPOCH, unit_config

from sutradhar.services.scheduler.clock import epoch
from sutradhar.services.scheduler.slots import Slot
from sutradhar.services.scheduler.status import CONDITION_TYPES, EventLog, finish_status
from sutradhar.v1 import scheduler_pb2 as P

NOW = EPOCH + 500


def deployment(replicas: int = 2, *, generation: int = 3, paused: bool = False) -> P.Deployment:
    return P.Deployment(
        name="web", namespace="ns", generation=generation,
        spec=P.DeploymentSpec(agent_id="echo", replicas=replicas, paused=paused),
    )


def slot(i: int, *, revision: str = "r2", ready: bool = True, **fields: object) -> Slot:
    s = Slot(id=f"web-{i}", namespace="ns", deployment="web", revision=revision, version="1.0.0",
             runtime="process", created=EPOCH + i, ready=ready, **fields)  # type: ignore[arg-type]
    if ready:
        s.phase = P.REPLICA_PHASE_RUNNING
    return s


def status_of(d: P.Deployment, slots: list[Slot], *, now: float = NOW, conditions=None, **kw) -> P.DeploymentStatus:
    status = P.DeploymentStatus()
    status.CopyFrom(d.status)
    finish_status(d, status, dict(conditions or {}), slots, config=unit_config(), now=now,
                  revision=kw.pop("revision", "r2"), version=kw.pop("version", "1.1.0"), **kw)
    return status


def cond(status: P.DeploymentStatus, ctype: str) -> P.DeploymentCondition:
    return next(c for c in status.conditions if c.type == ctype)


def test_every_condition_is_written_in_order():
    status = status_of(deployment(), [slot(1), slot(2)])
    assert [c.type for c in status.conditions] == list(CONDITION_TYPES)
    assert CONDITION_TYPES[-1] == "RolledOut"


def test_rolled_out_when_the_current_revision_is_everywhere_ready():
    status = status_of(deployment(), [slot(1), slot(2)])
    c = cond(status, "RolledOut")
    assert c.status == P.CONDITION_STATUS_TRUE and c.reason == "RolloutComplete"
    assert c.message == "revision r2 (version 1.1.0): 2 of 2 updated and ready"
    assert status.observed_generation == 3
    assert (status.updated_replicas, status.ready_replicas, status.replicas, status.desired_replicas) == (2, 2, 2, 2)


def test_rolling_out_while_an_old_replica_or_an_unready_one_is_left():
    old = status_of(deployment(), [slot(1, revision="r1"), slot(2), slot(3)])
    c = cond(old, "RolledOut")
    assert c.status == P.CONDITION_STATUS_FALSE and c.reason == "RolloutInProgress"
    assert c.message == "revision r2 (version 1.1.0): 2 of 2 updated and ready"  # but 3 replicas run
    starting = status_of(deployment(), [slot(1), slot(2, ready=False)])
    c = cond(starting, "RolledOut")
    assert c.status == P.CONDITION_STATUS_FALSE and c.message.endswith("1 of 2 updated and ready")


def test_a_paused_rollout_says_so():
    status = status_of(deployment(paused=True), [slot(1, revision="r1"), slot(2)])
    c = cond(status, "RolledOut")
    assert (c.status, c.reason) == (P.CONDITION_STATUS_FALSE, "RolloutPaused")


def test_not_rolled_out_without_a_revision():
    status = status_of(deployment(replicas=0), [], revision="", version="")
    c = cond(status, "RolledOut")
    assert c.status == P.CONDITION_STATUS_FALSE and c.message == "no revision yet: 0 of 0 updated and ready"


def test_crash_loop_back_off_names_the_replica_and_the_wait_left():
    looping = slot(1, ready=False, restarts=2, phase=P.REPLICA_PHASE_BACK_OFF, message="exited with code 3",
                   back_off_until=NOW + 4.4)
    status = status_of(deployment(replicas=1), [looping])
    c = cond(status, "CrashLoopBackOff")
    assert c.status == P.CONDITION_STATUS_TRUE
    assert c.message == "replica web-1 exited with code 3 (restarted 2 times; next restart in 4s)"
    assert epoch(status.replica_statuses[0].back_off_until) == NOW + 4.4
    once = slot(1, ready=False, restarts=1, phase=P.REPLICA_PHASE_BACK_OFF, back_off_until=NOW + 1)
    assert cond(status_of(deployment(replicas=1), [once]), "CrashLoopBackOff").status == P.CONDITION_STATUS_FALSE


def test_available_counts_what_the_health_service_did_not_take_out():
    status = status_of(deployment(replicas=4), [slot(1), slot(2), slot(3), slot(4)], unavailable={"web-1", "web-2"})
    assert status.available_replicas == 2
    c = cond(status, "Available")
    # max_unavailable defaults to 25 %: 3 of 4 must be available
    assert (c.status, c.reason, c.message) == (
        P.CONDITION_STATUS_FALSE, "MinimumReplicasUnavailable", "2 of 4 replicas available")


def test_a_transition_time_moves_only_when_the_condition_flips():
    d = deployment(replicas=1)
    first = status_of(d, [slot(1, ready=False)], now=NOW)
    d.status.CopyFrom(first)
    same = status_of(d, [slot(1, ready=False)], now=NOW + 30)
    assert cond(same, "RolledOut").last_transition_time == cond(first, "RolledOut").last_transition_time
    assert epoch(cond(first, "RolledOut").last_transition_time) == NOW
    d.status.CopyFrom(same)
    flipped = status_of(d, [slot(1)], now=NOW + 60)
    assert epoch(cond(flipped, "RolledOut").last_transition_time) == NOW + 60


def test_given_conditions_win_over_computed_ones():
    given = {"ReplicaFailure": (True, "AgentNotFound", "agent 'echo' is not registered")}
    status = status_of(deployment(), [slot(1), slot(2)], conditions=given)
    c = cond(status, "ReplicaFailure")
    assert (c.status, c.reason) == (P.CONDITION_STATUS_TRUE, "AgentNotFound")


def test_events_wait_for_the_next_write_and_come_back_when_it_fails():
    log = EventLog()
    key = ("ns", "web")
    log.record(key, "Started", "started replica web-1", "web-1", now=NOW)
    status = P.DeploymentStatus()
    drained = log.drain(key, status)
    assert [e.reason for e in status.events] == ["Started"] and epoch(status.events[0].time) == NOW
    log.record(key, "Ready", "replica web-1 is ready", "web-1", now=NOW + 1)
    log.restore(key, drained)  # the write failed: the older event goes first
    assert [e.reason for e in log.pending[key]] == ["Started", "Ready"]
