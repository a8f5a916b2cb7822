"""The deployment controller: a level-triggered, idempotent reconcile loop.

Watches (deployments, agents, instances) and a periodic resync only enqueue
deployment keys; workers pull keys from a deduplicating `WorkQueue` and call
`reconcile(key)`, which reads the deployment, its agent and what runs, and
acts: start, restart after back-off, stop, roll, scale. `_process` is the one
place that maps the outcome to the next step (error -> back-off retry,
`requeue_after` -> timed retry, done -> forget).

Only the elected leader reconciles. On winning, it adopts what already runs
(`runtime.list()` plus the registered instances and the slots recorded in each
deployment's status) instead of starting duplicates; on losing, it forgets
its in-memory state but leaves the replicas running for the next leader.

Each started replica has a monitor task: it waits for readiness (port open and
gRPC health SERVING), registers the instance through the registry, then
watches the process; on exit it deregisters at once and puts the slot in
back-off (1 s, 2 s, 4 s ... capped), and the next reconcile restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sutradhar._clients import RegistryClient
from sutradhar._errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    OutOfRange,
    SutradharError,
    Unavailable,
)
from sutradhar._labels import validate_label_key, validate_label_value
from sutradhar.services.common import keys
from sutradhar.services.common.store import Guard, Op, Store
from sutradhar.services.common.validation import ResolvedProbe, resolve_probe
from sutradhar.services.scheduler import rollout
from sutradhar.services.scheduler.autoscale import AutoscaleState, autoscale
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.runtimes.base import (
    LABEL_DEPLOYMENT,
    LABEL_REPLICA,
    LABEL_REVISION,
    Replica,
    ReplicaPhase,
    ReplicaSpec,
    Runtime,
)
from sutradhar.services.scheduler.runtimes.loader import RuntimeSet
from sutradhar.services.scheduler.runtimes.virtual import http_replica_count
from sutradhar.services.scheduler.spec import (
    agent_config,
    autoscale_params,
    check_deployable,
    check_fixed_port,
    check_resources,
    fixed_port,
    revision_of,
    template_agent,
)
from sutradhar.services.scheduler.workqueue import WorkQueue
from sutradhar.v1 import registry_pb2, scheduler_pb2

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, deployment name)."""

LABEL_VERSION = "sutradhar.version"
MAX_EVENTS = 50
MAX_REVISIONS = 10
P = scheduler_pb2


def _ts(epoch: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(epoch, UTC))
    return ts


