"""The health member's domain logic, testable without gRPC.

`HealthManager` watches agents, instances and health members in etcd, probes
the instances this member owns (rendezvous hashing over the live members),
keeps each probe's consecutive counts in memory and writes the instance back
to etcd:

- at once (coalesced) when something routing-relevant changed: the state,
  a probe verdict, a probe outcome flipping between pass and fail, a restart
  request, or this member taking the instance over;
- otherwise at most every `flush_interval` for the probe bookkeeping (counts,
  last probe time and latency), so a thousand healthy instances cost a write
  each per interval, not one per probe.

Every write is a compare-and-swap on the key's mod revision that keeps the
instance's lease: a concurrent change (a drain, a re-registration) makes it
read again and retry, and a key that vanished (its lease lapsed) is simply
no longer probed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sutradhar._aio import wait_set
from sutradhar._backoff import Backoff
from sutradhar._errors import AlreadyExists, Conflict, NotFound, Unavailable
from sutradhar.services.common.follow import follow_prefix
from sutradhar.services.common.membership import Membership, owner
from sutradhar.v1 import health_pb2, registry_pb2

from ..common import keys
from ..common.probing import Probers
from ..common.store import Event, EventType, Guard, KeyValue, Op, Store
from . import events as health_events
from .events import EventBus
from .probes import (
    FAILURE,
    IN_PROCESS_ENDPOINT,
    ProbeName,
    ProbeSettings,
    ProbeTracker,
    derive_state,
    enabled_state,
    first_due,
)
from .report import aggregate
from .schedule import Job, ProbeScheduler

log = logging.getLogger(__name__)

READINESS, LIVENESS = ProbeName.READINESS, ProbeName.LIVENESS
#: Instances whose bookkeeping is flushed in one etcd transaction (etcd
#: allows 128 operations per transaction by default).
FLUSH_BATCH = 64
#: How long the writer waits after a failed write before it retries: 0.5 s,
#: doubling per consecutive failure, capped at 5 s (jittered).
WRITE_RETRY = Backoff(initial=timedelta(milliseconds=500), maximum=timedelta(seconds=5))
#: First-probe spread, in seconds, for instances taken over from another member.
TAKEOVER_JITTER_S = 0.1


@dataclass(frozen=True)
class ManagerOptions:
    """Tuning of one health member."""

    flush_interval: timedelta = timedelta(seconds=10)
    """Longest time probe bookkeeping (counts, times) stays unwritten."""
    probe_concurrency: int = 256
    """Probes in flight at once."""
    write_concurrency: int = 32
    """etcd writes in flight at once."""


@dataclass(eq=False)
class Target:
    """An instance this member probes."""

    key: str
    instance: registry_pb2.Instance
    mod_revision: int
    lease: int
    settings: dict[ProbeName, ProbeSettings]
    trackers: dict[ProbeName, ProbeTracker]
    restart_requested: bool = False
    dirty: bool = False
    flush_at: float = 0.0
    released: bool = False
    jobs: set[str] = field(default_factory=set)
    #: Adopted before this member's view held its agent: not probed until
    #: the agent is read (or seen by the watch), so its own probe spec is used.
    agent_pending: bool = False


def _stored(kv: KeyValue) -> registry_pb2.Instance:
    inst = keys.decode(kv.value, registry_pb2.Instance)
    inst.resource_version = kv.mod_revision
    inst.lease_id = kv.lease
    return inst


def _agent_ref(inst: registry_pb2.Instance) -> tuple[str, str]:
    return keys.namespace_or_default(inst.namespace), inst.agent_id


def _settings(agent: registry_pb2.Agent | None, inst: registry_pb2.Instance) -> dict[ProbeName, ProbeSettings]:
    """Both probes' settings for `inst` of `agent` (None: unknown, the defaults)."""
    return {
        which: ProbeSettings.for_agent(agent, which, runtime=inst.runtime, endpoint=inst.endpoint)
        for which in (READINESS, LIVENESS)
    }


