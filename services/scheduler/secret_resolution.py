"""How the scheduler learns what a replica's Secret and ConfigMap references resolve to.

Two steps, apart on purpose:

- `versions`: the data version of every referenced object, read from etcd directly
  (a Secret's version is in the clear in its `StoredSecret`; no key needed). The
  reconciler hashes them into the revision, so a changed secret rolls the
  deployment; a missing object is reported as a condition and nothing starts.
- `resolve`: the values, when a replica starts. Secrets come through the registry's
  `RevealSecret` (the scheduler's mesh-service identity holds `read-value`; the
  scheduler never holds the encryption key); ConfigMaps are read from etcd.

Nothing here logs a value; `Resolution`'s repr shows names only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from sutradhar._errors import NotFound
from sutradhar.services.common import keys
from sutradhar.services.common.secret_refs import (
    CONFIGMAP,
    SECRET,
    ObjectRef,
    References,
    Resolution,
    object_versions,
    resolve,
)
from sutradhar.services.common.store import Store
from sutradhar.v1 import secrets_pb2

__all__ = ["RevealSecret", "SecretResolver"]

RevealSecret = Callable[[str, str], Awaitable[Mapping[str, bytes]]]
"""(namespace, name) -> the secret's values; raises NotFound when it does not exist."""


class SecretResolver:
    """Versions from etcd, values from the registry (secrets) and etcd (config maps)."""

    def __init__(self, store: Store, reveal: RevealSecret) -> None:
        self.store = store
        self.reveal = reveal

    async def _version(self, namespace: str, ref: ObjectRef) -> str | None:
        if ref.kind == SECRET:
            kv = await self.store.get(keys.secret_key(namespace, ref.name))
            if kv is None:
                return None
            return f"{kv.create_revision}.{keys.decode(kv.value, secrets_pb2.StoredSecret).version}"
        kv = await self.store.get(keys.configmap_key(namespace, ref.name))
        if kv is None:
            return None
        return f"{kv.create_revision}.{keys.decode(kv.value, secrets_pb2.ConfigMap).version}"

    async def versions(self, namespace: str, refs: References) -> dict[str, str]:
        """"kind/name" -> "<create revision>.<data version>" of every referenced object;
        MissingReference naming those that do not exist."""
        found = {ref: await self._version(namespace, ref) for ref in refs.objects}
        return object_versions(refs, found)

    async def _data(self, namespace: str, ref: ObjectRef) -> Mapping[str, bytes] | None:
        if ref.kind == SECRET:
            try:
                return await self.reveal(namespace, ref.name)
            except NotFound:
                return None
        assert ref.kind == CONFIGMAP
        kv = await self.store.get(keys.configmap_key(namespace, ref.name))
        if kv is None:
            return None
        config_map = keys.decode(kv.value, secrets_pb2.ConfigMap)
        return {k: v.encode() for k, v in config_map.data.items()}

    async def resolve(self, namespace: str, refs: References) -> Resolution:
        """The environment and files of `refs`; MissingReference naming what is missing."""
        objects = {ref: await self._data(namespace, ref) for ref in refs.objects}
        return resolve(refs, objects)
