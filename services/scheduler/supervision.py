"""Replica supervision: starting, watching, restarting and stopping the replicas of slots.

Each started replica has a monitor task: it waits for readiness (the agent's
readiness probe, judged by the shared prober exactly as the health service
judges it), registers the instance through the registry, then watches the
process; on exit it deregisters at once and puts the slot in back-off
(`slots.crashed`), and the next reconcile restarts it. A replica not ready
within ``readiness_timeout`` is stopped and counted as a crash; one ready for
``backoff_reset`` has its crash count reset.

`Supervisor` owns the slots (deployment key -> slot id -> `Slot`); every
time it reads comes from its `Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sutradhar._errors import InvalidArgument, NotFound, SutradharError
from sutradhar._identity import SpiffeId
from sutradhar._labels import METRICS_PORT_LABEL
from sutradhar.services.common import keys
from sutradhar.services.common.probing import (
    IN_PROCESS_ENDPOINT,
    ProbeName,
    ProbeOutcome,
    Probers,
    ProbeSettings,
    split_host_port,
)
from sutradhar.services.common.secret_refs import Resolution
from sutradhar.services.common.store import Store
from sutradhar.services.scheduler.clock import SYSTEM_CLOCK, Clock
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.identities import ReplicaIdentities, ReplicaTls
from sutradhar.services.scheduler.registration import Registrar
from sutradhar.services.scheduler.replica_files import ReplicaFiles
from sutradhar.services.scheduler.runtimes.base import (
    LABEL_DEPLOYMENT,
    LABEL_REPLICA,
    LABEL_REVISION,
    Replica,
    ReplicaPhase,
    ReplicaSpec,
    Runtime,
)
from sutradhar.services.scheduler.runtimes.container_config import CONTAINER_USER
from sutradhar.services.scheduler.runtimes.loader import RuntimeSet
from sutradhar.services.scheduler.slots import LABEL_VERSION, Key, Slot, crashed, reset_if_stable, restart_backoff
from sutradhar.services.scheduler.spec import fixed_port, serves_metrics
from sutradhar.services.scheduler.status import EventLog
from sutradhar.services.scheduler.workqueue import WorkQueue
from sutradhar.v1 import registry_pb2, scheduler_pb2

log = logging.getLogger(__name__)

P = scheduler_pb2
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]
"""Runs a background coroutine in the controller's task group."""

#: Runtimes whose replicas are SDK agents the scheduler starts, so it issues each a certificate.
CERTIFIED_RUNTIMES = frozenset({"process", "container"})
#: How the scheduler checks that a replica serves the /metrics it was given a port for.
METRICS_CHECK = ProbeSettings(kind="http", http_path="/metrics", timeout=timedelta(seconds=1))
#: Between readiness probes of a starting replica (at most; the monitor period if shorter).
READINESS_RETRY = timedelta(milliseconds=50)


def agent_missing(agent_id: str, namespace: str) -> str:
    """The ReplicaFailure/AgentNotFound message (also the reason replicas are stopped)."""
    return (f"agent {agent_id!r} is not registered in namespace {namespace!r}; register it again "
            "(sutradhar deploy -f / agents register) or undeploy")


def readiness_settings(agent: registry_pb2.Agent, endpoint: str) -> ProbeSettings:
    """The readiness probe of a replica of `agent` at `endpoint`: the health
    service's settings (`ProbeSettings.for_agent`)."""
    return ProbeSettings.for_agent(agent, ProbeName.READINESS, runtime=agent.runtime, endpoint=endpoint)


async def probe_ready(
    probers: Probers, replica: Replica, settings: ProbeSettings | None = None, *, identity: str = ""
) -> ProbeOutcome:
    """Whether a replica serves, by its readiness probe: an in-process (or
    endpoint-less) replica always; otherwise the probe's kind ("grpc" needs
    grpc.health.v1 SERVING, "http" a 2xx from GET `http_path` of the endpoint,
    URL endpoints included, "tcp" an open port); a disabled probe needs the
    port to accept. The port is tried first (as the scheduler always did), so
    a replica still binding costs a connect, not a probe."""
    endpoint = replica.endpoint
    if not endpoint or endpoint == IN_PROCESS_ENDPOINT:
        return ProbeOutcome(True, "")
    if settings is None:
        settings = ProbeSettings.resolve(None, runtime=replica.runtime, endpoint=endpoint)
    port = replace(settings, kind="tcp", enabled=True)
    if not settings.enabled or settings.kind == "tcp":
        return await probers.check(endpoint, port)
    # the port first: while it refuses, a TCP connect says so sooner and more cheaply than a probe
    opened = await probers.check(endpoint, port)
    if not opened.ok:
        return opened
    return await probers.check(endpoint, settings, identity=identity, instance_id=replica.replica_id)


