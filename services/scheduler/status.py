"""A deployment's status as the leader writes it: replica counts, replica
statuses, events and conditions, computed from the tracked slots.

Nothing here does I/O; the wall-clock time comes in as `now`, so tests drive
it. Conditions, in the order they are written:

- ``Available``: at least desired - max_unavailable replicas available (ready
  and not taken out of rotation by the health service);
- ``Progressing``: the rollout's progress (``NewReplicaSetAvailable`` when done);
- ``ReplicaFailure``: the deployment cannot run as asked (bad agent, runtime
  unavailable, fixed port, agent not registered);
- ``FailedToStart``: a replica's runtime could not start it;
- ``CrashLoopBackOff``: a replica crashed ``crash_loop_restarts`` times or more;
- ``Paused``: the rollout is paused with replicas of another revision left;
- ``QuotaLimited``: a ResourceQuota caps the autoscaler (``AutoscalerCapped``)
  or reduces a rolling update's surge (``SurgeLimited``); ``WithinQuota`` else;
- ``RolledOut``: the current revision runs everywhere: the generation is
  observed, ``current_revision`` is set and updated == ready == replicas ==
  desired (``RolloutComplete``; else ``RolloutInProgress`` or ``RolloutPaused``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from sutradhar._errors import InvalidArgument
from sutradhar.services.scheduler import rollout
from sutradhar.services.scheduler.clock import timestamp
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.slots import Key, Slot, crash_looping
from sutradhar.v1 import scheduler_pb2

log = logging.getLogger(__name__)

P = scheduler_pb2
MAX_EVENTS = 50
"""Events kept in a deployment's status (the newest)."""

CONDITION_TYPES = (
    "Available", "Progressing", "ReplicaFailure", "FailedToStart", "CrashLoopBackOff", "Paused", "QuotaLimited",
    "RolledOut",
)
"""Every condition the controller writes, in the order it writes them."""

Conditions = dict[str, tuple[bool, str, str]]
"""Condition type -> (true?, reason, message), as a reconcile gathers them."""


class EventLog:
    """Events recorded between status writes, per deployment."""

    def __init__(self) -> None:
        self.pending: dict[Key, list[scheduler_pb2.DeploymentEvent]] = {}

    def record(self, key: Key, reason: str, message: str, replica: str = "", *, now: float) -> None:
        """Note an event of deployment `key` at wall-clock `now` (also logged)."""
        ev = P.DeploymentEvent(reason=reason, message=message, replica=replica)
        ev.time.CopyFrom(timestamp(now))
        self.pending.setdefault(key, []).append(ev)
        log.info("%s/%s %s: %s", key[0], key[1], reason, message)

    def drain(self, key: Key, status: scheduler_pb2.DeploymentStatus) -> list[scheduler_pb2.DeploymentEvent]:
        """Move pending events into `status`; returns them (to `restore` if the write fails)."""
        events = self.pending.pop(key, [])
        if events:
            merged = [*status.events, *events][-MAX_EVENTS:]
            del status.events[:]
            status.events.extend(merged)
        return events

    def restore(self, key: Key, events: list[scheduler_pb2.DeploymentEvent]) -> None:
        """Put back events whose write failed, before any recorded since."""
        self.pending[key] = [*events, *self.pending.get(key, [])]

    def forget(self, key: Key) -> None:
        """Drop what is pending for `key` (the deployment is gone)."""
        self.pending.pop(key, None)


