"""Adoption: a new leader takes over what already runs instead of starting duplicates.

`adopt` reads the runtime replicas (`runtime.list()`), the registered
instances and the replica statuses recorded in each deployment's status, and
tracks them as slots: a running replica gets a monitor (and keeps its
instance's lease), an exited one is handled as a crash, a slot recorded as
waiting for a restart keeps its back-off, and the instance of a replica that
no longer runs is deregistered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sutradhar._errors import SutradharError
from sutradhar.services.common import keys
from sutradhar.services.common.store import Store
from sutradhar.services.scheduler.clock import epoch
from sutradhar.services.scheduler.runtimes.base import LABEL_DEPLOYMENT, ReplicaPhase
from sutradhar.services.scheduler.slots import LABEL_VERSION, Key, Slot
from sutradhar.services.scheduler.supervision import Supervisor, readiness_settings
from sutradhar.v1 import registry_pb2, scheduler_pb2

log = logging.getLogger(__name__)

P = scheduler_pb2
#: How long listing one runtime's replicas may take before adoption goes on without it.
LIST_TIMEOUT = 30.0


async def adopt(store: Store, supervisor: Supervisor, *, current: Callable[[], bool]) -> None:
    """Track what already runs: runtime replicas, their instances, recorded slots.
    Stops early (leaving what it adopted) once `current()` turns false (the term ended)."""
    clock = supervisor.clock
    instances: dict[tuple[str, str], registry_pb2.Instance] = {}
    kvs, _ = await store.list(keys.kind_prefix(keys.INSTANCES))
    for kv in kvs:
        inst = keys.decode(kv.value, registry_pb2.Instance)
        if LABEL_DEPLOYMENT in inst.labels:
            instances[(inst.namespace or keys.DEFAULT_NAMESPACE, inst.id)] = inst
    deployments: dict[Key, scheduler_pb2.Deployment] = {}
    dkvs, _ = await store.list(keys.kind_prefix(keys.DEPLOYMENTS))
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
        akv = await store.get(keys.agent_key(key[0], d.spec.agent_id))
        if akv is not None:
            agents[key] = keys.decode(akv.value, registry_pb2.Agent)
            runtime_names.add(agents[key].runtime)
        runtime_names.update(r.agent.runtime for r in d.status.revisions)
    listed: set[str] = set()
    for runtime in supervisor.runtimes.for_adoption(runtime_names):
        try:
            async with asyncio.timeout(LIST_TIMEOUT):
                replicas = await runtime.list()
        except (SutradharError, TimeoutError) as err:
            log.warning("cannot list %s replicas for adoption: %s", runtime.name, err)
            continue
        listed.add(runtime.name)
        for replica in replicas:
            if not current():
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
                created=replica.started_at.timestamp() if replica.started_at else clock.now(),
                replica=replica,
                restarts=previous.restarts if previous else 0,
            )
            if key in agents:
                slot.probe = readiness_settings(agents[key], replica.endpoint)
            slot.identity = supervisor.replica_identity(slot, replica.agent_id, adopt=True)
            found.add((replica.namespace, replica.replica_id))
            registered = instances.get((replica.namespace, replica.replica_id))
            if registered is not None and registered.endpoint == replica.endpoint:
                slot.lease_id = registered.lease_id
            supervisor.slots.setdefault(key, {})[slot.id] = slot
            supervisor.event(key, "Adopted", f"adopted {runtime.name} replica {slot.id} ({replica.endpoint})", slot.id)
            if replica.phase is ReplicaPhase.RUNNING:
                supervisor.spawn_monitor(slot)
            else:
                await supervisor.on_exit(slot, replica)
    # slots recorded as waiting for a restart keep their back-off
    for key, d in deployments.items():
        for rs in d.status.replica_statuses:
            if (key[0], rs.id) in found or rs.phase not in (P.REPLICA_PHASE_BACK_OFF, P.REPLICA_PHASE_FAILED):
                continue
            supervisor.slots.setdefault(key, {})[rs.id] = Slot(
                id=rs.id, namespace=key[0], deployment=key[1], revision=rs.revision, version=rs.version,
                runtime="", created=epoch(rs.start_time) or clock.now(), phase=rs.phase,
                restarts=rs.restarts, back_off_until=epoch(rs.back_off_until), message=rs.message,
            )
    # instances of replicas that no longer run are deregistered
    for (ns, inst_id), inst in instances.items():
        if (ns, inst_id) not in found and inst.runtime in listed:
            supervisor.spawn(supervisor.registrar.deregister(ns, inst_id))
            supervisor.queue.add((ns, inst.labels[LABEL_DEPLOYMENT]))
