"""Agent definitions: create, replace, read, list and delete them in etcd."""

from __future__ import annotations

import builtins
import contextlib
import logging
from dataclasses import dataclass, field

from sutradhar import _names as names
from sutradhar import _semver as semver
from sutradhar._errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, SutradharError
from sutradhar._labels import parse_selector
from sutradhar.services.common import keys, quota
from sutradhar.services.common.quota_store import QuotaAdmission, retry_on_race
from sutradhar.services.common.store import Guard, KeyValue, Op, Store
from sutradhar.services.registry._common import (
    Clock,
    agent_from_kv,
    describe,
    instance_from_kv,
    retry_on_conflict,
    timestamp,
    utc_now,
)
from sutradhar.services.registry.agent_validation import validate_agent
from sutradhar.services.scheduler.runtimes.config_schemas import RUNTIMES
from sutradhar.v1 import registry_pb2

log = logging.getLogger(__name__)

_OUTPUT_ONLY = ("create_time", "update_time", "resource_version")


@dataclass(frozen=True)
class AgentFilter:
    """Filters of ListAgents; every set filter must match."""

    namespace: str = ""
    """Namespace; empty means "default", "*" means all."""
    type: str = ""
    """Agent type."""
    capabilities: tuple[str, ...] = ()
    """Capabilities the agent must all have."""
    label_selector: str = ""
    """Kubernetes label selector over the agent's labels."""
    version_range: str = ""
    """npm-style semver range the agent's version must satisfy."""
    runtime: str = ""
    """Runtime."""

    @classmethod
    def from_request(cls, req: registry_pb2.ListAgentsRequest) -> AgentFilter:
        """The filter a ListAgentsRequest asks for."""
        return cls(
            namespace=req.namespace,
            type=req.type,
            capabilities=tuple(req.capabilities),
            label_selector=req.label_selector,
            version_range=req.version_range,
            runtime=req.runtime,
        )


@dataclass
class AgentList:
    """A list result with the revision it was read at (watch from revision + 1)."""

    agents: list[registry_pb2.Agent] = field(default_factory=list)
    revision: int = 0


def _describe(namespace: str, name: str) -> str:
    return describe("agent", namespace, name)


def _normalized(agent: registry_pb2.Agent) -> registry_pb2.Agent:
    out = registry_pb2.Agent()
    out.CopyFrom(agent)
    out.namespace = keys.namespace_or_default(agent.namespace)
    for name in _OUTPUT_ONLY:
        out.ClearField(name)  # type: ignore[arg-type]
    return out


