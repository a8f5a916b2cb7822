"""Namespaced API objects in etcd: create-or-replace, get, list and delete, writes guarded.

`NamespacedObjects` is the store behind the registry's simple object kinds (RoleBindings,
RateLimits): messages with ``namespace``, ``name``, ``resource_version``, ``created_by`` and
``create_time`` fields, kept under ``/sutradhar/v1/<kind>/<namespace>/<name>`` as canonical
JSON. `apply` compares the key's mod revision in the transaction that writes it: a stale
`resource_version` is `Conflict` (ABORTED; read again and retry); without one, a lost race
is tried again (up to `CAS_ATTEMPTS`). Output-only fields a caller sends are ignored;
`create_time` is kept across replacements. Validation of the spec is the caller's
`validate` (InvalidArgument naming the field); no state of its own, so it is safe across
registry replicas.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar, cast

from google.protobuf.message import Message

from sutradhar._errors import AlreadyExists, Conflict, NotFound
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar.services.common import keys
from sutradhar.services.common.store import Guard, KeyValue, Op, Store

__all__ = ["CAS_ATTEMPTS", "NamespacedObjects"]

M = TypeVar("M", bound=Message)

#: How often a write is tried again when a concurrent writer wins (no resource_version given).
CAS_ATTEMPTS: Final = 8
_OUTPUT_ONLY: Final = ("resource_version", "created_by", "create_time")


class NamespacedObjects(Generic[M]):
    """Objects of one `kind` (a `keys` kind constant) of type `message` in etcd.

    `what` names the kind in messages ("role binding"); `field` is the request field that
    holds an object ("binding"), for error fields such as ``binding.resource_version``;
    `validate` checks an object before it is written; `not_found_hint` ends a NotFound
    message (e.g. the command that lists them); `output_only` names the kind's further
    output-only fields, cleared from what a caller sends (e.g. a computed ``status``). A
    kind with an ``update_time`` field gets it set on every write."""

    def __init__(self, store: Store, *, kind: str, message: type[M], what: str, field: str,
                 validate: Callable[[M], None], not_found_hint: str = "", output_only: Sequence[str] = (),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._output_only = (*_OUTPUT_ONLY, *output_only)
        self._has_update_time = "update_time" in message.DESCRIPTOR.fields_by_name
        self._kind = kind
        self._message = message
        self._what = what
        self._field = field
        self._validate = validate
        self._hint = not_found_hint
        self._clock = clock

    def describe(self, namespace: str, name: str) -> str:
        """ 'role binding "ci" in namespace "team-a"'."""
        return f'{self._what} "{name}" in namespace "{keys.namespace_or_default(namespace)}"'

    def from_kv(self, kv: KeyValue) -> M:
        """A stored object with its resource_version."""
        out: Any = keys.decode(kv.value, self._message)
        out.resource_version = kv.mod_revision
        return cast(M, out)

    async def apply(self, obj: M, *, created_by: str, also: Sequence[Op] = ()) -> tuple[M, bool]:
        """Create `obj` or replace it; (stored, created). InvalidArgument on bad input; Conflict
        when its `resource_version` is set and stale. `also` are further writes made in the
        same transaction (e.g. the quota admission guard)."""
        self._validate(obj)
        given: Any = obj  # the fields every namespaced object has (see the module docstring)
        expected: int = given.resource_version
        namespace = keys.namespace_or_default(given.namespace)
        name: str = given.name
        key = keys.object_key(self._kind, namespace, name)
        stale = f"{self._field}.resource_version"
        for attempt in range(CAS_ATTEMPTS):
            current = await self._store.get(key)
            out: Any = self._message()
            out.CopyFrom(obj)
            for output_only in self._output_only:
                out.ClearField(output_only)
            out.namespace, out.created_by = namespace, created_by
            now = self._clock()
            if self._has_update_time:
                out.update_time.FromDatetime(now)
            if current is None:
                if expected:
                    raise Conflict(f"{self.describe(namespace, name)} no longer exists "
                                   f"(resource_version {expected} is stale)", field=stale)
                out.create_time.FromDatetime(now)
                guard = Guard(key, 0)
            else:
                if expected and expected != current.mod_revision:
                    raise Conflict(f"{self.describe(namespace, name)} changed since resource_version {expected} "
                                   f"(now {current.mod_revision}); read it again and retry", field=stale)
                stored: Any = self.from_kv(current)
                out.create_time.CopyFrom(stored.create_time)
                guard = Guard(key, current.mod_revision)
            try:
                out.resource_version = await self._store.commit([guard], [Op(key, keys.encode(out)), *also])
            except (AlreadyExists, NotFound, Conflict) as err:
                if expected or attempt == CAS_ATTEMPTS - 1:
                    raise Conflict(f"{self.describe(namespace, name)} changed concurrently: {err}") from err
                continue
            return cast(M, out), current is None
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, namespace: str, name: str) -> M:
        """One object; NotFound when missing."""
        validate_namespace(namespace)
        validate_dns_label(name, field="name", what=f"{self._what} name")
        kv = await self._store.get(keys.object_key(self._kind, namespace, name))
        if kv is None:
            raise NotFound(f"{self.describe(namespace, name)} not found{self._hint}", field="name")
        return self.from_kv(kv)

    async def list(self, namespace: str) -> tuple[builtins.list[M], int]:
        """Objects of `namespace` ("*": all), sorted by namespace and name, and the read revision."""
        validate_namespace(namespace, allow_all=True)
        kvs, revision = await self._store.list(keys.kind_prefix(self._kind, namespace))
        found: builtins.list[Any] = sorted((self.from_kv(kv) for kv in kvs), key=_namespace_and_name)
        return found, revision

    async def delete(self, namespace: str, name: str) -> M:
        """Delete an object and return it; NotFound when missing."""
        key = keys.object_key(self._kind, namespace, name)
        for attempt in range(CAS_ATTEMPTS):
            current: Any = await self.get(namespace, name)
            try:
                await self._store.commit([Guard(key, current.resource_version)], [Op(key)])
            except (NotFound, Conflict):
                if attempt == CAS_ATTEMPTS - 1:
                    raise
                continue
            return cast(M, current)
        raise AssertionError("unreachable")  # pragma: no cover


def _namespace_and_name(obj: Any) -> tuple[str, str]:
    return obj.namespace, obj.name
