"""The deployment controller: a level-triggered, idempotent reconcile loop.

Watches (deployments, agents, instances, secrets, configmaps) and a periodic resync only enqueue
deployment keys; workers pull keys from a deduplicating `WorkQueue` and call
`reconcile(key)`. `_process` is the one place that maps the outcome to the
next step (error -> back-off retry, `requeue_after` -> timed retry, done ->
forget).

Only the elected leader reconciles. On winning, it adopts what already runs
instead of starting duplicates; on losing, it forgets its in-memory state but
leaves the replicas running for the next leader.

The parts, one job each:

- ``reconciler``    `Reconciler.reconcile`: one deployment's spec onto its slots
- ``supervision``   `Supervisor`: start, readiness, monitor, crash back-off, stop
- ``registration``  `Registrar`: register, deregister, keep leases alive
- ``adoption``      `adopt`: a new leader takes over what runs
- ``status``        counts, replica statuses, events and conditions
- ``slots``         `Slot` and the restart rules (back-off, reset, crash loop)
- ``clock``         the wall and monotonic clocks every part reads (injectable)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from sutradhar._clients import RegistryClient
from sutradhar._errors import Conflict, OutOfRange, SutradharError
from sutradhar._tls import TlsSource
from sutradhar.services.common import keys
from sutradhar.services.common.probing import Probers
from sutradhar.services.common.store import Store
from sutradhar.services.scheduler.adoption import adopt
from sutradhar.services.scheduler.autoscale import AutoscaleState
from sutradhar.services.scheduler.clock import SYSTEM_CLOCK, Clock
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.identities import RENEW_CHECK_PERIOD, ReplicaIdentities
from sutradhar.services.scheduler.reconciler import Reconciler, Result
from sutradhar.services.scheduler.registration import Registrar, instance_labels
from sutradhar.services.scheduler.runtimes.base import LABEL_DEPLOYMENT
from sutradhar.services.scheduler.runtimes.loader import RuntimeSet
from sutradhar.services.scheduler.secret_resolution import SecretResolver
from sutradhar.services.scheduler.slots import LABEL_VERSION, Key, Slot
from sutradhar.services.scheduler.status import EventLog
from sutradhar.services.scheduler.supervision import Supervisor, agent_missing
from sutradhar.services.scheduler.workqueue import WorkQueue
from sutradhar.v1 import registry_pb2, scheduler_pb2

__all__ = [
    "LABEL_VERSION",
    "Controller",
    "Key",
    "Result",
    "Slot",
    "agent_missing",
    "instance_labels",
]

log = logging.getLogger(__name__)

P = scheduler_pb2
#: Between retries of a broken watch.
WATCH_RETRY = timedelta(milliseconds=500)
#: How often replica logs are checked for rotation.
MAINTENANCE_PERIOD = timedelta(seconds=5)


class Controller:
    """Reconciles every deployment while this member leads."""

    def __init__(
        self,
        store: Store,
        registry: RegistryClient,
        runtimes: RuntimeSet,
        config: SchedulerConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        tls: TlsSource | None = None,
        identities: ReplicaIdentities | None = None,
        resolver: SecretResolver | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.runtimes = runtimes
        self.config = config
        self.clock = clock
        self.queue: WorkQueue[Key] = WorkQueue()
        self.events = EventLog()
        self.probers = Probers(user_agent="sutradhar-scheduler", tls=tls)
        self.identities = identities
        self.registrar = Registrar(registry, store, config, clock=clock)
        self.supervisor = Supervisor(
            store, runtimes, self.registrar, config,
            queue=self.queue, events=self.events, spawn=self._spawn, probers=self.probers, clock=clock,
            identities=identities,
        )
        self.reconciler = Reconciler(store, self.supervisor, resolver=resolver)
        self.leading = False
        self.metrics: Any = None
        """The scheduler's SchedulerMetrics (services/common/metrics_scheduler.py) when metrics are on."""
        self._term = 0
        self._tg: asyncio.TaskGroup | None = None
        self._adopted = asyncio.Event()

    @property
    def slots(self) -> dict[Key, dict[str, Slot]]:
        """Deployment key -> slot id -> slot (the supervisor's)."""
        return self.supervisor.slots

    @property
    def autoscale_state(self) -> dict[Key, AutoscaleState]:
        """The autoscaler's memory per deployment (the reconciler's)."""
        return self.reconciler.autoscale_state

    # -- running ----------------------------------------------------------------

    async def run(self) -> None:
        """Watch, resync, keep leases alive and reconcile until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._watch(keys.kind_prefix(keys.DEPLOYMENTS), self._on_deployment_event))
                tg.create_task(self._watch(keys.kind_prefix(keys.AGENTS), self._on_agent_event))
                tg.create_task(self._watch(keys.kind_prefix(keys.INSTANCES), self._on_instance_event))
                for kind in (keys.SECRETS, keys.CONFIGMAPS):  # a changed secret rolls its deployments
                    tg.create_task(self._watch(keys.kind_prefix(kind), self._on_referenced_event))
                tg.create_task(self._resync_loop())
                tg.create_task(self.registrar.keep_alive_loop(self._leased, self.supervisor.lapsed))
                tg.create_task(self._maintenance_loop())
                if self.identities is not None:
                    tg.create_task(self._renewal_loop(self.identities))
                for _ in range(max(1, self.config.workers)):
                    tg.create_task(self._worker())
        finally:
            with contextlib.suppress(Exception):
                await self.probers.close()

    def _leased(self) -> list[Slot]:
        return self.supervisor.ready_slots() if self.leading else []

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
        self.supervisor.forget()
        self.reconciler.forget()

    async def _adopt(self) -> None:
        term = self._term
        await adopt(self.store, self.supervisor, current=lambda: term == self._term)

    async def reconcile(self, key: Key) -> Result:
        """Make what runs for deployment `key` match its spec (idempotent)."""
        if self.metrics is not None:
            return await self.metrics.reconcile(lambda: self.reconciler.reconcile(key))
        return await self.reconciler.reconcile(key)

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
                await self.clock.sleep(WATCH_RETRY.total_seconds())
            except Exception:
                log.exception("watch of %s failed", prefix)
                await self.clock.sleep(WATCH_RETRY.total_seconds())

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

    async def _on_referenced_event(self, ev: object) -> None:
        """A Secret or ConfigMap changed: reconcile the deployments of its namespace (each
        compares the versions of what it references; the unaffected change nothing)."""
        _, ns, _name = keys.parse_key(ev.kv.key)  # type: ignore[attr-defined]
        if not self.leading:
            return
        kvs, _ = await self.store.list(keys.kind_prefix(keys.DEPLOYMENTS, ns))
        for kv in kvs:
            _, _, name = keys.parse_key(kv.key)
            self.queue.add((ns, name))

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
            await self.clock.sleep(self.config.resync_period.total_seconds())
            if self.leading:
                await self.enqueue_all()

    async def _renewal_loop(self, identities: ReplicaIdentities) -> None:
        """Renew replica certificates at 70 % of their life, for as long as their replicas run."""
        while True:
            await self.clock.sleep(RENEW_CHECK_PERIOD.total_seconds())
            identities.renew_due()

    async def _maintenance_loop(self) -> None:
        while True:
            await self.clock.sleep(MAINTENANCE_PERIOD.total_seconds())
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
        started = self.clock.monotonic()
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
        log.debug("reconciled %s/%s in %.3fs", *key, self.clock.monotonic() - started)

    # -- background steps -------------------------------------------------------------

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
