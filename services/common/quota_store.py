"""ResourceQuotas in etcd, and quota admission for the services that write what quotas count.

`QuotaStore` creates, replaces, reads, lists and deletes quotas under
``/sutradhar/v1/resourcequotas/<namespace>/<name>`` (writes guarded by the
key's mod revision, like role bindings) and fills their live usage.

`QuotaAdmission` is how a write that quotas count (the registry's
RegisterAgent/UpdateAgent, the scheduler's create/apply/update/scale and its
autoscaler) is checked without a race. Each namespace has one guard key,
``/sutradhar/v1/quotaguards/<namespace>``:

1. `snapshot(ns)` reads the guard key's mod revision *first*, then the
   namespace's quotas and (only when there are quotas) its agents and
   deployments;
2. the caller checks the change with `quota.admit` on the snapshot's objects;
3. `commit` writes the change with the caller's own guards plus a compare on
   the guard key's revision and, when quotas exist, a put that bumps it.

Two admissions that read the same usage cannot both commit: the first bumps
the guard, so the second's compare fails and it raises `QuotaRace`, which the
caller answers by reading again (the retry sees the first one's usage). A
write that only shrinks usage (delete, scale down) needs no guard. Applying a
quota bumps the guard too, so an admission checked against the old limits
retries against the new ones. A namespace without quotas compares the guard
but does not bump it, so its writes do not contend with each other.
"""

from __future__ import annotations

import builtins
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sutradhar._errors import AlreadyExists, Conflict, NotFound
from sutradhar.services.common import keys, quota
from sutradhar.services.common.objects import CAS_ATTEMPTS, NamespacedObjects
from sutradhar.services.common.store import Guard, KeyValue, Op, Store, prefix_end
from sutradhar.v1 import quota_pb2

__all__ = ["QuotaAdmission", "QuotaRace", "QuotaStore", "Snapshot", "retry_on_race"]

T = TypeVar("T")

Clock = Callable[[], datetime]
"""Returns the current wall-clock time (UTC); injected so tests can pin it."""

class QuotaRace(Conflict):
    """Another quota-checked write (or a quota change) committed in the namespace
    between this admission's read and its write: read again and check again."""


async def retry_on_race(attempt: Callable[[], Awaitable[T]], *, attempts: int = CAS_ATTEMPTS) -> T:
    """Run a quota-checked `attempt` again while it loses a race (`QuotaRace`);
    the last QuotaRace propagates (ABORTED, "retry") when every attempt lost."""
    for _ in range(attempts - 1):
        try:
            return await attempt()
        except QuotaRace:
            continue
    return await attempt()


def _from_kv(kv: KeyValue) -> quota_pb2.ResourceQuota:
    stored = keys.decode(kv.value, quota_pb2.ResourceQuota)
    stored.resource_version = kv.mod_revision
    return stored


def _guard_value(note: str) -> bytes:
    """What the guard key holds: the last admission, for an operator reading etcd."""
    return json.dumps({"last_admission": note}, sort_keys=True).encode()


@dataclass(frozen=True)
class Snapshot:
    """One namespace as a quota admission reads it."""

    namespace: str
    quotas: tuple[quota.Quota, ...]
    """Every quota of the namespace (empty: nothing to check)."""
    objects: quota.Objects
    """Its agents and deployments (empty when there are no quotas: not read)."""
    guard_revision: int
    """The guard key's mod revision when read (0: not written yet)."""

    @property
    def bounded(self) -> bool:
        """Whether any quota applies."""
        return bool(self.quotas)

    def admit(self, after: quota.Objects, *, what: str) -> None:
        """`quota.admit` from this snapshot's objects to `after` (nothing without quotas)."""
        if self.quotas:
            quota.admit(self.quotas, self.objects, after, what=what)


