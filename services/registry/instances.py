"""Live instances: registered under etcd leases, kept alive, drained, deleted.

An instance's key is written under its own lease, so an instance whose
replica stops calling KeepAliveInstance disappears by itself when the lease
TTL runs out (and watchers see a DELETE carrying its last value).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from google.protobuf import duration_pb2

from sutradhar import _names as names
from sutradhar._errors import AlreadyExists, Conflict, NotFound, SutradharError
from sutradhar._labels import parse_selector
from sutradhar._values import to_duration
from sutradhar.services.common import keys, validation
from sutradhar.services.common.store import Guard, KeyValue, Op, Store
from sutradhar.services.registry._common import (
    Clock,
    describe,
    instance_from_kv,
    retry_on_conflict,
    timestamp,
    utc_now,
)
from sutradhar.services.registry.instance_identity import validate_instance_identity
from sutradhar.v1 import registry_pb2

log = logging.getLogger(__name__)

_OUTPUT_ONLY = ("lease_id", "lease_ttl", "register_time", "health", "resource_version", "runtime")


@dataclass(frozen=True)
class InstanceFilter:
    """Filters of ListInstances; every set filter must match."""

    namespace: str = ""
    """Namespace; empty means "default", "*" means all."""
    agent_id: str = ""
    """Agent id."""
    state: int = registry_pb2.INSTANCE_STATE_UNSPECIFIED
    """Only instances in this state (UNSPECIFIED: any)."""
    label_selector: str = ""
    """Kubernetes label selector over instance labels."""

    @classmethod
    def from_request(cls, req: registry_pb2.ListInstancesRequest) -> InstanceFilter:
        """The filter a ListInstancesRequest asks for."""
        return cls(
            namespace=req.namespace, agent_id=req.agent_id, state=req.state, label_selector=req.label_selector
        )


@dataclass
class InstanceList:
    """A list result with the revision it was read at."""

    instances: list[registry_pb2.Instance] = field(default_factory=list)
    revision: int = 0


def _describe(namespace: str, name: str) -> str:
    return describe("instance", namespace, name)


class Instances:
    """Live instances in etcd, each under its own lease."""

    def __init__(self, store: Store, *, clock: Clock = utc_now, trust_domain: str | None = None) -> None:
        self._store = store
        self._clock = clock
        self._trust_domain = trust_domain

    async def register(
        self,
        instance: registry_pb2.Instance,
        *,
        ttl: duration_pb2.Duration | None = None,
        replace: bool = False,
    ) -> registry_pb2.Instance:
        """Record a live instance under a new lease of `ttl` (default 10s, 2s-300s).

        NotFound when the agent does not exist; AlreadyExists when the id is
        taken and `replace` is false; InvalidArgument when `instance.identity` is not an
        agent identity of this instance (`instance_identity`). The key is written under the lease in
        one transaction guarded on the agent, so a failed call leaves nothing.
        """
        validation.validate_instance(instance)
        validate_instance_identity(instance, trust_domain=self._trust_domain)
        lease_ttl = validation.resolve_ttl(ttl)
        namespace = keys.namespace_or_default(instance.namespace)
        agent_key = keys.agent_key(namespace, instance.agent_id)
        base = registry_pb2.Instance()
        base.CopyFrom(instance)
        for name in _OUTPUT_ONLY:
            base.ClearField(name)  # type: ignore[arg-type]
        base.namespace = namespace
        if not base.id:
            base.id = f"{instance.agent_id}-{secrets.token_hex(4)}"
        if base.state == registry_pb2.INSTANCE_STATE_UNSPECIFIED:
            base.state = registry_pb2.INSTANCE_STATE_SERVING
        key = keys.instance_key(namespace, base.id)
        lease = 0
        replaced_lease = 0

        async def attempt() -> registry_pb2.Instance:
            nonlocal lease, replaced_lease
            agent_kv = await self._store.get(agent_key)
            if agent_kv is None:
                raise NotFound(
                    f'agent "{instance.agent_id}" not found in namespace "{namespace}"; register the agent first',
                    field="instance.agent_id",
                )
            agent = keys.decode(agent_kv.value, registry_pb2.Agent)
            existing = await self._store.get(key)
            if existing is not None and not replace:
                raise AlreadyExists(
                    f"{_describe(namespace, base.id)} exists already; deregister it or register with replace",
                    field="instance.id",
                )
            if lease == 0:
                lease = await self._store.grant_lease(lease_ttl)
            out = registry_pb2.Instance()
            out.CopyFrom(base)
            out.runtime = agent.runtime
            out.version = out.version or agent.version
            out.lease_id = lease
            out.lease_ttl.CopyFrom(to_duration(lease_ttl))
            out.register_time.CopyFrom(timestamp(self._clock()))
            guards = [Guard(agent_key, agent_kv.mod_revision), Guard(key, existing.mod_revision if existing else 0)]
            try:
                rev = await self._store.commit(guards, [Op(key, keys.encode(out), lease)])
            except (AlreadyExists, NotFound) as err:
                raise Conflict(f"{_describe(namespace, base.id)}: concurrent change ({err})") from err
            replaced_lease = existing.lease if existing is not None and existing.lease != lease else 0
            out.resource_version = rev
            return out

        try:
            stored = await retry_on_conflict(attempt)
        except BaseException:
            if lease:
                await self._revoke_quietly(lease)
            raise
        if replaced_lease:
            await self._revoke_quietly(replaced_lease)
        return stored

    async def keep_alive(self, namespace: str, instance_id: str, lease_id: int = 0) -> timedelta:
        """Renew an instance's lease; return the TTL. NotFound when the
        instance or its lease is gone: the replica must register again."""
        kv = await self._get_kv(namespace, instance_id)
        if lease_id and kv.lease != lease_id:
            raise NotFound(
                f"{_describe(namespace, instance_id)} is held by lease {kv.lease:x}, not {lease_id:x} "
                "(it was registered again); register again",
                field="lease_id",
            )
        try:
            return await self._store.keep_alive(kv.lease)
        except NotFound:
            raise NotFound(
                f"the lease of {_describe(namespace, instance_id)} has lapsed; register the instance again",
                field="lease_id",
            ) from None

    async def update_state(self, namespace: str, instance_id: str, state: int) -> registry_pb2.Instance:
        """Set an instance's routable state, keeping its lease (compare-and-swap, retried)."""
        validation.validate_state(state)

        async def attempt() -> registry_pb2.Instance:
            kv = await self._get_kv(namespace, instance_id)
            instance = instance_from_kv(kv)
            instance.state = state  # type: ignore[assignment]
            instance.ClearField("resource_version")
            try:
                rev = await self._store.commit(
                    [Guard(kv.key, kv.mod_revision)], [Op(kv.key, keys.encode(instance), kv.lease)]
                )
            except NotFound:
                raise NotFound(f"{_describe(namespace, instance_id)} not found (its lease lapsed?)") from None
            instance.resource_version = rev
            return instance

        return await retry_on_conflict(attempt)

    async def get(self, namespace: str, instance_id: str) -> registry_pb2.Instance:
        """One instance; NotFound when missing."""
        return instance_from_kv(await self._get_kv(namespace, instance_id))

    async def list(self, flt: InstanceFilter) -> InstanceList:
        """Instances matching every filter, sorted by namespace and id."""
        names.validate_namespace(flt.namespace, allow_all=True)
        if flt.agent_id:
            names.validate_dns_label(flt.agent_id, field="agent_id", what="agent id")
        if flt.state not in registry_pb2.InstanceState.values():
            validation.validate_state(flt.state)
        selector = parse_selector(flt.label_selector, field="label_selector")
        kvs, revision = await self._store.list(keys.kind_prefix(keys.INSTANCES, flt.namespace))
        out: list[registry_pb2.Instance] = []
        for kv in kvs:
            instance = instance_from_kv(kv)
            if flt.agent_id and instance.agent_id != flt.agent_id:
                continue
            if flt.state and instance.state != flt.state:
                continue
            if not selector.matches(instance.labels):
                continue
            out.append(instance)
        out.sort(key=lambda i: (i.namespace, i.id))
        return InstanceList(out, revision)

    async def deregister(self, namespace: str, instance_id: str) -> registry_pb2.Instance:
        """Delete an instance and revoke its lease; NotFound when missing."""
        kv = await self._get_kv(namespace, instance_id)
        await self._store.delete(kv.key)
        if kv.lease:
            await self._revoke_quietly(kv.lease)
        return instance_from_kv(kv)

    async def _get_kv(self, namespace: str, instance_id: str) -> KeyValue:
        names.validate_namespace(namespace)
        names.validate_instance_id(instance_id, field="id")
        kv = await self._store.get(keys.instance_key(namespace, instance_id))
        if kv is None:
            raise NotFound(
                f"{_describe(namespace, instance_id)} not found (never registered, deregistered, or its lease "
                "lapsed); register it again",
                field="id",
            )
        return kv

    async def _revoke_quietly(self, lease: int) -> None:
        try:
            await self._store.revoke_lease(lease)
        except SutradharError as err:  # the lease lapses by itself after its TTL
            log.warning("could not revoke lease %x: %s", lease, err)