class Agents:
    """Agent definitions in etcd (state lives in etcd only; safe across replicas).

    With `quotas`, every write is a quota admission (docs/quotas.md): creating an
    agent counts against a quota's `agents`, and changing an agent's resources
    changes the cpu and memory of the deployments that run it with its defaults.
    """

    def __init__(self, store: Store, *, clock: Clock = utc_now, quotas: QuotaAdmission | None = None) -> None:
        self._store = store
        self._clock = clock
        self._quotas = quotas

    async def _commit(self, agent: registry_pb2.Agent, guard: Guard, op: Op, *, what: str) -> int:
        """Write one agent, admitted against its namespace's quotas when they are checked."""
        if self._quotas is None:
            return await self._store.commit([guard], [op])
        snap = await self._quotas.snapshot(agent.namespace)
        snap.admit(snap.objects.with_agent(agent.id, quota.agent_footprint(agent)), what=what)
        return await self._quotas.commit(snap, [guard], [op], note=what)

    async def register(self, agent: registry_pb2.Agent) -> registry_pb2.Agent:
        """Create an agent. InvalidArgument on bad input, AlreadyExists when the id is taken,
        ResourceExhausted past a quota's `agents`."""
        validate_agent(agent)
        stored = _normalized(agent)
        now = timestamp(self._clock())
        stored.create_time.CopyFrom(now)
        stored.update_time.CopyFrom(now)
        key = keys.agent_key(stored.namespace, stored.id)
        what = f"{_describe(stored.namespace, stored.id)} registered"

        async def attempt() -> int:
            return await self._commit(stored, Guard(key, 0), Op(key, keys.encode(stored)), what=what)

        try:
            rev = await retry_on_race(attempt)
        except AlreadyExists:
            raise AlreadyExists(
                f"{_describe(stored.namespace, stored.id)} exists already; use UpdateAgent to change it",
                field="agent.id",
            ) from None
        stored.resource_version = rev
        return stored

    async def update(self, agent: registry_pb2.Agent, *, allow_missing: bool = False) -> registry_pb2.Agent:
        """Replace an agent. NotFound when missing (unless `allow_missing`);
        Conflict (ABORTED) when `agent.resource_version` is set and stale."""
        validate_agent(agent)
        expected = agent.resource_version
        stored = _normalized(agent)
        key = keys.agent_key(stored.namespace, stored.id)

        async def attempt() -> registry_pb2.Agent:
            current = await self._store.get(key)
            now = timestamp(self._clock())
            out = registry_pb2.Agent()
            out.CopyFrom(stored)
            if current is None:
                if not allow_missing:
                    raise NotFound(
                        f"{_describe(stored.namespace, stored.id)} not found; register it first "
                        "(or set allow_missing)",
                        field="agent.id",
                    )
                if expected:
                    raise Conflict(
                        f"{_describe(stored.namespace, stored.id)} no longer exists "
                        f"(resource_version {expected} is stale)",
                        field="agent.resource_version",
                    )
                out.create_time.CopyFrom(now)
                guard = Guard(key, 0)
            else:
                if expected and expected != current.mod_revision:
                    raise Conflict(
                        f"{_describe(stored.namespace, stored.id)} changed since resource_version {expected} "
                        f"(now {current.mod_revision}); read it again and retry",
                        field="agent.resource_version",
                    )
                out.create_time.CopyFrom(agent_from_kv(current).create_time)
                guard = Guard(key, current.mod_revision)
            out.update_time.CopyFrom(now)
            what = f"{_describe(stored.namespace, stored.id)} {'registered' if current is None else 'updated'}"
            try:
                rev = await self._commit(out, guard, Op(key, keys.encode(out)), what=what)
            except (AlreadyExists, NotFound) as err:
                raise Conflict(f"{_describe(stored.namespace, stored.id)} changed concurrently: {err}") from err
            out.resource_version = rev
            return out

        if expected:
            return await retry_on_race(attempt)
        return await retry_on_conflict(attempt)

    async def get(self, namespace: str, agent_id: str) -> registry_pb2.Agent:
        """One agent; NotFound when missing."""
        return agent_from_kv(await self.get_kv(namespace, agent_id))

    async def get_kv(self, namespace: str, agent_id: str, *, field: str = "id") -> KeyValue:
        """One agent's raw key-value; NotFound when missing."""
        names.validate_namespace(namespace)
        names.validate_dns_label(agent_id, field=field, what="agent id")
        kv = await self._store.get(keys.agent_key(namespace, agent_id))
        if kv is None:
            raise NotFound(f"{_describe(namespace, agent_id)} not found", field=field)
        return kv

    async def list(self, flt: AgentFilter) -> AgentList:
        """Agents matching every filter, sorted by namespace and id."""
        names.validate_namespace(flt.namespace, allow_all=True)
        selector = parse_selector(flt.label_selector, field="label_selector")
        version_range = semver.parse_range(flt.version_range) if flt.version_range.strip() else None
        if flt.runtime and flt.runtime not in RUNTIMES:
            raise InvalidArgument(
                f'runtime: "{flt.runtime}" is not a runtime (valid: {", ".join(RUNTIMES)})',
                field="runtime",
            )
        kvs, revision = await self._store.list(keys.kind_prefix(keys.AGENTS, flt.namespace))
        wanted_caps = set(flt.capabilities)
        out: list[registry_pb2.Agent] = []
        for kv in kvs:
            agent = agent_from_kv(kv)
            if flt.type and agent.type != flt.type:
                continue
            if flt.runtime and agent.runtime != flt.runtime:
                continue
            if wanted_caps and not wanted_caps.issubset(agent.capabilities):
                continue
            if not selector.matches(agent.labels):
                continue
            if version_range is not None and not semver.matches(agent.version, flt.version_range):
                continue
            out.append(agent)
        out.sort(key=lambda a: (a.namespace, a.id))
        return AgentList(out, revision)

    async def deregister(self, namespace: str, agent_id: str, *, force: bool = False) -> registry_pb2.Agent:
        """Delete an agent. FailedPrecondition while it has live instances,
        unless `force`: then its instances go too and their leases are revoked."""
        namespace = keys.namespace_or_default(namespace)
        revoked: builtins.list[int] = []

        async def attempt() -> registry_pb2.Agent:
            kv = await self.get_kv(namespace, agent_id)
            instances = await self._instances_of(namespace, agent_id)
            if instances and not force:
                names = ", ".join(keys.parse_key(i.key)[2] for i in instances[:5])
                more = f" and {len(instances) - 5} more" if len(instances) > 5 else ""
                raise FailedPrecondition(
                    f"{_describe(namespace, agent_id)} has {len(instances)} live instance(s) ({names}{more}); "
                    "stop them first or deregister with force to delete them too"
                )
            guards = [Guard(kv.key, kv.mod_revision)] + [Guard(i.key, i.mod_revision) for i in instances]
            ops = [Op(kv.key)] + [Op(i.key) for i in instances]
            try:
                await self._store.commit(guards, ops)
            except (NotFound, AlreadyExists) as err:
                raise Conflict(f"{_describe(namespace, agent_id)} changed concurrently: {err}") from err
            revoked[:] = [i.lease for i in instances if i.lease]
            return agent_from_kv(kv)

        agent = await retry_on_conflict(attempt)
        # Instances registered while the delete ran would be orphans: remove them too.
        late = await self._instances_of(namespace, agent_id)
        for kv in late:
            with contextlib.suppress(SutradharError):
                await self._store.delete(kv.key)
            revoked.append(kv.lease)
        for lease in {lease for lease in revoked if lease}:
            try:
                await self._store.revoke_lease(lease)
            except SutradharError as err:  # the keys are gone already; the lease lapses by itself
                log.warning("could not revoke lease %x of a deleted instance: %s", lease, err)
        return agent

    async def _instances_of(self, namespace: str, agent_id: str) -> builtins.list[KeyValue]:
        kvs, _ = await self._store.list(keys.kind_prefix(keys.INSTANCES, namespace))
        return [kv for kv in kvs if instance_from_kv(kv).agent_id == agent_id]
