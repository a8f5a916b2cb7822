"""The reconciler: makes what runs for one deployment match its spec.

`Reconciler.reconcile(key)` is level-triggered and idempotent: it reads the
deployment, its agent and what runs, and acts (start, restart after back-off,
stop, roll, scale), then writes the status guarded by the deployment's
``mod_revision``. It returns a `Result` saying when to look again; the
controller's outcome handler turns that (or an error) into the next step.

Quotas (docs/quotas.md): the autoscaler never scales past what the
namespace's ResourceQuotas leave (its write is a quota admission), and a
rolling update's surge is reduced to what they leave (down to 0, when the
rollout proceeds by max_unavailable, at least one replica at a time); either
is reported as the ``QuotaLimited`` condition while it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sutradhar._errors import Conflict, InvalidArgument, NotFound, SutradharError, Unavailable
from sutradhar.services.common import keys, quota
from sutradhar.services.common.load_records import parse_record
from sutradhar.services.common.quota_store import QuotaAdmission, Snapshot
from sutradhar.services.common.secret_refs import MissingReference, References, Resolution
from sutradhar.services.common.store import Guard, Op, Store
from sutradhar.services.scheduler import rollout
from sutradhar.services.scheduler.autoscale import AutoscaleState, autoscale
from sutradhar.services.scheduler.clock import timestamp
from sutradhar.services.scheduler.runtimes.base import Runtime
from sutradhar.services.scheduler.runtimes.virtual import http_replica_count
from sutradhar.services.scheduler.secret_resolution import SecretResolver
from sutradhar.services.scheduler.slots import Key, Slot, restart_due
from sutradhar.services.scheduler.spec import (
    agent_config,
    autoscale_params,
    check_deployable,
    check_fixed_port,
    check_resources,
    fixed_port,
    revision_of,
    spec_references,
    template_agent,
)
from sutradhar.services.scheduler.status import Conditions, finish_status
from sutradhar.services.scheduler.supervision import Supervisor, agent_missing
from sutradhar.v1 import registry_pb2, scheduler_pb2

P = scheduler_pb2
MAX_REVISIONS = 10
"""Revisions kept in a deployment's history (rollback targets)."""


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next."""

    requeue_after: timedelta | None = None


class Reconciler:
    """Reconciles one deployment at a time onto the supervisor's slots."""

    def __init__(self, store: Store, supervisor: Supervisor, *, resolver: SecretResolver | None = None) -> None:
        self.store = store
        self.supervisor = supervisor
        self.resolver = resolver
        """Resolves Secret/ConfigMap references (None: a deployment that has any cannot start)."""
        self.config = supervisor.config
        self.clock = supervisor.clock
        self.events = supervisor.events
        self.autoscale_state: dict[Key, AutoscaleState] = {}
        self._autoscaled_at: dict[Key, float] = {}
        self._unavailable: dict[Key, set[str]] = {}
        self.quotas = QuotaAdmission(store)
        self._capped: dict[Key, str] = {}
        """Deployments whose autoscaler the quota caps -> why (QuotaLimited)."""
        self._surge_limited: dict[Key, str] = {}
        """Deployments whose rollout surge the quota reduces -> why (QuotaLimited)."""
        self._surge_totals: dict[Key, int] = {}
        """Most replicas a rolling deployment may run now (desired + the surge it was given)."""
        self._surge_locks: dict[str, asyncio.Lock] = {}
        self.statuses: dict[Key, scheduler_pb2.DeploymentStatus] = {}
        """The status each deployment's last reconcile computed (read by the scheduler's metrics)."""
        self.on_autoscale: Callable[[Key, str], None] | None = None
        """Told each autoscaler decision ("up", "down", "unchanged", "capped": a scale-up the
        quota cut short) when metrics are on (services/common/metrics_scheduler.py)."""

    def forget(self) -> None:
        """Drop the per-deployment memory (leadership lost)."""
        self.statuses.clear()
        self.autoscale_state.clear()
        self._autoscaled_at.clear()
        self._unavailable.clear()
        self._capped.clear()
        self._surge_limited.clear()
        self._surge_totals.clear()

    def _event(self, key: Key, reason: str, message: str, replica: str = "") -> None:
        self.supervisor.event(key, reason, message, replica)

    async def reconcile(self, key: Key) -> Result:
        """Make what runs for deployment `key` match its spec (idempotent)."""
        ns, name = key
        sup = self.supervisor
        kv = await self.store.get(keys.deployment_key(ns, name))
        slots = sup.slots.setdefault(key, {})
        if kv is None:
            await sup.stop_all(key, "deployment deleted")
            self._forget_quota(key)
            self.statuses.pop(key, None)
            return Result()
        d = keys.decode(kv.value, P.Deployment)
        d.resource_version = kv.mod_revision
        status = P.DeploymentStatus()
        status.CopyFrom(d.status)
        if d.HasField("delete_time"):
            await sup.stop_all(key, "deployment deleted")
            if not sup.slots.get(key):
                with contextlib.suppress(NotFound, Conflict):
                    await self.store.commit([Guard(kv.key, kv.mod_revision)], [Op(kv.key, None)])
                sup.slots.pop(key, None)
                self.events.forget(key)
                self.statuses.pop(key, None)
                return Result()
            return Result(requeue_after=timedelta(milliseconds=200))

        conditions: Conditions = {}
        requeue: list[float] = []
        akv = await self.store.get(keys.agent_key(ns, d.spec.agent_id))
        agent: registry_pb2.Agent | None = None
        runtime: Runtime | None = None
        if akv is None:
            return await self._without_agent(kv.key, kv.mod_revision, d, status)
        else:
            agent = keys.decode(akv.value, registry_pb2.Agent)
            agent = self._effective_agent(agent, d.spec)
            try:
                check_deployable(agent)
                runtime = sup.runtimes.get(agent.runtime)
                check_resources(agent, d.spec)
            except (InvalidArgument, Unavailable) as err:
                conditions["ReplicaFailure"] = (True, "InvalidAgent" if isinstance(err, InvalidArgument)
                                                else "RuntimeUnavailable", str(err))
                runtime = None
        if agent is None or runtime is None:
            # what runs keeps running: report the revision it runs, not an empty one
            self._finish_status(d, status, conditions, revision=status.current_revision,
                                version=status.current_version)
            await self._write_status(kv.key, kv.mod_revision, d, status)
            return Result(requeue_after=timedelta(seconds=5))

        try:
            refs = spec_references(agent, d.spec)
            objects = await self._object_versions(ns, refs)
        except SutradharError as err:
            # what runs keeps running; nothing new starts until the references resolve
            conditions["ReplicaFailure"] = (True, _reference_reason(err), str(err))
            self._finish_status(d, status, conditions, revision=status.current_revision,
                                version=status.current_version)
            await self._write_status(kv.key, kv.mod_revision, d, status)
            return Result(requeue_after=timedelta(seconds=5))
        revision = revision_of(agent, d.spec, objects)
        history = self._record_revision(status, revision, agent)
        templates = {r.revision: r.agent for r in history}

        # autoscaling writes spec.replicas (like the HPA writes the scale)
        desired = d.spec.replicas
        if agent.runtime == "http":
            desired = http_replica_count(agent_config(agent)) if d.spec.replicas > 0 else 0
        if d.spec.HasField("autoscale") and agent.runtime != "http":
            scaled = await self._autoscale(key, d, status)
            admission: tuple[Snapshot, str] | None = None
            recommended = scaled
            if scaled is not None and scaled > d.spec.replicas:
                scaled, admission = await self._cap_to_quota(key, d, scaled)
            elif scaled is not None:
                self._capped.pop(key, None)
            if scaled is not None and self.on_autoscale is not None:
                self.on_autoscale(key, autoscale_decision(d.spec.replicas, recommended or 0, scaled))
            if scaled is not None and scaled != d.spec.replicas:
                self._event(key, "Scaled", f"autoscaler scaled {d.spec.replicas} -> {scaled} "
                            f"(in-flight per ready replica {status.autoscale.current_in_flight:.2f}, "
                            f"target {d.spec.autoscale.target_in_flight:g})")
                d.spec.replicas = scaled
                await self._write_status(kv.key, kv.mod_revision, d, status, force=True, admission=admission)
                return Result()
            requeue.append(self.config.autoscale_period.total_seconds())
        else:
            self._capped.pop(key, None)

        max_surge, max_unavailable = d.spec.strategy.max_surge, d.spec.strategy.max_unavailable
        try:
            check_fixed_port(agent, d.spec)
        except InvalidArgument as err:
            # the agent changed under the deployment: say so, and run what can run (one
            # replica, the old one stopped before the new one starts) instead of deadlocking
            conditions["ReplicaFailure"] = (True, "FixedPort", str(err))
            desired, max_surge, max_unavailable = min(desired, 1), "0", "1"

        now = self.clock.now()
        await self._observe_instances(key, ns)

        live = [s for s in slots.values() if s.phase != P.REPLICA_PHASE_TERMINATING]
        if any(s.revision != revision for s in live) and not d.spec.paused:
            max_surge = await self._quota_surge(key, d, desired, max_surge, max_unavailable)
        else:
            self._surge_limited.pop(key, None)
            self._surge_totals.pop(key, None)
        plan = rollout.plan(
            [rollout.Slot(s.id, s.revision, s.ready, s.created, s.waiting) for s in live],
            desired=desired,
            revision=revision,
            max_surge=max_surge,
            max_unavailable=max_unavailable,
            paused=d.spec.paused,
        )
        for slot_id in plan.stop:
            stopping = slots.get(slot_id)
            if stopping is not None:
                reason = "scaled down" if stopping.revision == revision else f"replaced by revision {revision}"
                sup.begin_stop(stopping, reason)
        # an agent with a fixed port starts nothing while a stopping replica still holds the port
        port_held = fixed_port(agent) is not None and any(
            s.phase == P.REPLICA_PHASE_TERMINATING and s.replica is not None for s in slots.values())
        starts = 0 if port_held else plan.start
        resolutions: dict[str, Resolution | None] = {}
        due = any(sl.waiting and sl.id not in plan.stop and restart_due(sl, now) for sl in slots.values())
        if refs and (starts or due):  # values are read (and the read audited) only to start a replica
            try:
                resolutions[revision] = await self._resolve(ns, refs)
            except SutradharError as err:
                conditions["ReplicaFailure"] = (True, _reference_reason(err), f"replicas cannot start: {err}")
                starts = 0
                requeue.append(5.0)
        elif not refs:
            resolutions[revision] = None
        if starts or plan.stop:
            if any(s.revision != revision for s in live):
                self._event(key, "RollingUpdate",
                            f"rolling to revision {revision} (version {agent.version}): +{starts} "
                            f"-{len(plan.stop)}")
            else:
                self._event(key, "Scaled", f"scaled to {desired} replicas (+{starts} -{len(plan.stop)})")
        # restarts that are due
        for slot in list(slots.values()):
            if slot.waiting and slot.id not in plan.stop:
                if port_held:
                    requeue.append(0.2)
                elif restart_due(slot, now):
                    template = agent if slot.revision == revision else templates.get(slot.revision)
                    if template is None:
                        sup.begin_stop(slot, "revision no longer known")
                        continue
                    if slot.revision not in resolutions:
                        if slot.revision == revision:  # the references of this revision did not resolve
                            requeue.append(5.0)
                            continue
                        try:
                            resolutions[slot.revision] = await self._resolve(ns, spec_references(template, d.spec))
                        except SutradharError as err:
                            conditions["ReplicaFailure"] = (True, _reference_reason(err),
                                                            f"replica {slot.id} cannot restart: {err}")
                            requeue.append(5.0)
                            continue
                    await sup.start(slot, template, d, restart=True, resolution=resolutions[slot.revision])
                else:
                    requeue.append(slot.back_off_until - now)
        for _ in range(starts):
            slot = Slot(
                id=f"{name[:50]}-{revision[:6]}-{uuid.uuid4().hex[:5]}",  # at most 63: a valid label value
                namespace=ns, deployment=name, revision=revision, version=agent.version,
                runtime=agent.runtime, created=self.clock.now(),
            )
            slots[slot.id] = slot
            await sup.start(slot, agent, d, restart=False, resolution=resolutions.get(revision))

        if d.spec.paused and any(s.revision != revision for s in slots.values()):
            conditions["Paused"] = (True, "DeploymentPaused", "the rollout is paused; resume it to continue")
        conditions["QuotaLimited"] = self._quota_condition(key)
        self._finish_status(d, status, conditions, revision=revision, version=agent.version, desired=desired)
        await self._write_status(kv.key, kv.mod_revision, d, status)
        if any(s.phase in (P.REPLICA_PHASE_STARTING, P.REPLICA_PHASE_TERMINATING) for s in slots.values()):
            requeue.append(1.0)
        return Result(requeue_after=timedelta(seconds=max(0.05, min(requeue)))) if requeue else Result()

    async def _object_versions(self, ns: str, refs: References) -> dict[str, str]:
        """The versions of the Secrets and ConfigMaps `refs` names (for the revision hash)."""
        if not refs:
            return {}
        if self.resolver is None:
            raise MissingReference("this scheduler cannot resolve Secret and ConfigMap references (it has no "
                                   "registry client)", ())
        return await self.resolver.versions(ns, refs)

    async def _resolve(self, ns: str, refs: References) -> Resolution | None:
        """What `refs` resolve to now (None when there are none)."""
        if not refs:
            return None
        if self.resolver is None:
            raise MissingReference("this scheduler cannot resolve Secret and ConfigMap references (it has no "
                                   "registry client)", ())
        return await self.resolver.resolve(ns, refs)

    async def _without_agent(
        self, dkey: str, mod_revision: int, d: scheduler_pb2.Deployment, status: scheduler_pb2.DeploymentStatus
    ) -> Result:
        """The deployment's agent is not registered (`agents delete --force` took it and
        its instances): nothing starts or restarts until it is registered again. A
        replica cannot be registered without its agent, so one whose instance is gone
        is stopped (Stopped, not a crash: no back-off, no crash loop), and a slot
        waiting to restart is dropped; a replica still registered is left alone.
        Registering the agent again recovers by itself (the agent watch enqueues
        the deployment)."""
        ns = d.namespace or keys.DEFAULT_NAMESPACE
        key = (ns, d.name)
        message = agent_missing(d.spec.agent_id, ns)
        slots = self.supervisor.slots.get(key, {})
        for slot in list(slots.values()):
            if slot.waiting and slot.replica is None:
                del slots[slot.id]
                self._event(key, "Stopped", f"replica {slot.id} will not restart: {message}", slot.id)
        ready = [s for s in slots.values() if s.ready and s.phase != P.REPLICA_PHASE_TERMINATING]
        found = await asyncio.gather(*(self.store.get(keys.instance_key(ns, s.id)) for s in ready))
        for slot, ikv in zip(ready, found, strict=True):
            if ikv is None:
                self.supervisor.begin_stop(slot, message)
        running = sum(1 for s in slots.values() if s.ready)
        conditions: Conditions = {
            "ReplicaFailure": (True, "AgentNotFound", message),
            "Progressing": (False, "AgentNotFound",
                            f"nothing starts until agent {d.spec.agent_id!r} is registered again; "
                            f"{running} ready of {d.spec.replicas}"),
        }
        self._finish_status(d, status, conditions, revision=status.current_revision, version=status.current_version)
        await self._write_status(dkey, mod_revision, d, status)
        return Result(requeue_after=timedelta(seconds=5))

    def _effective_agent(self, agent: registry_pb2.Agent, spec: scheduler_pb2.DeploymentSpec) -> registry_pb2.Agent:
        out = template_agent(agent)
        if spec.resources.cpu:
            out.resources.cpu = spec.resources.cpu
        if spec.resources.memory:
            out.resources.memory = spec.resources.memory
        return out

    def _record_revision(
        self, status: scheduler_pb2.DeploymentStatus, revision: str, agent: registry_pb2.Agent
    ) -> list[scheduler_pb2.RevisionRecord]:
        history = list(status.revisions)
        if not history or history[-1].revision != revision:
            history = [r for r in history if r.revision != revision]
            rec = P.RevisionRecord(revision=revision, version=agent.version, agent=agent)
            rec.create_time.CopyFrom(timestamp(self.clock.now()))
            history.append(rec)
            history = history[-MAX_REVISIONS:]
            del status.revisions[:]
            status.revisions.extend(history)
        return history

    async def _autoscale(
        self, key: Key, d: scheduler_pb2.Deployment, status: scheduler_pb2.DeploymentStatus
    ) -> int | None:
        """The HPA step, at most once per autoscale period: `ceil(ready x metric /
        target)` where the metric is the routers' in-flight count averaged over
        the ready replicas (replicas still starting have no load yet, so they
        neither count nor dilute it). None when it is not time yet."""
        params = autoscale_params(d.spec.autoscale)
        current = max(d.spec.replicas, 0)
        bounded = max(params.min_replicas, min(params.max_replicas, current))
        if bounded != current:
            return bounded
        now = self.clock.monotonic()
        if now - self._autoscaled_at.get(key, -1e9) < self.config.autoscale_period.total_seconds() * 0.9:
            return None
        self._autoscaled_at[key] = now
        slots = self.supervisor.slots.get(key, {}).values()
        ready = {s.id for s in slots if s.ready}
        if not ready or (len(ready) < len(slots) and current > len(ready)):
            return None  # a scale is still in progress: wait for it before judging the load
        kvs, _ = await self.store.list(f"{keys.ROOT}{keys.LOAD}/{key[0]}/")
        total = 0.0
        for kv in kvs:
            record = parse_record(kv.key, kv.value)  # a malformed record (NaN, negative) counts for nothing
            if record is not None and record.instance_id in ready:
                total += record.in_flight
        metric = total / len(ready)
        state = self.autoscale_state.get(key, AutoscaleState())
        wanted, state = autoscale(params, state, now=now, current=len(ready), metric=metric)
        self.autoscale_state[key] = state
        status.autoscale.current_in_flight = round(metric, 3)
        status.autoscale.recommended_replicas = wanted
        if wanted != current:
            status.autoscale.last_scale_time.CopyFrom(timestamp(self.clock.now()))
        return wanted

    # -- quotas -----------------------------------------------------------------

    def _forget_quota(self, key: Key) -> None:
        self._capped.pop(key, None)
        self._surge_limited.pop(key, None)
        self._surge_totals.pop(key, None)

    def _quota_condition(self, key: Key) -> tuple[bool, str, str]:
        """QuotaLimited: true while the autoscaler is capped or a rollout's surge reduced by a quota."""
        capped, surge = self._capped.get(key), self._surge_limited.get(key)
        if capped is None and surge is None:
            return False, "WithinQuota", ""
        reason = "AutoscalerCapped" if capped is not None else "SurgeLimited"
        return True, reason, "; ".join(m for m in (capped, surge) if m)

    def _live(self, key: Key) -> int:
        """Replicas of deployment `key` that run or are starting (not stopping)."""
        return sum(1 for s in self.supervisor.slots.get(key, {}).values() if s.phase != P.REPLICA_PHASE_TERMINATING)

    def _counted(self, snap_objects: quota.Objects, ns: str, but: str) -> quota.Objects:
        """The namespace's objects with every other deployment counted at what it may
        run now: its desired replicas, what runs, or the surge it was given."""
        replicas = {}
        for name, fp in snap_objects.deployments.items():
            if name == but:
                continue
            key = (ns, name)
            replicas[name] = max(fp.replicas, self._live(key), self._surge_totals.get(key, 0))
        return snap_objects.with_replicas(replicas)

    async def _cap_to_quota(
        self, key: Key, d: scheduler_pb2.Deployment, wanted: int
    ) -> tuple[int, tuple[Snapshot, str]]:
        """The autoscaler's scale-up to `wanted`, capped at what the quotas leave (never
        below the replicas it has); and the admission its write commits with."""
        ns, name = key
        snap = await self.quotas.snapshot(ns)
        current = d.spec.replicas
        note = f'deployment "{name}" autoscaled ({current} -> {wanted} replicas)'
        if not snap.bounded or name not in snap.objects.deployments:
            self._capped.pop(key, None)
            return wanted, (snap, note)
        objects = self._counted(snap.objects, ns, name)
        room = quota.room(snap.quotas, objects, name)
        counted = objects.deployments[name].replicas
        allowed = wanted if room.extra is None else counted + room.extra
        capped = max(current, min(wanted, allowed))
        if capped < wanted:
            self._capped[key] = f"the autoscaler recommends {wanted} replicas; capped at {capped} by {room.describe()}"
        else:
            self._capped.pop(key, None)
        return capped, (snap, f'deployment "{name}" autoscaled ({current} -> {capped} replicas)')

    async def _quota_surge(
        self, key: Key, d: scheduler_pb2.Deployment, desired: int, max_surge: str, max_unavailable: str
    ) -> str:
        """A rolling update's max_surge reduced to the replicas the quotas leave above
        `desired` (every other deployment counted at what it may run now). At 0 the
        rollout still progresses by max_unavailable (at least 1: `resolve_strategy`)."""
        ns, name = key
        lock = self._surge_locks.setdefault(ns, asyncio.Lock())
        async with lock:  # two rollouts in a namespace must not both take the same room
            found, _ = await self.quotas.quotas(ns)
            surge, _unavailable = rollout.resolve_strategy(max_surge, max_unavailable, desired)
            if not found or surge == 0:
                self._surge_limited.pop(key, None)
                self._surge_totals[key] = desired + surge
                return max_surge
            objects = self._counted(await self.quotas.objects(ns, bounded={r for q in found for r in q.hard}), ns, name)
            if name not in objects.deployments:
                return max_surge
            objects = objects.with_replicas({name: desired})
            room = quota.room(found, objects, name)
            allowed = surge if room.extra is None else min(surge, room.extra)
            self._surge_totals[key] = desired + allowed
            if allowed >= surge:
                self._surge_limited.pop(key, None)
                return max_surge
            fallback = ("" if allowed else
                        "; old replicas are replaced as max_unavailable allows (at least one at a time)")
            self._surge_limited[key] = (f"rolling update surge reduced from {surge} to {allowed} replicas by "
                                        f"{room.describe()}{fallback}")
            return str(allowed)

    async def _observe_instances(self, key: Key, ns: str) -> None:
        """Read the ready replicas' instances: restart those whose liveness failed
        (health's `restart_requested`), note those the health service took out of
        rotation (not available)."""
        slots = self.supervisor.slots.get(key, {})
        ready = [s for s in slots.values() if s.ready]
        self._unavailable.pop(key, None)
        if not ready:
            return
        found = await asyncio.gather(*(self.store.get(keys.instance_key(ns, s.id)) for s in ready))
        instances = [keys.decode(kv.value, registry_pb2.Instance) for kv in found if kv is not None]
        flagged = {inst.id for inst in instances if inst.health.restart_requested}
        # readiness as the health service sees it: such replicas are ready but not available
        self._unavailable[key] = {
            inst.id for inst in instances
            if inst.state in (registry_pb2.INSTANCE_STATE_NOT_SERVING, registry_pb2.INSTANCE_STATE_DRAINING)
        }
        for slot in ready:
            if slot.id in flagged:
                await self.supervisor.restart_for_liveness(slot)

    def _finish_status(
        self,
        d: scheduler_pb2.Deployment,
        status: scheduler_pb2.DeploymentStatus,
        conditions: Conditions,
        *,
        revision: str,
        version: str,
        desired: int | None = None,
    ) -> None:
        key = (d.namespace or keys.DEFAULT_NAMESPACE, d.name)
        finish_status(
            d, status, conditions, self.supervisor.slots.get(key, {}).values(),
            config=self.config, now=self.clock.now(), revision=revision, version=version, desired=desired,
            unavailable=self._unavailable.get(key, set()),
        )

    async def _write_status(
        self,
        key: str,
        mod_revision: int,
        d: scheduler_pb2.Deployment,
        status: scheduler_pb2.DeploymentStatus,
        *,
        force: bool = False,
        admission: tuple[Snapshot, str] | None = None,
    ) -> None:
        """Write `status` (with the pending events) guarded by `mod_revision`;
        nothing when unchanged. On a conflict the events stay pending. With
        `admission` (a snapshot and a note), the write is a quota admission."""
        dkey = (d.namespace or keys.DEFAULT_NAMESPACE, d.name)
        self.statuses[dkey] = status  # what the metrics show (services/common/metrics_scheduler.py)
        events = self.events.drain(dkey, status)
        if status == d.status and not force:
            return
        d.status.CopyFrom(status)
        d.ClearField("resource_version")
        try:
            if admission is None:
                await self.store.commit([Guard(key, mod_revision)], [Op(key, keys.encode(d))])
            else:
                snap, note = admission
                await self.quotas.commit(snap, [Guard(key, mod_revision)], [Op(key, keys.encode(d))], note=note)
        except (Conflict, NotFound):
            self.events.restore(dkey, events)
            raise


def _reference_reason(err: SutradharError) -> str:
    """The ReplicaFailure reason for references that do not resolve."""
    if isinstance(err, MissingReference):
        return "MissingReference"
    if isinstance(err, InvalidArgument):
        return "InvalidReference"
    return "ReferenceUnavailable"


def autoscale_decision(current: int, recommended: int, scaled: int) -> str:
    """What one autoscaler step decided, for its metric: "capped" when a quota cut the
    recommended scale-up short, else "up", "down" or "unchanged"."""
    if scaled < recommended and scaled >= current:
        return "capped"
    if scaled > current:
        return "up"
    return "down" if scaled < current else "unchanged"