def _epoch(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


@dataclass
class Slot:
    """One replica slot of a deployment, as the leader tracks it."""

    id: str
    namespace: str
    deployment: str
    revision: str
    version: str
    runtime: str
    created: float
    replica: Replica | None = None
    phase: P.ReplicaPhase = P.REPLICA_PHASE_STARTING
    ready: bool = False
    lease_id: int = 0
    restarts: int = 0
    back_off_until: float = 0.0
    message: str = ""
    ready_since: float = 0.0
    probe: ResolvedProbe | None = None
    monitor: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def key(self) -> Key:
        return (self.namespace, self.deployment)

    @property
    def waiting(self) -> bool:
        """In back-off after a crash or a failed start."""
        return self.phase in (P.REPLICA_PHASE_BACK_OFF, P.REPLICA_PHASE_FAILED)


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next."""

    requeue_after: timedelta | None = None


class Controller:
    """Reconciles every deployment while this member leads."""

    def __init__(self, store: Store, registry: RegistryClient, runtimes: RuntimeSet, config: SchedulerConfig) -> None:
        self.store = store
        self.registry = registry
        self.runtimes = runtimes
        self.config = config
        self.queue: WorkQueue[Key] = WorkQueue()
        self.slots: dict[Key, dict[str, Slot]] = {}
        self.pending_events: dict[Key, list[scheduler_pb2.DeploymentEvent]] = {}
        self.autoscale_state: dict[Key, AutoscaleState] = {}
        self._autoscaled_at: dict[Key, float] = {}
        self._unavailable: dict[Key, set[str]] = {}
        self.leading = False
        self._term = 0
        self._tg: asyncio.TaskGroup | None = None
        self._adopted = asyncio.Event()

    # -- running ----------------------------------------------------------------

    async def run(self) -> None:
        """Watch, resync, keep leases alive and reconcile until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._watch(keys.kind_prefix(keys.DEPLOYMENTS), self._on_deployment_event))
            tg.create_task(self._watch(keys.kind_prefix(keys.AGENTS), self._on_agent_event))
            tg.create_task(self._watch(keys.kind_prefix(keys.INSTANCES), self._on_instance_event))
            tg.create_task(self._resync_loop())
            tg.create_task(self._keepalive_loop())
            tg.create_task(self._maintenance_loop())
            for _ in range(max(1, self.config.workers)):
                tg.create_task(self._worker())

    async def set_leader(self, leading: bool) -> None:
        """Called by the election: adopt on winning, forget on losing."""
        if leading == self.leading:
            return
        self._term += 1
        if not leading:
            self._forget()
            return
        self.leading = True
        try:
            await self._adopt()
        except BaseException:
            # without a complete adoption the leader could start duplicates: give
            # leadership back (the election tries again) instead of acting
            self._forget()
            raise
        self._adopted.set()
        await self.enqueue_all()

    def _forget(self) -> None:
        """Leadership lost: stop acting, drop in-memory state; replicas keep running."""
        self.leading = False
        self._adopted.clear()
        for slots in self.slots.values():
            for slot in slots.values():
                if slot.monitor is not None:
                    slot.monitor.cancel()
        self.slots.clear()
        self.autoscale_state.clear()
        self._autoscaled_at.clear()
        self._unavailable.clear()

    # -- watches and resync only enqueue keys -------------------------------------

    async def _watch(self, prefix: str, handle: object) -> None:
        revision = 0
        while True:
            try:
                async for ev in self.store.watch(prefix, start_revision=revision):
                    revision = ev.revision + 1
                    await handle(ev)  # type: ignore[operator]
            except OutOfRange:
                revision = 0
                await self.enqueue_all()
            except SutradharError as err:
                log.warning("watch of %s broke: %s", prefix, err)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("watch of %s failed", prefix)
                await asyncio.sleep(0.5)

    async def _on_deployment_event(self, ev: object) -> None:
        _, ns, name = keys.parse_key(ev.kv.key)  # type: ignore[attr-defined]
        self.queue.add((ns, name))

    async def _on_agent_event(self, ev: object) -> None:
        _, ns, agent_id = keys.parse_key(ev.kv.key)  # type: ignore[attr-defined]
        if not self.leading:
            return
        kvs, _ = await self.store.list(keys.kind_prefix(keys.DEPLOYMENTS, ns))
        for kv in kvs:
            d = keys.decode(kv.value, P.Deployment)
            if d.spec.agent_id == agent_id:
                self.queue.add((ns, d.name))

    async def _on_instance_event(self, ev: object) -> None:
        kv = ev.prev if ev.type.value == "DELETE" and ev.prev is not None else ev.kv  # type: ignore[attr-defined]
        if not kv.value:
            return
        try:
            inst = keys.decode(kv.value, registry_pb2.Instance)
        except Exception:
            return
        deployment = inst.labels.get(LABEL_DEPLOYMENT)
        if deployment:
            self.queue.add((inst.namespace or keys.DEFAULT_NAMESPACE, deployment))

    async def enqueue_all(self) -> None:
        """Queue every deployment (and every key with tracked slots)."""
        try:
            kvs, _ = await self.store.list(keys.kind_prefix(keys.DEPLOYMENTS))
        except SutradharError as err:
            log.warning("resync: %s", err)
            return
        for kv in kvs:
            _, ns, name = keys.parse_key(kv.key)
            self.queue.add((ns, name))
        for key in list(self.slots):
            self.queue.add(key)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_period.total_seconds())
            if self.leading:
                await self.enqueue_all()

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(5)
            with contextlib.suppress(Exception):
                self.runtimes.rotate_logs()

    # -- the one place that maps outcomes to next steps ----------------------------

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                if not self.leading:
                    continue
                await self._adopted.wait()
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: Key) -> None:
        started = time.monotonic()
        try:
            result = await self.reconcile(key)
        except Conflict:
            self.queue.add_after(key, timedelta(milliseconds=20))
            return
        except Exception as err:
            delay = self.queue.add_rate_limited(key)
            if isinstance(err, SutradharError):
                log.warning("reconcile %s/%s: %s (retry in %.2fs)", *key, err, delay.total_seconds())
            else:
                log.exception("reconcile %s/%s failed (retry in %.2fs)", *key, delay.total_seconds())
            return
        self.queue.forget(key)
        if result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)
        log.debug("reconciled %s/%s in %.3fs", *key, time.monotonic() - started)

    # -- adoption ------------------------------------------------------------------

    async def _adopt(self) -> None:
        """Track what already runs: runtime replicas, their instances, recorded slots."""
        term = self._term
        instances: dict[tuple[str, str], registry_pb2.Instance] = {}
        kvs, _ = await self.store.list(keys.kind_prefix(keys.INSTANCES))
        for kv in kvs:
            inst = keys.decode(kv.value, registry_pb2.Instance)
            if LABEL_DEPLOYMENT in inst.labels:
                instances[(inst.namespace or keys.DEFAULT_NAMESPACE, inst.id)] = inst
        deployments: dict[Key, scheduler_pb2.Deployment] = {}
        dkvs, _ = await self.store.list(keys.kind_prefix(keys.DEPLOYMENTS))
        for kv in dkvs:
            d = keys.decode(kv.value, P.Deployment)
            deployments[(d.namespace or keys.DEFAULT_NAMESPACE, d.name)] = d
        recorded: dict[tuple[str, str], scheduler_pb2.ReplicaStatus] = {}
        for key, d in deployments.items():
            for rs in d.status.replica_statuses:
                recorded[(key[0], rs.id)] = rs
        found: set[tuple[str, str]] = set()
        runtime_names = set()
        agents: dict[Key, registry_pb2.Agent] = {}
        for key, d in deployments.items():
            akv = await self.store.get(keys.agent_key(key[0], d.spec.agent_id))
            if akv is not None:
                agents[key] = keys.decode(akv.value, registry_pb2.Agent)
                runtime_names.add(agents[key].runtime)
            runtime_names.update(r.agent.runtime for r in d.status.revisions)
        listed: set[str] = set()
        for runtime in self.runtimes.for_adoption(runtime_names):
            try:
                replicas = await asyncio.wait_for(runtime.list(), 30)
            except (SutradharError, TimeoutError) as err:
                log.warning("cannot list %s replicas for adoption: %s", runtime.name, err)
                continue
            listed.add(runtime.name)
            for replica in replicas:
                if term != self._term:
                    return
                key = (replica.namespace, replica.deployment)
                if key not in deployments:
                    continue  # not ours to manage (another mesh sharing the engine, or not a deployment)
                previous = recorded.get((replica.namespace, replica.replica_id))
                slot = Slot(
                    id=replica.replica_id,
                    namespace=replica.namespace,
                    deployment=replica.deployment,
                    revision=replica.revision,
                    version=replica.labels.get(LABEL_VERSION, ""),
                    runtime=runtime.name,
                    created=replica.started_at.timestamp() if replica.started_at else time.time(),
                    replica=replica,
                    restarts=previous.restarts if previous else 0,
                )
                if key in agents:
                    slot.probe = resolve_probe(agents[key].probes.readiness, runtime=agents[key].runtime)
                found.add((replica.namespace, replica.replica_id))
                inst = instances.get((replica.namespace, replica.replica_id))
                if inst is not None and inst.endpoint == replica.endpoint:
                    slot.lease_id = inst.lease_id
                self.slots.setdefault(key, {})[slot.id] = slot
                self._event(key, "Adopted", f"adopted {runtime.name} replica {slot.id} ({replica.endpoint})", slot.id)
                if replica.phase is ReplicaPhase.RUNNING:
                    self._spawn_monitor(slot)
                else:
                    await self._on_exit(slot, replica)
        # slots recorded as waiting for a restart keep their back-off
        for key, d in deployments.items():
            for rs in d.status.replica_statuses:
                if (key[0], rs.id) in found or rs.phase not in (P.REPLICA_PHASE_BACK_OFF, P.REPLICA_PHASE_FAILED):
                    continue
                self.slots.setdefault(key, {})[rs.id] = Slot(
                    id=rs.id, namespace=key[0], deployment=key[1], revision=rs.revision, version=rs.version,
                    runtime="", created=_epoch(rs.start_time) or time.time(), phase=rs.phase,
                    restarts=rs.restarts, back_off_until=_epoch(rs.back_off_until), message=rs.message,
                )
        # instances of replicas that no longer run are deregistered
        for (ns, inst_id), inst in instances.items():
            if (ns, inst_id) not in found and inst.runtime in listed:
                self._spawn(self._deregister(ns, inst_id))
                self.queue.add((ns, inst.labels[LABEL_DEPLOYMENT]))

    # -- reconcile -------------------------------------------------------------------

    async def reconcile(self, key: Key) -> Result:
        """Make what runs for deployment `key` match its spec (idempotent)."""
        ns, name = key
        kv = await self.store.get(keys.deployment_key(ns, name))
        slots = self.slots.setdefault(key, {})
        if kv is None:
            await self._stop_all(key, "deployment deleted")
            return Result()
        d = keys.decode(kv.value, P.Deployment)
        d.resource_version = kv.mod_revision
        status = P.DeploymentStatus()
        status.CopyFrom(d.status)
        if d.HasField("delete_time"):
            await self._stop_all(key, "deployment deleted")
            if not self.slots.get(key):
                with contextlib.suppress(NotFound, Conflict):
                    await self.store.commit([Guard(kv.key, kv.mod_revision)], [Op(kv.key, None)])
                self.slots.pop(key, None)
                self.pending_events.pop(key, None)
                return Result()
            return Result(requeue_after=timedelta(milliseconds=200))

        conditions: dict[str, tuple[bool, str, str]] = {}
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
                runtime = self.runtimes.get(agent.runtime)
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

        revision = revision_of(agent, d.spec)
        history = self._record_revision(status, revision, agent)
        templates = {r.revision: r.agent for r in history}

        # autoscaling writes spec.replicas (like the HPA writes the scale)
        desired = d.spec.replicas
        if agent.runtime == "http":
            desired = http_replica_count(agent_config(agent)) if d.spec.replicas > 0 else 0
        if d.spec.HasField("autoscale") and agent.runtime != "http":
            scaled = await self._autoscale(key, d, status)
            if scaled is not None and scaled != d.spec.replicas:
                self._event(key, "Scaled", f"autoscaler scaled {d.spec.replicas} -> {scaled} "
                            f"(in-flight per ready replica {status.autoscale.current_in_flight:.2f}, "
                            f"target {d.spec.autoscale.target_in_flight:g})")
                d.spec.replicas = scaled
                await self._write_status(kv.key, kv.mod_revision, d, status, force=True)
                return Result()
            requeue.append(self.config.autoscale_period.total_seconds())

        max_surge, max_unavailable = d.spec.strategy.max_surge, d.spec.strategy.max_unavailable
        try:
            check_fixed_port(agent, d.spec)
        except InvalidArgument as err:
            # the agent changed under the deployment: say so, and run what can run (one
            # replica, the old one stopped before the new one starts) instead of deadlocking
            conditions["ReplicaFailure"] = (True, "FixedPort", str(err))
            desired, max_surge, max_unavailable = min(desired, 1), "0", "1"

        now = time.time()
        await self._observe_instances(key, ns)

        live = [s for s in slots.values() if s.phase != P.REPLICA_PHASE_TERMINATING]
        plan = rollout.plan(
            [rollout.Slot(s.id, s.revision, s.ready, s.created, s.waiting) for s in live],
            desired=desired,
            revision=revision,
            max_surge=max_surge,
            max_unavailable=max_unavailable,
            paused=d.spec.paused,
        )
        for slot_id in plan.stop:
            slot = slots.get(slot_id)
            if slot is not None:
                reason = "scaled down" if slot.revision == revision else f"replaced by revision {revision}"
                self._begin_stop(slot, reason)
        # an agent with a fixed port starts nothing while a stopping replica still holds the port
        port_held = fixed_port(agent) is not None and any(
            s.phase == P.REPLICA_PHASE_TERMINATING and s.replica is not None for s in slots.values())
        starts = 0 if port_held else plan.start
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
                elif slot.back_off_until <= now:
                    template = agent if slot.revision == revision else templates.get(slot.revision)
                    if template is None:
                        self._begin_stop(slot, "revision no longer known")
                        continue
                    await self._start(slot, template, d, restart=True)
                else:
                    requeue.append(slot.back_off_until - now)
        for _ in range(starts):
            slot = Slot(
                id=f"{name[:50]}-{revision[:6]}-{uuid.uuid4().hex[:5]}",  # at most 63: a valid label value
                namespace=ns, deployment=name, revision=revision, version=agent.version,
                runtime=agent.runtime, created=time.time(),
            )
            slots[slot.id] = slot
            await self._start(slot, agent, d, restart=False)

        if d.spec.paused and any(s.revision != revision for s in slots.values()):
            conditions["Paused"] = (True, "DeploymentPaused", "the rollout is paused; resume it to continue")
        self._finish_status(d, status, conditions, revision=revision, version=agent.version, desired=desired)
        await self._write_status(kv.key, kv.mod_revision, d, status)
        if any(s.phase in (P.REPLICA_PHASE_STARTING, P.REPLICA_PHASE_TERMINATING) for s in slots.values()):
            requeue.append(1.0)
        return Result(requeue_after=timedelta(seconds=max(0.05, min(requeue)))) if requeue else Result()

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
        slots = self.slots.get(key, {})
        for slot in list(slots.values()):
            if slot.waiting and slot.replica is None:
                del slots[slot.id]
                self._event(key, "Stopped", f"replica {slot.id} will not restart: {message}", slot.id)
        ready = [s for s in slots.values() if s.ready and s.phase != P.REPLICA_PHASE_TERMINATING]
        found = await asyncio.gather(*(self.store.get(keys.instance_key(ns, s.id)) for s in ready))
        for slot, ikv in zip(ready, found, strict=True):
            if ikv is None:
                self._begin_stop(slot, message)
        running = sum(1 for s in slots.values() if s.ready)
        conditions = {
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
            rec.create_time.GetCurrentTime()
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
        now = time.monotonic()
        if now - self._autoscaled_at.get(key, -1e9) < self.config.autoscale_period.total_seconds() * 0.9:
            return None
        self._autoscaled_at[key] = now
        slots = self.slots.get(key, {}).values()
        ready = {s.id for s in slots if s.ready}
        if not ready or (len(ready) < len(slots) and current > len(ready)):
            return None  # a scale is still in progress: wait for it before judging the load
        kvs, _ = await self.store.list(f"{keys.ROOT}{keys.LOAD}/{key[0]}/")
        total = 0.0
        for kv in kvs:
            parts = kv.key.rsplit("/", 2)
            if len(parts) < 3 or parts[-2] not in ready:
                continue
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                total += float(json.loads(kv.value).get("in_flight", 0.0))
        metric = total / len(ready)
        state = self.autoscale_state.get(key, AutoscaleState())
        wanted, state = autoscale(params, state, now=now, current=len(ready), metric=metric)
        self.autoscale_state[key] = state
        status.autoscale.current_in_flight = round(metric, 3)
        status.autoscale.recommended_replicas = wanted
        if wanted != current:
            status.autoscale.last_scale_time.GetCurrentTime()
        return wanted

    async def _observe_instances(self, key: Key, ns: str) -> None:
        """Read the ready replicas' instances: restart those whose liveness failed
        (health's `restart_requested`), note those the health service took out of
        rotation (not available)."""
        slots = self.slots.get(key, {})
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
                # counted and backed off like a crash (as Kubernetes does): a probe that always
                # fails ends in CrashLoopBackOff, not in a restart every few hundred milliseconds
                slot.restarts += 1
                delay = self._backoff(slot.restarts)
                self._event(key, "Restarted", f"liveness failed: restarting replica {slot.id} "
                            f"(restart {slot.restarts} in {delay.total_seconds():g}s)", slot.id)
                if slot.monitor is not None:
                    slot.monitor.cancel()
                await self._deregister(ns, slot.id)
                slot.ready = False
                slot.lease_id = 0
                if slot.replica is not None:
                    await self._runtime_of(slot).stop(slot.replica, grace=self.config.stop_grace)
                slot.replica = None
                slot.phase = P.REPLICA_PHASE_BACK_OFF
                slot.back_off_until = time.time() + delay.total_seconds()
                slot.message = "restarted after a liveness failure"

    # -- starting and stopping -------------------------------------------------------

    def _runtime_of(self, slot: Slot) -> Runtime:
        return self.runtimes.get(slot.runtime or (slot.replica.runtime if slot.replica else "process"))

    async def _start(
        self, slot: Slot, agent: registry_pb2.Agent, d: scheduler_pb2.Deployment, *, restart: bool
    ) -> None:
        runtime = self.runtimes.get(agent.runtime)
        slot.runtime = runtime.name
        labels = {
            **d.spec.labels,
            LABEL_DEPLOYMENT: slot.deployment,
            LABEL_REVISION: slot.revision,
            LABEL_REPLICA: slot.id,
            LABEL_VERSION: agent.version,
        }
        spec = ReplicaSpec(
            namespace=slot.namespace, deployment=slot.deployment, replica_id=slot.id,
            revision=slot.revision, agent=agent, env=dict(d.spec.env), labels=labels,
        )
        try:
            replica = await runtime.start(spec)
        except SutradharError as err:
            err = self._explain_port_in_use(slot, agent, err)
            slot.restarts += 1 if restart or slot.phase == P.REPLICA_PHASE_FAILED else 0
            slot.phase = P.REPLICA_PHASE_FAILED
            slot.message = str(err)
            slot.back_off_until = time.time() + self._backoff(slot.restarts).total_seconds()
            self._event(slot.key, "FailedToStart", f"replica {slot.id}: {err}", slot.id)
            return
        slot.replica = replica
        slot.version = agent.version
        slot.probe = resolve_probe(agent.probes.readiness, runtime=agent.runtime)
        slot.phase = P.REPLICA_PHASE_STARTING
        slot.ready = False
        slot.back_off_until = 0.0
        slot.created = slot.created or time.time()
        verb = "Restarted" if restart else "Started"
        self._event(slot.key, verb, f"{verb.lower()} replica {slot.id} ({replica.endpoint}, revision {slot.revision})",
                    slot.id)
        self._spawn_monitor(slot)

    def _explain_port_in_use(self, slot: Slot, agent: registry_pb2.Agent, err: SutradharError) -> SutradharError:
        """Say so when the fixed port a replica could not bind is held by another
        replica of the same deployment (its old replica, still stopping)."""
        port = fixed_port(agent)
        if port is None or not isinstance(err, InvalidArgument) or err.field != "agent.config.port":
            return err
        for other in self.slots.get(slot.key, {}).values():
            if other is not slot and other.replica is not None and \
                    other.replica.endpoint.rpartition(":")[2] == str(port):
                state = "stopping" if other.phase == P.REPLICA_PHASE_TERMINATING else "running"
                return InvalidArgument(
                    f"port {port} is held by replica {other.id} of this deployment (revision {other.revision}, "
                    f"{state}); a fixed config.port allows one replica at a time: replicas 1 and spec.strategy "
                    "max_surge: 0, max_unavailable: 1, or drop config.port",
                    field="agent.config.port",
                )
        return err

    def _backoff(self, restarts: int) -> timedelta:
        seconds = self.config.backoff_base.total_seconds() * (2 ** max(0, restarts - 1))
        return timedelta(seconds=min(seconds, self.config.backoff_max.total_seconds()))

    def _begin_stop(self, slot: Slot, reason: str) -> None:
        if slot.phase == P.REPLICA_PHASE_TERMINATING:
            return
        slot.phase = P.REPLICA_PHASE_TERMINATING
        if slot.monitor is not None and slot.monitor is not asyncio.current_task():
            slot.monitor.cancel()
        self._spawn(self._stop_slot(slot, reason))

    async def _stop_slot(self, slot: Slot, reason: str) -> None:
        """Drain, stop, deregister: routers stop picking the instance (DRAINING)
        while its connections stay open for calls in flight; after `drain_delay`
        the replica gets SIGTERM (the SDK finishes in-flight tasks), and the
        instance is deregistered once the process is gone."""
        was_ready = slot.ready
        slot.ready = False
        try:
            if was_ready:
                with contextlib.suppress(NotFound, Unavailable):
                    await self.registry.update_instance_state(
                        slot.id, registry_pb2.INSTANCE_STATE_DRAINING, namespace=slot.namespace,
                        timeout=timedelta(seconds=5),
                    )
                if self.config.drain_delay:
                    await asyncio.sleep(self.config.drain_delay.total_seconds())
            if slot.replica is not None:
                await self._runtime_of(slot).stop(slot.replica, grace=self.config.stop_grace)
            await self._deregister(slot.namespace, slot.id)
            slot.lease_id = 0
            self._event(slot.key, "Stopped", f"stopped replica {slot.id}: {reason}", slot.id)
        except Exception:
            log.exception("stopping %s failed", slot.id)
        finally:
            slots = self.slots.get(slot.key, {})
            if slots.get(slot.id) is slot:
                del slots[slot.id]
            self.queue.add(slot.key)

    async def _stop_all(self, key: Key, reason: str) -> None:
        """Stop every slot of `key`, and any replica the runtimes still find for it."""
        ns, name = key
        for slot in list(self.slots.get(key, {}).values()):
            if slot.replica is None:
                self.slots[key].pop(slot.id, None)
            else:
                self._begin_stop(slot, reason)
        for runtime in self.runtimes.loaded():
            try:
                found = await runtime.list(ns)
            except SutradharError:
                continue
            for replica in found:
                if replica.deployment == name and replica.replica_id not in self.slots.get(key, {}):
                    await self._deregister(ns, replica.replica_id)
                    await runtime.stop(replica, grace=self.config.stop_grace)
        if key in self.slots and not self.slots[key]:
            del self.slots[key]

    # -- monitors -------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` in the controller's task group; its failure is logged, never
        fatal to the controller (a TaskGroup would cancel every sibling)."""
        assert self._tg is not None, "controller not running"

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background step of the controller failed")

        return self._tg.create_task(guarded())

    def _spawn_monitor(self, slot: Slot) -> None:
        if slot.monitor is not None:
            slot.monitor.cancel()
        slot.monitor = self._spawn(self._monitor(slot))

    async def _monitor(self, slot: Slot) -> None:
        try:
            await self._monitor_inner(slot)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monitor of %s failed", slot.id)
            self.queue.add(slot.key)

    async def _monitor_inner(self, slot: Slot) -> None:
        assert slot.replica is not None
        runtime = self._runtime_of(slot)
        period = self.config.monitor_period.total_seconds()
        deadline = time.monotonic() + self.config.readiness_timeout.total_seconds()
        replica = slot.replica
        if not slot.ready:
            while True:
                replica = await runtime.inspect(replica)
                if replica.phase in (ReplicaPhase.EXITED, ReplicaPhase.FAILED):
                    await self._on_exit(slot, replica)
                    return
                if await probe_ready(replica, slot.probe):
                    break
                if time.monotonic() > deadline:
                    await runtime.stop(replica, grace=self.config.stop_grace)
                    await self._on_exit(slot, replica, reason=(
                        f"not ready within {self.config.readiness_timeout.total_seconds():g}s "
                        f"(port {replica.endpoint} not serving gRPC health)"))
                    return
                await asyncio.sleep(min(period, 0.05))
            if not await self._register(slot):
                return
        while True:
            await asyncio.sleep(period)
            replica = await runtime.inspect(replica)
            if replica.phase in (ReplicaPhase.EXITED, ReplicaPhase.FAILED):
                await self._on_exit(slot, replica)
                return
            if slot.restarts and slot.ready_since and \
                    time.time() - slot.ready_since > self.config.backoff_reset.total_seconds():
                slot.restarts = 0

    async def _register(self, slot: Slot) -> bool:
        """Register the ready replica's instance; False (and the replica stopped) when
        the registry refuses it for good."""
        assert slot.replica is not None
        replica = slot.replica
        instance = registry_pb2.Instance(
            id=slot.id, namespace=slot.namespace, agent_id=replica.agent_id, endpoint=replica.endpoint,
            runtime=slot.runtime, state=registry_pb2.INSTANCE_STATE_SERVING, version=slot.version,
            labels=instance_labels(replica.labels),
        )
        while True:
            try:
                stored = await self.registry.register_instance(
                    instance, ttl=self.config.instance_ttl, replace=True, timeout=timedelta(seconds=5)
                )
                break
            except (Unavailable, AlreadyExists, DeadlineExceeded) as err:
                # an etcd outage or a timed-out write: RegisterInstance with replace is safe to repeat
                slot.message = f"registering instance: {err}"
                await asyncio.sleep(0.5)
            except SutradharError as err:
                if slot.monitor is not None and slot.monitor is not asyncio.current_task():
                    slot.monitor.cancel()  # it would see the replica exit and count it again
                if isinstance(err, NotFound) and \
                        await self.store.get(keys.agent_key(slot.namespace, replica.agent_id)) is None:
                    # not the replica's fault: it cannot run registered until the agent is back
                    self._begin_stop(slot, agent_missing(replica.agent_id, slot.namespace))
                    return False
                await self._runtime_of(slot).stop(replica, grace=self.config.stop_grace)
                await self._on_exit(slot, replica, reason=f"was refused by the registry: {err}")
                return False
        slot.lease_id = stored.lease_id
        slot.ready = True
        slot.ready_since = time.time()
        slot.phase = P.REPLICA_PHASE_RUNNING
        slot.message = ""
        self._event(slot.key, "Ready", f"replica {slot.id} is ready at {replica.endpoint}", slot.id)
        self.queue.add(slot.key)
        return True

    async def _on_exit(self, slot: Slot, replica: Replica, *, reason: str = "") -> None:
        """A replica exited: deregister at once, clean up, back off, let reconcile restart it.
        Once per exit: a replica already handled (or being stopped) is not counted again."""
        if slot.replica is None or slot.phase == P.REPLICA_PHASE_TERMINATING:
            return
        slot.replica = None
        message = reason or replica.message or "exited"
        await self._deregister(slot.namespace, slot.id)
        with contextlib.suppress(Exception):
            await self._runtime_of(slot).stop(replica, grace=timedelta(seconds=1))
        slot.ready = False
        slot.lease_id = 0
        slot.restarts += 1
        slot.phase = P.REPLICA_PHASE_BACK_OFF
        slot.message = message
        delay = self._backoff(slot.restarts)
        slot.back_off_until = time.time() + delay.total_seconds()
        self._event(slot.key, "Crashed",
                    f"replica {slot.id} {message}; restart {slot.restarts} in {delay.total_seconds():g}s", slot.id)
        self.queue.add(slot.key)

    async def _deregister(self, namespace: str, instance_id: str) -> None:
        with contextlib.suppress(NotFound):
            try:
                await self.registry.deregister_instance(
                    instance_id, namespace=namespace, timeout=timedelta(seconds=5)
                )
            except Unavailable:
                # the registry is down: remove the key ourselves so routers stop sending
                await self.store.delete(keys.instance_key(namespace, instance_id))

    async def _keepalive_loop(self) -> None:
        period = max(0.2, self.config.instance_ttl.total_seconds() / 3)
        while True:
            await asyncio.sleep(period)
            if not self.leading:
                continue
            slots = [s for ss in self.slots.values() for s in ss.values() if s.ready and s.lease_id]
            await asyncio.gather(*(self._keepalive(s) for s in slots), return_exceptions=True)

    async def _keepalive(self, slot: Slot) -> None:
        try:
            await self.registry.keep_alive_instance(
                slot.id, slot.lease_id, namespace=slot.namespace, timeout=timedelta(seconds=2)
            )
        except NotFound:
            if slot.ready and slot.replica is not None:
                log.warning("lease of instance %s lapsed; registering again", slot.id)
                slot.ready = False
                if not await self._register(slot):
                    return
        except SutradharError as err:
            log.warning("keep-alive of %s: %s", slot.id, err)

    # -- status ----------------------------------------------------------------------

    def _event(self, key: Key, reason: str, message: str, replica: str = "") -> None:
        ev = P.DeploymentEvent(reason=reason, message=message, replica=replica)
        ev.time.GetCurrentTime()
        self.pending_events.setdefault(key, []).append(ev)
        log.info("%s/%s %s: %s", key[0], key[1], reason, message)

    def _drain_events(self, key: Key, status: scheduler_pb2.DeploymentStatus) -> list[scheduler_pb2.DeploymentEvent]:
        """Move pending events into `status`; returns them (to put back if the write fails)."""
        events = self.pending_events.pop(key, [])
        if events:
            merged = [*status.events, *events][-MAX_EVENTS:]
            del status.events[:]
            status.events.extend(merged)
        return events

    def _finish_status(
        self,
        d: scheduler_pb2.Deployment,
        status: scheduler_pb2.DeploymentStatus,
        conditions: dict[str, tuple[bool, str, str]],
        *,
        revision: str,
        version: str,
        desired: int | None = None,
    ) -> None:
        key = (d.namespace or keys.DEFAULT_NAMESPACE, d.name)
        slots = sorted(self.slots.get(key, {}).values(), key=lambda s: (s.created, s.id))
        want = d.spec.replicas if desired is None else desired
        status.observed_generation = d.generation
        status.desired_replicas = want
        status.replicas = len(slots)
        status.ready_replicas = sum(1 for s in slots if s.ready)
        unavailable = self._unavailable.get(key, set())
        status.available_replicas = sum(1 for s in slots if s.ready and s.id not in unavailable)
        status.updated_replicas = sum(1 for s in slots if s.revision == revision and revision)
        status.current_revision = revision
        status.current_version = version
        del status.replica_statuses[:]
        for s in slots:
            rs = P.ReplicaStatus(
                id=s.id, revision=s.revision, phase=s.phase, restarts=s.restarts, message=s.message,
                version=s.version,
                endpoint=s.replica.endpoint if s.replica else "",
                native_id=s.replica.native_id if s.replica else "",
            )
            rs.start_time.CopyFrom(_ts(s.created))
            if s.waiting and s.back_off_until:
                rs.back_off_until.CopyFrom(_ts(s.back_off_until))
            status.replica_statuses.append(rs)
        failed = [s for s in slots if s.phase == P.REPLICA_PHASE_FAILED]
        looping = [s for s in slots if s.phase == P.REPLICA_PHASE_BACK_OFF
                   and s.restarts >= self.config.crash_loop_restarts]
        if failed:
            first = failed[0]
            conditions.setdefault("FailedToStart", (True, "FailedToStart", f"replica {first.id}: {first.message}"))
        else:
            conditions.setdefault("FailedToStart", (False, "Started", ""))
        if looping:
            s = looping[0]
            wait = max(0.0, s.back_off_until - time.time())
            conditions.setdefault("CrashLoopBackOff", (
                True, "CrashLoopBackOff",
                f"replica {s.id} {s.message} (restarted {s.restarts} times; next restart in {wait:.0f}s)"))
        else:
            conditions.setdefault("CrashLoopBackOff", (False, "NoCrashLoop", ""))
        conditions.setdefault("ReplicaFailure", (False, "NoFailure", ""))
        conditions.setdefault("Paused", (False, "NotPaused", ""))
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
        old = {c.type: c for c in status.conditions}
        del status.conditions[:]
        for ctype in ("Available", "Progressing", "ReplicaFailure", "FailedToStart", "CrashLoopBackOff", "Paused"):
            truth, reason, message = conditions[ctype]
            c = P.DeploymentCondition(
                type=ctype, status=P.CONDITION_STATUS_TRUE if truth else P.CONDITION_STATUS_FALSE,
                reason=reason, message=message,
            )
            prev = old.get(ctype)
            if prev is not None and prev.status == c.status:
                c.last_transition_time.CopyFrom(prev.last_transition_time)
            else:
                c.last_transition_time.GetCurrentTime()
            status.conditions.append(c)

    async def _write_status(
        self,
        key: str,
        mod_revision: int,
        d: scheduler_pb2.Deployment,
        status: scheduler_pb2.DeploymentStatus,
        *,
        force: bool = False,
    ) -> None:
        """Write `status` (with the pending events) guarded by `mod_revision`;
        nothing when unchanged. On a conflict the events stay pending."""
        dkey = (d.namespace or keys.DEFAULT_NAMESPACE, d.name)
        events = self._drain_events(dkey, status)
        if status == d.status and not force:
            return
        d.status.CopyFrom(status)
        d.ClearField("resource_version")
        try:
            await self.store.commit([Guard(key, mod_revision)], [Op(key, keys.encode(d))])
        except (Conflict, NotFound):
            self.pending_events[dkey] = [*events, *self.pending_events.get(dkey, [])]
            raise


def agent_missing(agent_id: str, namespace: str) -> str:
    """The ReplicaFailure/AgentNotFound message (also the reason replicas are stopped)."""
    return (f"agent {agent_id!r} is not registered in namespace {namespace!r}; register it again "
            "(sutradhar deploy -f / agents register) or undeploy")


def instance_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The replica labels an instance carries: valid Kubernetes labels only (a
    container image may add digests longer than a label value may be)."""
    out = {}
    for key, value in labels.items():
        if key == "sutradhar.managed":
            continue
        try:
            validate_label_key(key)
            validate_label_value(value)
        except InvalidArgument:
            continue
        out[key] = value
    return out


async def probe_ready(replica: Replica, probe: ResolvedProbe | None = None, *, wait: float = 0.5) -> bool:
    """Whether a replica serves, by its readiness probe's kind: virtual
    endpoints always; otherwise the port must accept, then "grpc" (the
    default) needs grpc.health.v1 SERVING, "http" a 2xx from GET `http_path`,
    "tcp" (or a disabled probe) nothing more."""
    endpoint = replica.endpoint
    if not endpoint or endpoint == "in-process" or endpoint.startswith(("http://", "https://")):
        return True
    host, _, port = endpoint.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), wait)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    kind = "grpc" if probe is None else probe.kind
    if (probe is not None and probe.disabled) or kind == "tcp":
        return True
    if kind == "http":
        import httpx

        path = probe.http_path if probe is not None else "/health"
        try:
            async with httpx.AsyncClient(timeout=wait) as client:
                response = await client.get(f"http://{endpoint}{path}")
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300
    async with grpc.aio.insecure_channel(endpoint) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=probe.grpc_service if probe else ""), timeout=wait
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
