"""RoleBindings in etcd, and the in-memory copy authorization reads on every call.

`RoleBindingStore` creates, replaces, reads, lists and deletes bindings under
``/sutradhar/v1/rolebindings/<namespace>/<name>``; writes are guarded by the key's mod
revision (a stale `resource_version` is `Conflict`, ABORTED). `RoleBindingCache` lists
the prefix, then follows its changes (resuming after a broken watch, listing again
after compaction) and keeps an `rbac.BindingIndex` snapshot that the `Authorizer` looks
bindings up in: no etcd read per call. A server starts `run()` in its TaskGroup and
awaits `wait_ready()` before it answers, so no call is decided on a cache not yet loaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from sutradhar._aio import wait_set
from sutradhar._errors import InvalidArgument, Unavailable
from sutradhar._fields import field_error
from sutradhar._identity import SpiffeId
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar.services.common import keys, rbac
from sutradhar.services.common.follow import follow_prefix
from sutradhar.services.common.objects import NamespacedObjects
from sutradhar.services.common.store import Event, EventType, KeyValue, Store
from sutradhar.v1 import rbac_pb2

__all__ = ["MAX_SUBJECTS", "RoleBindingCache", "RoleBindingStore", "binding_from_proto", "validate_binding"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current wall-clock time (UTC); injected so tests can pin it."""

MAX_SUBJECTS: Final = 256


def _utc_now() -> datetime:
    return datetime.now(UTC)


def validate_binding(binding: rbac_pb2.RoleBinding, *, field: str = "binding") -> None:
    """Check a binding; InvalidArgument naming the field (an unknown role lists the roles)."""
    validate_namespace(binding.namespace, field=f"{field}.namespace")
    validate_dns_label(binding.name, field=f"{field}.name", what="role binding name")
    if not binding.role:
        raise field_error(f"{field}.role", f"role is required (roles: {rbac.role_names()})")
    if binding.role in rbac.IMPLICIT_ONLY_ROLES:
        raise field_error(f"{field}.role", (
            f"role {binding.role!r} is given implicitly to agent identities and cannot be bound "
            f"(roles: {rbac.role_names()})"))
    if binding.role not in rbac.BUILTIN_ROLES:
        raise field_error(f"{field}.role", f"{binding.role!r} is not a role (roles: {rbac.role_names()})")
    if not binding.subjects:
        raise field_error(f"{field}.subjects", (
            "at least one subject is required (a SPIFFE ID, e.g. spiffe://sutradhar.local/ns/team-a/user/ci)"))
    if len(binding.subjects) > MAX_SUBJECTS:
        raise field_error(f"{field}.subjects", f"{len(binding.subjects)} subjects given, at most {MAX_SUBJECTS}")
    seen: set[str] = set()
    for i, subject in enumerate(binding.subjects):
        try:
            parsed = SpiffeId.parse(subject)
        except InvalidArgument as err:
            raise field_error(f"{field}.subjects[{i}]", err.message) from None
        if str(parsed) != subject:
            raise field_error(f"{field}.subjects[{i}]", f"{subject!r} is not in canonical form; write {parsed}")
        if subject in seen:
            raise field_error(f"{field}.subjects[{i}]", f"{subject!r} is listed twice")
        seen.add(subject)


def binding_from_proto(binding: rbac_pb2.RoleBinding) -> rbac.Binding:
    """The authorizer's view of a stored binding."""
    return rbac.Binding(keys.namespace_or_default(binding.namespace), binding.name, binding.role,
                        tuple(binding.subjects))


class RoleBindingStore(NamespacedObjects[rbac_pb2.RoleBinding]):
    """RoleBindings in etcd (no state of its own; safe across registry replicas): `apply` creates
    a binding or replaces its role and subjects, `get`, `list`, `delete` (`objects.NamespacedObjects`)."""

    def __init__(self, store: Store, *, clock: Clock = _utc_now) -> None:
        super().__init__(store, kind=keys.ROLEBINDINGS, message=rbac_pb2.RoleBinding, what="role binding",
                         field="binding", validate=validate_binding, clock=clock)


class RoleBindingCache:
    """Every RoleBinding in memory, kept current by an etcd watch; an `rbac.Bindings`."""

    def __init__(self, store: Store, *, retry: timedelta = timedelta(milliseconds=500)) -> None:
        self._store = store
        self._retry = retry
        self._by_key: dict[str, rbac.Binding] = {}
        self._index = rbac.BindingIndex()
        self._ready = asyncio.Event()

    def index(self) -> rbac.BindingIndex:
        """The current snapshot (empty until loaded: only implicit bindings apply then)."""
        return self._index

    @property
    def ready(self) -> bool:
        """Whether the first listing has been loaded."""
        return self._ready.is_set()

    async def wait_ready(self, within: timedelta = timedelta(seconds=10)) -> None:
        """Wait for the first listing; Unavailable when etcd did not give it `within` that time."""
        if await wait_set(self._ready, within):
            return
        raise Unavailable(
            f"the role bindings could not be loaded from etcd at {self._store.endpoint} within "
            f"{within.total_seconds():g}s; calls cannot be authorized until they are (is etcd running?)"
        )

    async def run(self) -> None:
        """Load, then follow changes forever (cancel to stop)."""
        await follow_prefix(self._store, keys.kind_prefix(keys.ROLEBINDINGS), reset=self._reset, event=self._event,
                            retry=self._retry)

    def _reset(self, kvs: list[KeyValue]) -> None:
        by_key: dict[str, rbac.Binding] = {}
        for kv in kvs:
            binding = self._decode(kv)
            if binding is not None:
                by_key[kv.key] = binding
        self._by_key = by_key
        self._publish()
        self._ready.set()

    def _event(self, event: Event) -> None:
        if event.type is EventType.DELETE:
            if self._by_key.pop(event.kv.key, None) is None:
                return
        else:
            binding = self._decode(event.kv)
            if binding is None:
                self._by_key.pop(event.kv.key, None)
            else:
                self._by_key[event.kv.key] = binding
        self._publish()

    def _publish(self) -> None:
        self._index = rbac.BindingIndex(self._by_key.values())

    @staticmethod
    def _decode(kv: KeyValue) -> rbac.Binding | None:
        try:
            return binding_from_proto(keys.decode(kv.value, rbac_pb2.RoleBinding))
        except Exception as err:  # a value no registry wrote: it grants nothing
            log.warning("ignoring role binding %s: it does not parse (%s)", kv.key, err)
            return None