def replica_files_owner(runtime: str) -> tuple[int, int] | None:
    """Who must own a replica's certificate files: a container replica of a root scheduler runs
    as the agent image's unprivileged user (`CONTAINER_USER`), which must read its key; any
    other replica runs as this process's user, which owns them already."""
    if runtime == "container" and os.geteuid() == 0:
        return CONTAINER_USER
    return None


class Supervisor:
    """Starts, monitors, restarts and stops replicas; owns the slots."""

    def __init__(
        self,
        store: Store,
        runtimes: RuntimeSet,
        registrar: Registrar,
        config: SchedulerConfig,
        *,
        queue: WorkQueue[Key],
        events: EventLog,
        spawn: Spawn,
        probers: Probers,
        clock: Clock = SYSTEM_CLOCK,
        rand: Callable[[], float] = random.random,
        identities: ReplicaIdentities | None = None,
    ) -> None:
        self.store = store
        self.runtimes = runtimes
        self.registrar = registrar
        self.config = config
        self.queue = queue
        self.events = events
        self.spawn = spawn
        self.probers = probers
        self.clock = clock
        self.rand = rand
        self.identities = identities
        """Issues every replica its certificate; None: an insecure scheduler (replicas run insecure)."""
        self.backoff = restart_backoff(config)
        self.slots: dict[Key, dict[str, Slot]] = {}
        self.files = ReplicaFiles(config.state_dir / "files")
        """The replicas' Secret and ConfigMap files (written at start, removed after)."""

    def event(self, key: Key, reason: str, message: str, replica: str = "") -> None:
        """Record an event of deployment `key` now."""
        self.events.record(key, reason, message, replica, now=self.clock.now())

    def ready_slots(self) -> list[Slot]:
        """Every slot whose replica is registered (ready, with a lease)."""
        return [s for ss in self.slots.values() for s in ss.values() if s.ready and s.lease_id]

    def replica_identity(self, slot: Slot, agent_id: str, *, adopt: bool = False) -> str:
        """The identity of `slot`'s replica ("" for runtimes without certificates or without TLS):
        a new certificate before it starts, or (`adopt`) its files kept renewed."""
        runtime = slot.runtime or (slot.replica.runtime if slot.replica else "")
        if self.identities is None or runtime not in CERTIFIED_RUNTIMES:
            return ""
        make = self.identities.adopt if adopt else self.identities.issue
        return str(make(slot.namespace, agent_id, slot.id, owner=replica_files_owner(runtime)).identity)

    def replica_tls(self, slot: Slot) -> ReplicaTls | None:
        """The certificate directory of `slot`'s replica, once `replica_identity` issued it."""
        if self.identities is None or not slot.identity:
            return None
        return ReplicaTls(SpiffeId.parse(slot.identity), self.identities.directory(slot.namespace, slot.id))

    def forget(self) -> None:
        """Stop every monitor and drop every slot (the replicas keep running)."""
        if self.identities is not None:
            self.identities.keep_only(())
        for slots in self.slots.values():
            for slot in slots.values():
                if slot.monitor is not None:
                    slot.monitor.cancel()
        self.slots.clear()

    def runtime_of(self, slot: Slot) -> Runtime:
        """The runtime that runs (or ran) `slot`'s replica."""
        return self.runtimes.get(slot.runtime or (slot.replica.runtime if slot.replica else "process"))

    # -- starting ---------------------------------------------------------------

    async def start(
        self, slot: Slot, agent: registry_pb2.Agent, d: scheduler_pb2.Deployment, *, restart: bool,
        resolution: Resolution | None = None,
    ) -> None:
        """Start `slot`'s replica of `agent` (FAILED with a back-off when the runtime refuses), with
        the values and files its Secret/ConfigMap references resolved to (`resolution`): values in
        its environment, never on its command line; files in its private directory."""
        runtime = self.runtimes.get(agent.runtime)
        slot.runtime = runtime.name
        labels = {
            **d.spec.labels,
            LABEL_DEPLOYMENT: slot.deployment,
            LABEL_REVISION: slot.revision,
            LABEL_REPLICA: slot.id,
            LABEL_VERSION: agent.version,
        }
        try:
            slot.identity = self.replica_identity(slot, agent.id)
            env = dict(d.spec.env)
            written = None
            if resolution is not None:
                env.update(resolution.env)
                written = self.files.write(slot.namespace, slot.id, resolution,
                                           owner=replica_files_owner(runtime.name))
            spec = ReplicaSpec(
                namespace=slot.namespace, deployment=slot.deployment, replica_id=slot.id,
                revision=slot.revision, agent=agent, env=env, labels=labels,
                tls=self.replica_tls(slot), insecure=self.identities is None,
                access_review=self.config.registry if self.identities is not None else "",
                files_dir=written.directory if written is not None else None,
                mounts=written.mounts if written is not None else (),
                metrics=serves_metrics(agent, replica_metrics=self.config.replica_metrics),
            )
            replica = await runtime.start(spec)
        except (SutradharError, OSError) as err:
            self.files.remove(slot.namespace, slot.id)
            if isinstance(err, OSError):
                err = SutradharError(f"writing the replica's secret files failed: {err.strerror}")
            err = self.explain_port_in_use(slot, agent, err)
            slot.restarts += 1 if restart or slot.phase == P.REPLICA_PHASE_FAILED else 0
            slot.phase = P.REPLICA_PHASE_FAILED
            slot.message = str(err)
            slot.back_off_until = self.clock.now() + self.backoff.seconds(slot.restarts, self.rand)
            self.event(slot.key, "FailedToStart", f"replica {slot.id}: {err}", slot.id)
            return
        slot.replica = replica
        slot.version = agent.version
        slot.probe = readiness_settings(agent, replica.endpoint)
        slot.phase = P.REPLICA_PHASE_STARTING
        slot.ready = False
        slot.back_off_until = 0.0
        slot.created = slot.created or self.clock.now()
        verb = "Restarted" if restart else "Started"
        self.event(slot.key, verb, f"{verb.lower()} replica {slot.id} ({replica.endpoint}, revision {slot.revision})",
                   slot.id)
        self.spawn_monitor(slot)

    def explain_port_in_use(self, slot: Slot, agent: registry_pb2.Agent, err: SutradharError) -> SutradharError:
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

    # -- stopping ---------------------------------------------------------------

    def begin_stop(self, slot: Slot, reason: str) -> None:
        """Start stopping `slot` in the background (once)."""
        if slot.phase == P.REPLICA_PHASE_TERMINATING:
            return
        slot.phase = P.REPLICA_PHASE_TERMINATING
        if slot.monitor is not None and slot.monitor is not asyncio.current_task():
            slot.monitor.cancel()
        self.spawn(self.stop_slot(slot, reason))

    async def stop_slot(self, slot: Slot, reason: str) -> None:
        """Drain, stop, deregister: routers stop picking the instance (DRAINING)
        while its connections stay open for calls in flight; after `drain_delay`
        the replica gets SIGTERM (the SDK finishes in-flight tasks), and the
        instance is deregistered once the process is gone."""
        was_ready = slot.ready
        slot.ready = False
        try:
            if was_ready:
                await self.registrar.drain(slot)
                if self.config.drain_delay:
                    await self.clock.sleep(self.config.drain_delay.total_seconds())
            if slot.replica is not None:
                await self.runtime_of(slot).stop(slot.replica, grace=self.config.stop_grace)
            await self.registrar.deregister(slot.namespace, slot.id)
            slot.lease_id = 0
            self.event(slot.key, "Stopped", f"stopped replica {slot.id}: {reason}", slot.id)
        except Exception:
            log.exception("stopping %s failed", slot.id)
        finally:
            key, slot_id = slot.key, slot.id
            slots = self.slots.get(key, {})
            if slots.get(slot_id) is slot:
                del slots[slot_id]
                self.files.remove(key[0], slot_id)
                if self.identities is not None:
                    self.identities.remove(key[0], slot_id)
            self.queue.add(key)

    async def stop_all(self, key: Key, reason: str) -> None:
        """Stop every slot of `key`, and any replica the runtimes still find for it."""
        ns, name = key
        for slot in list(self.slots.get(key, {}).values()):
            if slot.replica is None:
                self.slots[key].pop(slot.id, None)
            else:
                self.begin_stop(slot, reason)
        for runtime in self.runtimes.loaded():
            try:
                found = await runtime.list(ns)
            except SutradharError:
                continue
            for replica in found:
                if replica.deployment == name and replica.replica_id not in self.slots.get(key, {}):
                    await self.registrar.deregister(ns, replica.replica_id)
                    await runtime.stop(replica, grace=self.config.stop_grace)
                    self.files.remove(ns, replica.replica_id)
                    if self.identities is not None:
                        self.identities.remove(ns, replica.replica_id)
        if key in self.slots and not self.slots[key]:
            del self.slots[key]

    # -- crashes and restarts -----------------------------------------------------

    async def on_exit(self, slot: Slot, replica: Replica, *, reason: str = "") -> None:
        """A replica exited: deregister at once, clean up, back off, let reconcile restart it.
        Once per exit: a replica already handled (or being stopped) is not counted again."""
        if slot.replica is None or slot.phase == P.REPLICA_PHASE_TERMINATING:
            return
        slot.replica = None
        message = reason or replica.message or "exited"
        await self.registrar.deregister(slot.namespace, slot.id)
        with contextlib.suppress(Exception):
            await self.runtime_of(slot).stop(replica, grace=timedelta(seconds=1))
        self.files.remove(slot.namespace, slot.id)  # a restart writes them afresh
        slot.ready = False
        slot.lease_id = 0
        delay = crashed(slot, message, now=self.clock.now(), backoff=self.backoff, rand=self.rand)
        self.event(slot.key, "Crashed",
                   f"replica {slot.id} {message}; restart {slot.restarts} in {delay.total_seconds():g}s", slot.id)
        self.queue.add(slot.key)

    async def restart_for_liveness(self, slot: Slot) -> None:
        """The health service asked for a restart (liveness failed): counted and
        backed off like a crash (as Kubernetes does), so a probe that always fails
        ends in CrashLoopBackOff, not in a restart every few hundred milliseconds."""
        if slot.monitor is not None:
            slot.monitor.cancel()
        await self.registrar.deregister(slot.namespace, slot.id)
        slot.ready = False
        slot.lease_id = 0
        if slot.replica is not None:
            await self.runtime_of(slot).stop(slot.replica, grace=self.config.stop_grace)
        self.files.remove(slot.namespace, slot.id)
        slot.replica = None
        delay = crashed(slot, "restarted after a liveness failure", now=self.clock.now(), backoff=self.backoff,
                        rand=self.rand)
        self.event(slot.key, "Restarted", f"liveness failed: restarting replica {slot.id} "
                   f"(restart {slot.restarts} in {delay.total_seconds():g}s)", slot.id)

    # -- registration -----------------------------------------------------------

    async def register(self, slot: Slot) -> bool:
        """Register the ready replica's instance; False (and the replica stopped) when
        the registry refuses it for good."""
        assert slot.replica is not None
        replica = slot.replica
        try:
            stored = await self.registrar.register(slot, await self.metrics_labels(replica))
        except SutradharError as err:
            if slot.monitor is not None and slot.monitor is not asyncio.current_task():
                slot.monitor.cancel()  # it would see the replica exit and count it again
            if isinstance(err, NotFound) and \
                    await self.store.get(keys.agent_key(slot.namespace, replica.agent_id)) is None:
                # not the replica's fault: it cannot run registered until the agent is back
                self.begin_stop(slot, agent_missing(replica.agent_id, slot.namespace))
                return False
            await self.runtime_of(slot).stop(replica, grace=self.config.stop_grace)
            await self.on_exit(slot, replica, reason=f"was refused by the registry: {err}")
            return False
        slot.lease_id = stored.lease_id
        slot.ready = True
        slot.ready_since = self.clock.now()
        slot.phase = P.REPLICA_PHASE_RUNNING
        slot.message = ""
        self.event(slot.key, "Ready", f"replica {slot.id} is ready at {replica.endpoint}", slot.id)
        self.queue.add(slot.key)
        return True

    async def metrics_labels(self, replica: Replica) -> dict[str, str]:
        """The instance label that makes the replica a scrape target (`METRICS_PORT_LABEL`), when it was
        given a metrics port and GET /metrics answers there; none when the agent serves no metrics (a
        non-SDK agent, or an SDK agent without prometheus-client), so discovery lists live endpoints only."""
        if not replica.metrics_endpoint:
            return {}
        outcome = await self.probers.check(replica.metrics_endpoint, METRICS_CHECK)
        if not outcome.ok:
            log.info("replica %s serves no /metrics on %s (%s): it is not a scrape target",
                     replica.replica_id, replica.metrics_endpoint, outcome.message)
            return {}
        return {METRICS_PORT_LABEL: str(split_host_port(replica.metrics_endpoint)[1])}

    # -- monitors ---------------------------------------------------------------

    def spawn_monitor(self, slot: Slot) -> None:
        """(Re)start the monitor task of `slot`."""
        if slot.monitor is not None:
            slot.monitor.cancel()
        slot.monitor = self.spawn(self.monitor(slot))

    async def monitor(self, slot: Slot) -> None:
        """Watch `slot`'s replica until it exits (a failure is logged and the deployment requeued)."""
        try:
            await self._monitor(slot)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monitor of %s failed", slot.id)
            self.queue.add(slot.key)

    async def _monitor(self, slot: Slot) -> None:
        assert slot.replica is not None
        runtime = self.runtime_of(slot)
        period = self.config.monitor_period.total_seconds()
        replica: Replica | None = slot.replica
        if not slot.ready:
            replica = await self._await_ready(slot, runtime)
            if replica is None or not await self.register(slot):
                return
        while True:
            await self.clock.sleep(period)
            assert replica is not None  # _await_ready's None returned above
            replica = await runtime.inspect(replica)
            if replica.phase in (ReplicaPhase.EXITED, ReplicaPhase.FAILED):
                await self.on_exit(slot, replica)
                return
            reset_if_stable(slot, self.clock.now(), self.config.backoff_reset)

    async def _await_ready(self, slot: Slot, runtime: Runtime) -> Replica | None:
        """Probe a starting replica until it is ready (the replica as last
        inspected), exits or misses the readiness timeout (None: stopped and
        counted as a crash)."""
        assert slot.replica is not None
        replica = slot.replica
        retry = min(self.config.monitor_period, READINESS_RETRY).total_seconds()
        deadline = self.clock.monotonic() + self.config.readiness_timeout.total_seconds()
        try:
            while True:
                replica = await runtime.inspect(replica)
                if replica.phase in (ReplicaPhase.EXITED, ReplicaPhase.FAILED):
                    await self.on_exit(slot, replica)
                    return None
                outcome = await probe_ready(self.probers, replica, slot.probe, identity=slot.identity)
                if outcome.ok:
                    return replica
                if self.clock.monotonic() > deadline:
                    await runtime.stop(replica, grace=self.config.stop_grace)
                    await self.on_exit(slot, replica, reason=(
                        f"not ready within {self.config.readiness_timeout.total_seconds():g}s "
                        f"({_probe_kind(slot.probe)} readiness probe of {replica.endpoint}: "
                        f"{outcome.message or 'failed'})"))
                    return None
                await self.clock.sleep(retry)
        finally:
            if replica.endpoint:
                await self.probers.forget(replica.endpoint)

    async def lapsed(self, slot: Slot) -> None:
        """The lease of a running replica's instance lapsed: register it again."""
        await self.register(slot)


def _probe_kind(settings: ProbeSettings | None) -> str:
    if settings is None:
        return "grpc"
    return settings.kind if settings.enabled else "tcp"
