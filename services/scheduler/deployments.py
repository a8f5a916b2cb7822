"""The deployments API as plain async domain code over the store.

Every write is a compare-and-swap on the deployment's mod revision; writes
that change the spec bump `generation`. Writes that can grow what the
namespace uses (create, apply, update, scale) are quota admissions
(`services.common.quota_store`): checked against every ResourceQuota of the
namespace and committed with a compare on its guard key, so two of them that
read the same usage cannot both pass (docs/quotas.md). Deleting sets `delete_time` (like a
Kubernetes finalizer): the leading scheduler stops every replica, deregisters
their instances and then removes the key, so nothing is leaked even when the
scheduler is down at the time of the delete.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from sutradhar._clients import RegistryClient
from sutradhar._errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SutradharError,
)
from sutradhar._names import validate_namespace
from sutradhar.services.common import keys, quota
from sutradhar.services.common.quota_store import QuotaAdmission, QuotaRace, Snapshot, retry_on_race
from sutradhar.services.common.store import EventType, Guard, Op, Store
from sutradhar.services.scheduler.runtimes.base import Replica, Runtime
from sutradhar.services.scheduler.runtimes.loader import RuntimeSet
from sutradhar.services.scheduler.spec import (
    check_deployable,
    check_fixed_port,
    check_resources,
    validate_deployment,
    validate_replicas,
)
from sutradhar.v1 import registry_pb2, scheduler_pb2

P = scheduler_pb2
_RETRIES = 20


def _spec_only(d: scheduler_pb2.Deployment) -> scheduler_pb2.Deployment:
    out = P.Deployment(name=d.name, namespace=d.namespace or keys.DEFAULT_NAMESPACE)
    out.spec.CopyFrom(d.spec)
    return out


def _refuse_if_deleting(d: scheduler_pb2.Deployment) -> None:
    if d.HasField("delete_time"):
        raise FailedPrecondition(
            f"deployment {d.name!r} is being deleted; wait until it is gone, then deploy it again"
        )


def _refuse_if_autoscaled(d: scheduler_pb2.Deployment) -> None:
    if d.spec.HasField("autoscale"):
        a = d.spec.autoscale
        raise FailedPrecondition(
            f"deployment {d.name!r} is autoscaled between {a.min_replicas or 1} and {a.max_replicas} replicas "
            "(spec.autoscale), so the autoscaler owns its replica count and would undo a manual scale; "
            "change spec.autoscale.min_replicas / max_replicas, or remove spec.autoscale to scale it by hand"
        )


def _set_spec_field(
    name: str, value: object, *checks: Callable[[scheduler_pb2.Deployment], None]
) -> Callable[[scheduler_pb2.Deployment], bool]:
    """A change that sets one spec field (a new generation unless it already had
    that value), after `checks` (which raise to refuse it)."""

    def change(d: scheduler_pb2.Deployment) -> bool:
        for check in checks:
            check(d)
        if getattr(d.spec, name) == value:
            return False
        setattr(d.spec, name, value)
        d.generation += 1
        return True

    return change


def _what(name: str, verb: str, before: quota.DeploymentFootprint | None, after: quota.DeploymentFootprint) -> str:
    """How a quota message names a change: 'deployment "web" scaled (6 -> 10 replicas)'."""
    if before is None:
        return f'deployment "{name}" {verb} with {after.replicas} replica{"" if after.replicas == 1 else "s"}'
    if before.replicas != after.replicas:
        return f'deployment "{name}" {verb} ({before.replicas} -> {after.replicas} replicas)'
    return f'deployment "{name}" {verb}'


def _admit(snap: Snapshot, d: scheduler_pb2.Deployment, verb: str) -> str:
    """Check deployment `d` (as it will be written) against the snapshot's quotas;
    returns how the admission is noted on the guard key."""
    after = quota.deployment_footprint(d)
    what = _what(d.name, verb, snap.objects.deployments.get(d.name), after)
    snap.admit(snap.objects.with_deployment(d.name, after), what=what)
    return what


class Deployments:
    """Create, read, change and delete deployments; undo rollouts; read logs."""

    def __init__(self, store: Store, registry: RegistryClient, runtimes: RuntimeSet) -> None:
        self.store = store
        self.registry = registry
        self.runtimes = runtimes
        self.quotas = QuotaAdmission(store)

    # -- reads ----------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> scheduler_pb2.Deployment:
        """One deployment; NotFound when missing."""
        validate_namespace(namespace)
        ns = namespace or keys.DEFAULT_NAMESPACE
        kv = await self.store.get(keys.deployment_key(ns, name))
        if kv is None:
            raise NotFound(f"deployment {name!r} not found in namespace {ns!r}")
        d = keys.decode(kv.value, P.Deployment)
        d.resource_version = kv.mod_revision
        return d

    async def list(self, namespace: str) -> tuple[list[scheduler_pb2.Deployment], int]:
        """Deployments of a namespace ("*": all), sorted, and the read revision."""
        validate_namespace(namespace, allow_all=True)
        kvs, revision = await self.store.list(keys.kind_prefix(keys.DEPLOYMENTS, namespace or keys.DEFAULT_NAMESPACE))
        out = []
        for kv in kvs:
            d = keys.decode(kv.value, P.Deployment)
            d.resource_version = kv.mod_revision
            out.append(d)
        return out, revision

    async def watch(
        self, namespace: str, name: str = "", *, include_initial: bool = False
    ) -> AsyncIterator[scheduler_pb2.WatchDeploymentsResponse]:
        """Changes to deployments, optionally after the current ones."""
        validate_namespace(namespace, allow_all=True)
        prefix = keys.kind_prefix(keys.DEPLOYMENTS, namespace or keys.DEFAULT_NAMESPACE)
        current, revision = await self.list(namespace)
        if include_initial:
            for d in current:
                if not name or d.name == name:
                    yield P.WatchDeploymentsResponse(type=P.DEPLOYMENT_EVENT_TYPE_PUT, deployment=d, revision=revision)
        async for ev in self.store.watch(prefix, start_revision=revision + 1):
            kv = ev.prev if ev.type is EventType.DELETE and ev.prev is not None else ev.kv
            if not kv.value:
                continue
            d = keys.decode(kv.value, P.Deployment)
            d.resource_version = ev.kv.mod_revision
            if name and d.name != name:
                continue
            kind = P.DEPLOYMENT_EVENT_TYPE_DELETE if ev.type is EventType.DELETE else P.DEPLOYMENT_EVENT_TYPE_PUT
            yield P.WatchDeploymentsResponse(type=kind, deployment=d, revision=ev.revision)

    # -- writes ---------------------------------------------------------------

    async def _check_agent(self, d: scheduler_pb2.Deployment) -> None:
        """The agent exists and can run this deployment."""
        agent = await self._agent(d)
        check_deployable(agent)
        check_fixed_port(agent, d.spec)
        check_resources(agent, d.spec)
        self.runtimes.get(agent.runtime)  # unknown runtime -> InvalidArgument

    async def _agent(self, d: scheduler_pb2.Deployment) -> registry_pb2.Agent:
        ns = d.namespace or keys.DEFAULT_NAMESPACE
        kv = await self.store.get(keys.agent_key(ns, d.spec.agent_id))
        if kv is None:
            raise NotFound(
                f"agent {d.spec.agent_id!r} not found in namespace {ns!r}; register it first "
                "(a manifest's kind: Agent document, or `sutradhar agents register`)"
            )
        return keys.decode(kv.value, registry_pb2.Agent)

    async def create(self, deployment: scheduler_pb2.Deployment) -> scheduler_pb2.Deployment:
        """Store a new deployment (ALREADY_EXISTS when the name is taken)."""
        validate_deployment(deployment)
        await self._check_agent(deployment)
        d = _spec_only(deployment)
        d.generation = 1
        d.create_time.GetCurrentTime()
        d.update_time.CopyFrom(d.create_time)
        key = keys.deployment_key(d.namespace, d.name)

        async def attempt() -> int:
            snap = await self.quotas.snapshot(d.namespace)
            note = _admit(snap, d, "created")
            return await self.quotas.commit(snap, [Guard(key, 0)], [Op(key, keys.encode(d))], note=note)

        try:
            revision = await retry_on_race(attempt)
        except AlreadyExists:
            raise AlreadyExists(f"deployment {d.name!r} exists already in namespace {d.namespace!r}") from None
        d.resource_version = revision
        return d

    async def _mutate(
        self,
        namespace: str,
        name: str,
        change: Callable[[scheduler_pb2.Deployment], bool],
        *,
        resource_version: int = 0,
        admit: str = "",
    ) -> scheduler_pb2.Deployment:
        """Read, change (return False for "no change"), write guarded; retry on races.
        With `admit` (the change's verb, e.g. "scaled"), the write is a quota admission."""
        for _ in range(_RETRIES):
            snap = await self.quotas.snapshot(namespace) if admit else None
            d = await self.get(namespace, name)
            if resource_version and d.resource_version != resource_version:
                raise Conflict(
                    f"deployment {name!r} changed since it was read (resource_version {resource_version}, "
                    f"now {d.resource_version}); read it again and retry"
                )
            current = d.resource_version
            if not change(d):
                return d
            d.update_time.GetCurrentTime()
            d.ClearField("resource_version")
            key = keys.deployment_key(d.namespace, d.name)
            try:
                if snap is None:
                    d.resource_version = await self.store.commit([Guard(key, current)], [Op(key, keys.encode(d))])
                else:
                    note = _admit(snap, d, admit)
                    d.resource_version = await self.quotas.commit(
                        snap, [Guard(key, current)], [Op(key, keys.encode(d))], note=note)
                return d
            except QuotaRace:
                continue
            except Conflict:
                if resource_version:
                    raise
                continue
            except NotFound:
                raise NotFound(f"deployment {name!r} not found in namespace {namespace or 'default'!r}") from None
        raise Conflict(f"deployment {name!r} kept changing; retry")

    def _set_spec(self, new: scheduler_pb2.DeploymentSpec) -> Callable[[scheduler_pb2.Deployment], bool]:
        def change(d: scheduler_pb2.Deployment) -> bool:
            _refuse_if_deleting(d)
            if d.spec == new:
                return False
            d.spec.CopyFrom(new)
            d.generation += 1
            return True

        return change

    async def update(self, deployment: scheduler_pb2.Deployment) -> scheduler_pb2.Deployment:
        """Replace a deployment's spec."""
        validate_deployment(deployment)
        await self._check_agent(deployment)
        return await self._mutate(
            deployment.namespace, deployment.name, self._set_spec(deployment.spec),
            resource_version=deployment.resource_version, admit="updated",
        )

    async def apply(self, deployment: scheduler_pb2.Deployment) -> tuple[scheduler_pb2.Deployment, bool]:
        """Create or replace the spec; returns (deployment, created)."""
        validate_deployment(deployment)
        await self._check_agent(deployment)
        for _ in range(_RETRIES):
            try:
                return await self.create(deployment), True
            except AlreadyExists:
                pass
            try:
                return await self._mutate(deployment.namespace, deployment.name, self._set_spec(deployment.spec),
                                          admit="applied"), False
            except NotFound:
                continue
        raise Conflict(f"deployment {deployment.name!r} kept changing; retry")

    async def scale(self, namespace: str, name: str, replicas: int) -> scheduler_pb2.Deployment:
        """Set the replica count (0 to 1000). Refused (FAILED_PRECONDITION) while the
        deployment is being deleted or autoscaled, and for more than one replica of
        an agent with a fixed port; RESOURCE_EXHAUSTED past a quota."""
        validate_replicas(replicas, field="replicas")
        current = await self.get(namespace, name)
        _refuse_if_deleting(current)
        _refuse_if_autoscaled(current)
        with contextlib.suppress(NotFound):  # a missing agent is the controller's condition, not the scale's
            scaled = scheduler_pb2.DeploymentSpec()
            scaled.CopyFrom(current.spec)
            scaled.replicas = replicas
            check_fixed_port(await self._agent(current), scaled)
        return await self._mutate(
            namespace, name, _set_spec_field("replicas", replicas, _refuse_if_deleting, _refuse_if_autoscaled),
            admit="scaled",
        )

    async def set_paused(self, namespace: str, name: str, paused: bool) -> scheduler_pb2.Deployment:
        """Pause or resume the rollout."""
        return await self._mutate(namespace, name, _set_spec_field("paused", paused, _refuse_if_deleting))

    async def delete(
        self, namespace: str, name: str, *, wait: bool = False, wait_for: timedelta = timedelta(seconds=60)
    ) -> scheduler_pb2.Deployment:
        """Mark for deletion; the leader stops every replica and removes it.
        With `wait`, return once the deployment is gone."""

        def change(d: scheduler_pb2.Deployment) -> bool:
            if d.HasField("delete_time"):
                return False
            d.delete_time.GetCurrentTime()
            return True

        d = await self._mutate(namespace, name, change)
        if wait:
            key = keys.deployment_key(d.namespace, d.name)
            deadline = asyncio.get_running_loop().time() + wait_for.total_seconds()
            while await self.store.get(key) is not None:
                if asyncio.get_running_loop().time() > deadline:
                    raise SutradharError(
                        f"deployment {name!r} is still stopping after {wait_for.total_seconds():g}s; "
                        "is a scheduler leader running?"
                    )
                await asyncio.sleep(0.1)
        return d

    async def undo(
        self, namespace: str, name: str, to_revision: str = ""
    ) -> tuple[scheduler_pb2.Deployment, registry_pb2.Agent]:
        """Write an earlier revision's agent definition back through the registry."""
        d = await self.get(namespace, name)
        history = list(d.status.revisions)
        current = d.status.current_revision
        if to_revision:
            matches = [r for r in history if r.revision.startswith(to_revision)]
            if not matches:
                known = ", ".join(f"{r.revision} ({r.version})" for r in history) or "none"
                raise InvalidArgument(
                    f"to_revision: {to_revision!r} is not in the history of {name!r} (known: {known})",
                    field="to_revision",
                )
            target = matches[-1]
        else:
            older = [r for r in history if r.revision != current]
            if not older:
                raise InvalidArgument(f"deployment {name!r} has no earlier revision to roll back to",
                                      field="to_revision")
            target = older[-1]
        agent = registry_pb2.Agent()
        agent.CopyFrom(target.agent)
        agent.resource_version = 0
        # deployment-level resources were merged into the snapshot; the stored agent keeps its own
        stored = await self.registry.get_agent(agent.id, namespace=d.namespace)
        agent.resources.CopyFrom(stored.resources)
        agent.routing.CopyFrom(stored.routing)
        agent.probes.CopyFrom(stored.probes)
        agent.description = stored.description
        updated = await self.registry.update_agent(agent)
        return await self.get(namespace, name), updated

    # -- logs -----------------------------------------------------------------

    async def replicas(
        self, namespace: str, name: str, replica: str = ""
    ) -> builtins.list[tuple[Replica, Runtime]]:
        """Runtime replicas of a deployment (with their runtime), for logs."""
        ns = namespace or keys.DEFAULT_NAMESPACE
        out: builtins.list[tuple[Replica, Runtime]] = []
        for runtime in self.runtimes.loaded():
            try:
                found = await runtime.list(ns)
            except SutradharError:
                continue
            for r in found:
                if r.deployment == name and (not replica or r.replica_id == replica):
                    out.append((r, runtime))
        return out