class HealthManager:
    """Probes the instances this member owns and keeps etcd current."""

    def __init__(
        self,
        store: Store,
        membership: Membership,
        *,
        options: ManagerOptions | None = None,
        probers: Probers | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.membership = membership
        self.member_id = membership.member_id
        self.options = options or ManagerOptions()
        self.probers = probers or Probers(member_id=self.member_id)
        self.clock = clock
        self.scheduler = ProbeScheduler(concurrency=self.options.probe_concurrency, clock=clock)
        self.bus = EventBus()
        self.agents: dict[tuple[str, str], registry_pb2.Agent] = {}
        self.instances: dict[str, registry_pb2.Instance] = {}
        self.targets: dict[str, Target] = {}
        self.writes = 0
        self.commits = 0
        self.metrics: Any = None
        """The member's HealthMetrics (services/common/metrics_health.py) when metrics are on."""
        self.synced = asyncio.Event()
        self._agents_ready = asyncio.Event()
        self._urgent: set[str] = set()
        self._wake_writer = asyncio.Event()
        self._write_slots = asyncio.Semaphore(self.options.write_concurrency)
        self._tg: asyncio.TaskGroup | None = None
        membership.on_change = self._reconcile_all

    # -- running ------------------------------------------------------------

    async def run(self) -> None:
        """Watch, probe and write until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.membership.keep_alive())
                tg.create_task(self.membership.watch())
                tg.create_task(follow_prefix(
                    self.store, keys.kind_prefix(keys.AGENTS), reset=self._agents_reset, event=self._agent_event,
                ))
                await self._agents_ready.wait()
                tg.create_task(follow_prefix(
                    self.store, keys.kind_prefix(keys.INSTANCES),
                    reset=self._instances_reset, event=self._instance_event,
                ))
                tg.create_task(self.scheduler.run())
                tg.create_task(self._writer())
        finally:
            self._tg = None

    async def flush(self, within: timedelta = timedelta(seconds=2)) -> None:
        """Write every pending change now (on shutdown, so the next owner
        continues from the latest counts)."""
        pending = [t for t in self.targets.values() if t.dirty or t.key in self._urgent]
        self._urgent.clear()
        chunks = [pending[i:i + FLUSH_BATCH] for i in range(0, len(pending), FLUSH_BATCH)]
        if chunks:
            try:
                async with asyncio.timeout(within.total_seconds()):
                    await asyncio.gather(*(self._flush_bounded(c) for c in chunks))
            except TimeoutError:
                log.warning("gave up flushing %d instances on shutdown", len(pending))

    async def close(self) -> None:
        """Release probe connections."""
        await self.probers.close()

    # -- agents ---------------------------------------------------------------

    def _agents_reset(self, kvs: list[KeyValue]) -> None:
        self.agents = {}
        for kv in kvs:
            agent = keys.decode(kv.value, registry_pb2.Agent)
            self.agents[(keys.namespace_or_default(agent.namespace), agent.id)] = agent
        for target in list(self.targets.values()):
            self._apply_settings(target)
        self._agents_ready.set()

    def _agent_event(self, ev: Event) -> None:
        _, namespace, agent_id = keys.parse_key(ev.kv.key)
        if ev.type is EventType.PUT:
            self.agents[(namespace, agent_id)] = keys.decode(ev.kv.value, registry_pb2.Agent)
        else:
            self.agents.pop((namespace, agent_id), None)
        for target in list(self.targets.values()):
            if _agent_ref(target.instance) == (namespace, agent_id):
                self._apply_settings(target)

    def _settings_for(self, inst: registry_pb2.Instance) -> dict[ProbeName, ProbeSettings]:
        return _settings(self.agents.get(_agent_ref(inst)), inst)

    # -- instances ------------------------------------------------------------

    def _instances_reset(self, kvs: list[KeyValue]) -> None:
        fresh = {kv.key: kv for kv in kvs}
        for key in list(self.instances):
            if key not in fresh:
                old = self.instances.pop(key)
                self.bus.publish(health_events.diff(old, None, 0))
                self._reconcile(key)
        for key, kv in fresh.items():
            self._instance_put(kv, publish=key not in self.instances)
        self.synced.set()

    def _instance_event(self, ev: Event) -> None:
        if ev.type is EventType.PUT:
            self._instance_put(ev.kv)
            return
        old = self.instances.pop(ev.kv.key, None)
        self.bus.publish(health_events.diff(old, None, ev.revision))
        self._reconcile(ev.kv.key)

    def _instance_put(self, kv: KeyValue, *, publish: bool = True) -> None:
        target = self.targets.get(kv.key)
        if target is not None and kv.mod_revision == target.mod_revision and kv.lease == target.lease:
            inst = target.instance  # our own write coming back: no need to parse it
        else:
            inst = _stored(kv)
        old = self.instances.get(kv.key)
        self.instances[kv.key] = inst
        if publish or old is not None:
            self.bus.publish(health_events.diff(old, inst, kv.mod_revision))
        if target is not None and kv.mod_revision > target.mod_revision:
            if kv.lease != target.lease or inst.endpoint != target.instance.endpoint:
                # A new incarnation (registered again): start its record afresh.
                self._release(target)
            else:
                target.instance, target.mod_revision = inst, kv.mod_revision
                target.settings = self._settings_for(inst)
                self._check_state(target)
        self._reconcile(kv.key)

    # -- ownership ------------------------------------------------------------

    def _reconcile_all(self) -> None:
        for key in list(self.instances):
            self._reconcile(key)
        for key in list(self.targets):
            if key not in self.instances:
                self._reconcile(key)

    def _reconcile(self, key: str) -> None:
        inst = self.instances.get(key)
        wanted = inst is not None and inst.endpoint != IN_PROCESS_ENDPOINT and self.membership.owns(key)
        target = self.targets.get(key)
        if wanted and target is None:
            assert inst is not None
            self._adopt(key, inst)
        elif not wanted and target is not None:
            self._release(target)

    def _adopt(self, key: str, inst: registry_pb2.Instance) -> None:
        same_member = inst.health.prober == self.member_id
        target = Target(
            key=key,
            instance=inst,
            mod_revision=inst.resource_version,
            lease=inst.lease_id,
            settings=self._settings_for(inst),
            trackers={
                READINESS: ProbeTracker.from_proto(inst.health.readiness),
                LIVENESS: ProbeTracker.from_proto(inst.health.liveness),
            },
            restart_requested=inst.health.restart_requested,
        )
        self.targets[key] = target
        target.flush_at = self.clock() + self._flush_delay()
        # An instance another member probed until now is taken over: probe it
        # at once (a little jitter only) so a dead member's instances are not
        # left unwatched for another period.
        takeover = bool(inst.health.prober) and not same_member
        if not same_member:
            log.debug("member %s takes %s over", self.member_id, key)
        if _agent_ref(inst) not in self.agents and self._tg is not None:
            # The agents and instances watches are separate streams: an
            # instance can arrive before the definition written ahead of it.
            # Probing it with the defaults meanwhile would probe what its
            # agent disabled, so read the definition first.
            target.agent_pending = True
            self._tg.create_task(self._adopt_when_agent_read(target, takeover=takeover))
            return
        self._start_probing(target, takeover=takeover)

    def _start_probing(self, target: Target, *, takeover: bool = False) -> None:
        for which in (READINESS, LIVENESS):
            if target.settings[which].enabled:
                self._start_job(target, which, takeover=takeover)
        self._check_state(target)

    async def _adopt_when_agent_read(self, target: Target, *, takeover: bool) -> None:
        namespace, agent_id = _agent_ref(target.instance)
        agent: registry_pb2.Agent | None = None
        try:
            kv = await self.store.get(keys.agent_key(namespace, agent_id))
            agent = None if kv is None else keys.decode(kv.value, registry_pb2.Agent)
        except Unavailable as err:
            log.warning("could not read agent %s/%s for %s (%s); probing with the default settings",
                        namespace, agent_id, target.key, err)
        if target.released or not target.agent_pending:
            return  # released meanwhile, or the agents watch delivered the definition first
        target.agent_pending = False
        target.settings = _settings(agent, target.instance)
        self._start_probing(target, takeover=takeover)

    def _release(self, target: Target) -> None:
        target.released = True
        self.targets.pop(target.key, None)
        self._urgent.discard(target.key)
        for job_key in target.jobs:
            self.scheduler.remove(job_key)
        target.jobs.clear()
        endpoint = target.instance.endpoint
        if self._tg is not None and not any(t.instance.endpoint == endpoint for t in self.targets.values()):
            self._tg.create_task(self.probers.forget(endpoint))

    def _apply_settings(self, target: Target) -> None:
        target.agent_pending = False
        target.settings = self._settings_for(target.instance)
        for which in (READINESS, LIVENESS):
            job_key = f"{target.key}#{which.value}"
            enabled = target.settings[which].enabled
            if enabled and job_key not in target.jobs:
                self._start_job(target, which)
            elif not enabled and job_key in target.jobs:
                self.scheduler.remove(job_key)
                target.jobs.discard(job_key)
            elif enabled:
                self.scheduler.reschedule(job_key, target.settings[which].period)
        self._check_state(target)

    def _start_job(self, target: Target, which: ProbeName, *, takeover: bool = False) -> None:
        settings = target.settings[which]
        now = self.clock()
        registered: float | None = None
        if target.instance.HasField("register_time"):
            age = datetime.now(UTC) - target.instance.register_time.ToDatetime(tzinfo=UTC)
            registered = now - max(0.0, age.total_seconds())
        spread = TAKEOVER_JITTER_S if takeover else 1.0
        jitter = random.uniform(0, min(settings.period.total_seconds(), spread))
        due = first_due(settings, registered=registered, now=now, jitter=jitter)
        job_key = f"{target.key}#{which.value}"

        async def run() -> None:
            await self._probe(target, which)

        target.jobs.add(job_key)
        self.scheduler.add(Job(key=job_key, period=settings.period, run=run), due)

    # -- probing ------------------------------------------------------------

    async def _probe(self, target: Target, which: ProbeName) -> None:
        settings = target.settings[which]
        instance = target.instance
        outcome = await self.probers.check(
            instance.endpoint, settings, identity=instance.identity, instance_id=instance.id
        )
        if self.metrics is not None:
            self.metrics.probe(which, outcome.ok, outcome.latency)
        if target.released:
            return
        tracker = target.trackers[which]
        seen = tracker.observe(
            outcome.ok, settings, now=datetime.now(UTC), message=outcome.message,
            latency=timedelta(seconds=outcome.latency),
        )
        urgent = seen.verdict_changed or seen.outcome_changed or target.instance.health.prober != self.member_id
        if which is LIVENESS and tracker.result == FAILURE and not target.restart_requested:
            target.restart_requested = True
            log.warning("liveness of %s failed (%s): restart requested", target.key, tracker.last_message)
            urgent = True
        target.dirty = True
        if urgent:
            self._mark_urgent(target)

    def _check_state(self, target: Target) -> None:
        """Mark for a write when the stored state is not what the rule says."""
        if target.agent_pending:
            return  # its settings are not known yet
        if self._desired_state(target) != target.instance.state:
            self._mark_urgent(target)

    def _desired_state(self, target: Target) -> int:
        return derive_state(
            target.instance.state,
            drained=target.instance.drained,
            readiness=target.trackers[READINESS].result,
            readiness_enabled=target.settings[READINESS].enabled,
        )

    def _mark_urgent(self, target: Target) -> None:
        self._urgent.add(target.key)
        self._wake_writer.set()

    # -- writing ------------------------------------------------------------

    def _flush_delay(self) -> float:
        return self.options.flush_interval.total_seconds() * random.uniform(0.8, 1.2)

    async def _writer(self) -> None:
        tick = min(0.1, self.options.flush_interval.total_seconds() / 4)
        failures = 0
        while True:
            await wait_set(self._wake_writer, tick)
            self._wake_writer.clear()
            now = self.clock()
            urgent = [self.targets[k] for k in self._urgent if k in self.targets]
            self._urgent.clear()
            keys_urgent = {t.key for t in urgent}
            flush = [t for k, t in self.targets.items() if t.dirty and t.flush_at <= now and k not in keys_urgent]
            if not urgent and not flush:
                continue
            # Routing-relevant changes go one by one (lowest latency); probe
            # bookkeeping goes in transactions of up to FLUSH_BATCH instances.
            chunks = [flush[i:i + FLUSH_BATCH] for i in range(0, len(flush), FLUSH_BATCH)]
            results = await asyncio.gather(
                *(self._write_bounded(t) for t in urgent), *(self._flush_bounded(c) for c in chunks)
            )
            errors = [e for r in results for e in ([r] if isinstance(r, str) else r) if e]
            if errors:
                failures += 1
                backoff = WRITE_RETRY.seconds(failures)
                log.warning("could not write the health of %d instances (%s); retrying in %.1fs",
                            len(errors), errors[0], backoff)
                await asyncio.sleep(backoff)
            else:
                failures = 0

    async def _write_bounded(self, target: Target) -> str:
        """Write one target; return "" or why it failed (it is retried)."""
        async with self._write_slots:
            try:
                await self._write(target)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._urgent.add(target.key)
                return f"{type(err).__name__}: {err}"
        return ""

    async def _flush_bounded(self, chunk: list[Target]) -> list[str]:
        """Write a chunk of bookkeeping in one transaction; when one of them
        changed meanwhile, write each on its own. Returns failures."""
        async with self._write_slots:
            try:
                await self._write_many(chunk)
                return []
            except (Conflict, NotFound, AlreadyExists):
                pass
            except asyncio.CancelledError:
                raise
            except Exception as err:
                return [f"{type(err).__name__}: {err}"]  # still dirty: retried at the next tick
        return [e for e in await asyncio.gather(*(self._write_bounded(t) for t in chunk)) if e]

    async def _write_many(self, chunk: list[Target]) -> None:
        live = [t for t in chunk if not t.released]
        if not live:
            return
        built: list[registry_pb2.Instance] = []
        ops: list[Op] = []
        for i, target in enumerate(live):
            if i and i % 8 == 0:
                await asyncio.sleep(0)  # encoding is CPU work: let due probes start in between
            built.append(self._build(target))
            ops.append(Op(target.key, keys.encode(built[-1]), target.lease))
        written_at = self.clock()
        revision = await self.store.commit([Guard(t.key, t.mod_revision) for t in live], ops)
        self.commits += 1
        for target, new in zip(live, built, strict=True):
            self.writes += 1
            new.resource_version = revision
            target.instance, target.mod_revision = new, revision
            target.dirty = False
            target.flush_at = written_at + self._flush_delay()

    def _build(self, target: Target) -> registry_pb2.Instance:
        new = registry_pb2.Instance()
        new.CopyFrom(target.instance)
        new.ClearField("resource_version")
        health = new.health
        health.readiness.CopyFrom(target.trackers[READINESS].to_proto())
        health.liveness.CopyFrom(target.trackers[LIVENESS].to_proto())
        health.restart_requested = target.restart_requested
        health.prober = self.member_id
        new.state = self._desired_state(target)  # type: ignore[assignment]
        return new

    async def _write(self, target: Target) -> None:
        for _ in range(8):
            if target.released:
                return
            new = self._build(target)
            written_at = self.clock()
            try:
                revision = await self.store.commit(
                    [Guard(target.key, target.mod_revision)], [Op(target.key, keys.encode(new), target.lease)]
                )
            except NotFound:
                self._release(target)
                return
            except Conflict:
                kv = await self.store.get(target.key)
                if kv is None:
                    self._release(target)
                    return
                if kv.lease != target.lease:
                    self._release(target)
                    self._reconcile(target.key)
                    return
                target.instance, target.mod_revision = _stored(kv), kv.mod_revision
                continue
            self.writes += 1
            self.commits += 1
            new.resource_version = revision
            target.instance, target.mod_revision = new, revision
            target.dirty = False
            target.flush_at = written_at + self._flush_delay()
            return
        raise Conflict(f"{target.key} kept changing while its health was written")

    # -- API ----------------------------------------------------------------

    async def get_instance(self, namespace: str, instance_id: str) -> registry_pb2.Instance:
        """One stored instance; NotFound when absent."""
        kv = await self.store.get(keys.instance_key(namespace, instance_id))
        if kv is None:
            raise NotFound(f"instance {instance_id!r} not found in namespace "
                           f"{keys.namespace_or_default(namespace)!r}")
        return _stored(kv)

    async def _list_instances(self, namespace: str) -> list[registry_pb2.Instance]:
        kvs, _ = await self.store.list(keys.kind_prefix(keys.INSTANCES, namespace))
        return [_stored(kv) for kv in kvs]

    async def agent_health(self, namespace: str, agent_id: str) -> health_pb2.AgentHealth:
        """Aggregate health of one agent; NotFound when neither it nor an instance exists."""
        namespace = keys.namespace_or_default(namespace)
        instances = [i for i in await self._list_instances(namespace) if i.agent_id == agent_id]
        if not instances and await self.store.get(keys.agent_key(namespace, agent_id)) is None:
            raise NotFound(f"agent {agent_id!r} not found in namespace {namespace!r}")
        return aggregate(namespace, agent_id, instances)

    async def list_agent_health(self, namespace: str, *, include_instances: bool) -> list[health_pb2.AgentHealth]:
        """Aggregate health of every agent in `namespace` ("*": all)."""
        groups: dict[tuple[str, str], list[registry_pb2.Instance]] = {}
        agent_kvs, _ = await self.store.list(keys.kind_prefix(keys.AGENTS, namespace))
        for kv in agent_kvs:
            _, ns, agent_id = keys.parse_key(kv.key)
            groups.setdefault((ns, agent_id), [])
        for inst in await self._list_instances(namespace):
            groups.setdefault(_agent_ref(inst), []).append(inst)
        return [
            aggregate(ns, agent_id, groups[(ns, agent_id)], include_instances=include_instances)
            for ns, agent_id in sorted(groups)
        ]

    async def set_drained(self, namespace: str, instance_id: str, drained: bool) -> registry_pb2.Instance:
        """Drain (state DRAINING) or enable (state from the readiness verdict)
        an instance; idempotent; NotFound when it does not exist."""
        key = keys.instance_key(namespace, instance_id)
        for _ in range(16):
            kv = await self.store.get(key)
            if kv is None:
                raise NotFound(f"instance {instance_id!r} not found in namespace "
                               f"{keys.namespace_or_default(namespace)!r}")
            inst = _stored(kv)
            if drained:
                if inst.drained and inst.state == registry_pb2.INSTANCE_STATE_DRAINING:
                    return inst
                inst.drained = True
                inst.state = registry_pb2.INSTANCE_STATE_DRAINING
            else:
                if not inst.drained and inst.state != registry_pb2.INSTANCE_STATE_DRAINING:
                    return inst
                inst.drained = False
                inst.state = enabled_state(inst.health.readiness.result)  # type: ignore[assignment]
            inst.ClearField("resource_version")
            try:
                revision = await self.store.commit(
                    [Guard(key, kv.mod_revision)], [Op(key, keys.encode(inst), kv.lease)]
                )
            except Conflict:
                continue
            except NotFound:
                continue
            inst.resource_version = revision
            return inst
        raise Conflict(f"instance {instance_id!r} kept changing; try again")

    def current(self, namespace: str, agent_id: str) -> list[health_pb2.HealthEvent]:
        """CURRENT events for every known instance matching the filter."""
        out = []
        for key in sorted(self.instances):
            ev = health_events.current(self.instances[key])
            if health_events.matches(ev, namespace, agent_id):
                out.append(ev)
        return out

    def member_loads(self) -> dict[str, int]:
        """How many instances each live member probes, by this member's view."""
        loads = dict.fromkeys(self.membership.members, 0)
        for key, inst in self.instances.items():
            if inst.endpoint == IN_PROCESS_ENDPOINT:
                continue
            who = owner(self.membership.members, key)
            if who is not None:
                loads[who] += 1
        return loads