class QuotaAdmission:
    """Reads namespaces for quota checks and commits admitted writes race-free."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def quotas(self, namespace: str) -> tuple[builtins.list[quota.Quota], int]:
        """The quotas of `namespace`, parsed, and the read revision."""
        kvs, revision = await self._store.list(keys.kind_prefix(keys.RESOURCEQUOTAS, namespace))
        return [quota.quota_from_proto(_from_kv(kv)) for kv in kvs], revision

    async def objects(self, namespace: str, *, bounded: Iterable[str] = quota.RESOURCES) -> quota.Objects:
        """What the quotas of `namespace` count: its agents and deployments. Only what
        the `bounded` resources need is read: keys alone for counts, deployment specs for
        replicas, agents' resources too for cpu and memory (values are read as plain JSON,
        not decoded into messages: this runs on every admission)."""
        wanted = set(bounded)
        compute = bool(wanted & set(quota.COMPUTE))
        agents = await self._read(keys.AGENTS, namespace, decode=compute)
        deployments = await self._read(keys.DEPLOYMENTS, namespace, decode=compute or quota.REPLICAS in wanted)
        return quota.Objects(
            agents={name: quota.agent_footprint_json(value) if value is not None else quota.AgentFootprint()
                    for name, value in agents.items()},
            deployments={name: quota.deployment_footprint_json(value) if value is not None
                         else quota.DeploymentFootprint(agent_id="", replicas=0)
                         for name, value in deployments.items()},
        )

    async def _read(self, kind: str, namespace: str, *, decode: bool) -> dict[str, dict[str, object] | None]:
        """Name -> stored JSON (None when only the keys are read) of every `kind` object of a namespace."""
        prefix = keys.kind_prefix(kind, namespace)
        if not decode:
            scan = await self._store.scan(prefix, prefix_end(prefix), keys_only=True)
            return {kv.key[len(prefix):]: None for kv in scan.kvs}
        kvs, _ = await self._store.list(prefix)
        out: dict[str, dict[str, object] | None] = {}
        for kv in kvs:
            try:
                value = json.loads(kv.value)
            except ValueError:  # a value no service wrote: counted, with nothing per replica
                value = {}
            out[kv.key[len(prefix):]] = value if isinstance(value, dict) else {}
        return out

    async def snapshot(self, namespace: str) -> Snapshot:
        """The namespace's guard revision (read first), quotas and, when there are quotas, objects."""
        ns = keys.namespace_or_default(namespace)
        guard = await self._store.get(keys.quota_guard_key(ns))
        found, _ = await self.quotas(ns)
        objects = await self.objects(ns, bounded={r for q in found for r in q.hard}) if found else quota.Objects()
        return Snapshot(ns, tuple(found), objects, guard.mod_revision if guard is not None else 0)

    async def commit(self, snap: Snapshot, guards: Sequence[Guard], ops: Sequence[Op], *, note: str) -> int:
        """`Store.commit(guards, ops)` that also holds only if no quota-checked write
        committed in the namespace since `snap` was read (and, under a quota, bumps
        the guard). QuotaRace when that failed: snapshot again and retry."""
        guard_key = keys.quota_guard_key(snap.namespace)
        all_guards = [*guards, Guard(guard_key, snap.guard_revision)]
        all_ops = [*ops, Op(guard_key, _guard_value(note))] if snap.bounded else list(ops)
        try:
            return await self._store.commit(all_guards, all_ops)
        except (Conflict, AlreadyExists, NotFound):
            current = await self._store.get(guard_key)
            if (current.mod_revision if current is not None else 0) != snap.guard_revision:
                raise QuotaRace(
                    f"another write was admitted in namespace {snap.namespace!r} at the same time; "
                    "its quota usage changed: retry"
                ) from None
            raise


class QuotaStore:
    """ResourceQuotas in etcd (no state of its own; safe across registry replicas): a
    `NamespacedObjects` store whose writes also bump the namespace's admission guard, and
    whose reads fill `status.used` live."""

    def __init__(self, store: Store, *, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._admission = QuotaAdmission(store)
        self._objects: NamespacedObjects[quota_pb2.ResourceQuota] = NamespacedObjects(
            store, kind=keys.RESOURCEQUOTAS, message=quota_pb2.ResourceQuota, what="quota", field="quota",
            validate=quota.validate_quota, output_only=("status",), clock=clock,
            not_found_hint=" (sutradhar quota lists them)")

    async def apply(
        self, wanted: quota_pb2.ResourceQuota, *, created_by: str
    ) -> tuple[quota_pb2.ResourceQuota, bool]:
        """Create a quota or replace its hard limits; (stored with status, created).
        InvalidArgument on bad input; Conflict when `resource_version` is set and stale.
        Bumps the namespace's guard key in the same transaction."""
        namespace = keys.namespace_or_default(wanted.namespace)
        note = f"quota {namespace}/{wanted.name} applied by {created_by}"
        bump = Op(keys.quota_guard_key(namespace), _guard_value(note))
        out, created = await self._objects.apply(wanted, created_by=created_by, also=[bump])
        await self._fill_status([out])
        return out, created

    async def get(self, namespace: str, name: str) -> quota_pb2.ResourceQuota:
        """One quota with its live status; NotFound when missing."""
        stored = await self._objects.get(namespace, name)
        await self._fill_status([stored])
        return stored

    async def list(self, namespace: str) -> tuple[builtins.list[quota_pb2.ResourceQuota], int]:
        """Quotas of `namespace` ("*": all) with their live status, sorted by namespace
        and name, and the read revision."""
        found, revision = await self._objects.list(namespace)
        await self._fill_status(found)
        return found, revision

    async def delete(self, namespace: str, name: str) -> quota_pb2.ResourceQuota:
        """Delete a quota and return it; NotFound when missing."""
        return await self._objects.delete(namespace, name)

    async def _fill_status(self, quotas: Sequence[quota_pb2.ResourceQuota]) -> None:
        """Set each quota's status from its namespace's usage now (one read per namespace)."""
        by_namespace: dict[str, builtins.list[quota_pb2.ResourceQuota]] = defaultdict(builtins.list)
        for q in quotas:
            by_namespace[keys.namespace_or_default(q.namespace)].append(q)
        for namespace, members in by_namespace.items():
            bounded = {r for q in members for r in q.spec.hard}
            used = quota.usage(await self._admission.objects(namespace, bounded=bounded))
            for q in members:
                q.status.CopyFrom(quota.status_of(quota.quota_from_proto(q), used))