def finish_status(
    d: scheduler_pb2.Deployment,
    status: scheduler_pb2.DeploymentStatus,
    conditions: Conditions,
    slots: Iterable[Slot],
    *,
    config: SchedulerConfig,
    now: float,
    revision: str,
    version: str,
    desired: int | None = None,
    unavailable: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Fill `status` from the slots: counts, replica statuses and every condition
    (those in `conditions` win over the computed defaults, except Available)."""
    ordered = sorted(slots, key=lambda s: (s.created, s.id))
    want = d.spec.replicas if desired is None else desired
    status.observed_generation = d.generation
    status.desired_replicas = want
    status.replicas = len(ordered)
    status.ready_replicas = sum(1 for s in ordered if s.ready)
    status.available_replicas = sum(1 for s in ordered if s.ready and s.id not in unavailable)
    status.updated_replicas = sum(1 for s in ordered if s.revision == revision and revision)
    status.current_revision = revision
    status.current_version = version
    del status.replica_statuses[:]
    for s in ordered:
        rs = P.ReplicaStatus(
            id=s.id, revision=s.revision, phase=s.phase, restarts=s.restarts, message=s.message,
            version=s.version,
            endpoint=s.replica.endpoint if s.replica else "",
            native_id=s.replica.native_id if s.replica else "",
        )
        rs.start_time.CopyFrom(timestamp(s.created))
        if s.waiting and s.back_off_until:
            rs.back_off_until.CopyFrom(timestamp(s.back_off_until))
        status.replica_statuses.append(rs)
    failed = [s for s in ordered if s.phase == P.REPLICA_PHASE_FAILED]
    looping = [s for s in ordered if crash_looping(s, config)]
    if failed:
        first = failed[0]
        conditions.setdefault("FailedToStart", (True, "FailedToStart", f"replica {first.id}: {first.message}"))
    else:
        conditions.setdefault("FailedToStart", (False, "Started", ""))
    if looping:
        s = looping[0]
        wait = max(0.0, s.back_off_until - now)
        conditions.setdefault("CrashLoopBackOff", (
            True, "CrashLoopBackOff",
            f"replica {s.id} {s.message} (restarted {s.restarts} times; next restart in {wait:.0f}s)"))
    else:
        conditions.setdefault("CrashLoopBackOff", (False, "NoCrashLoop", ""))
    conditions.setdefault("ReplicaFailure", (False, "NoFailure", ""))
    conditions.setdefault("Paused", (False, "NotPaused", ""))
    conditions.setdefault("QuotaLimited", (False, "WithinQuota", ""))
    surge_unavail = (0, 0)
    with contextlib.suppress(InvalidArgument):
        surge_unavail = rollout.resolve_strategy(d.spec.strategy.max_surge, d.spec.strategy.max_unavailable, want)
    available = status.available_replicas >= want - surge_unavail[1]
    conditions["Available"] = (
        available, "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
        f"{status.available_replicas} of {want} replicas available",
    )
    done = status.updated_replicas == want and status.replicas == want and status.ready_replicas == want
    at = f"revision {revision} (version {version}): " if revision else ""
    conditions.setdefault("Progressing", (
        True, "NewReplicaSetAvailable" if done else "ReplicaSetUpdating",
        f"{at}{status.updated_replicas} updated, {status.ready_replicas} ready of {want}",
    ))
    conditions.setdefault("RolledOut", rolled_out(d, status, ordered, revision=revision, version=version))
    old = {c.type: c for c in status.conditions}
    del status.conditions[:]
    for ctype in CONDITION_TYPES:
        truth, reason, message = conditions[ctype]
        c = P.DeploymentCondition(
            type=ctype, status=P.CONDITION_STATUS_TRUE if truth else P.CONDITION_STATUS_FALSE,
            reason=reason, message=message,
        )
        prev = old.get(ctype)
        if prev is not None and prev.status == c.status:
            c.last_transition_time.CopyFrom(prev.last_transition_time)
        else:
            c.last_transition_time.CopyFrom(timestamp(now))
        status.conditions.append(c)


def rolled_out(
    d: scheduler_pb2.Deployment,
    status: scheduler_pb2.DeploymentStatus,
    slots: Iterable[Slot],
    *,
    revision: str,
    version: str,
) -> tuple[bool, str, str]:
    """The RolledOut condition of a status whose counts are filled in: true when
    the scheduler observed the deployment's generation, runs a current revision,
    and updated == ready == replicas == desired."""
    want = status.desired_replicas
    done = (
        status.observed_generation >= d.generation and bool(revision)
        and status.updated_replicas == want and status.ready_replicas == want and status.replicas == want
    )
    if done:
        reason = "RolloutComplete"
    elif d.spec.paused:
        reason = "RolloutPaused"
    else:
        reason = "RolloutInProgress"
    updated_ready = sum(1 for s in slots if s.ready and revision and s.revision == revision)
    at = f"revision {revision} (version {version})" if revision else "no revision yet"
    return done, reason, f"{at}: {updated_ready} of {want} updated and ready"
