"""Secrets and ConfigMaps in etcd: `SecretStore` (sealed at rest) and `ConfigMapStore` (plain).

A secret is stored under ``/sutradhar/v1/secrets/<namespace>/<name>`` as a
`StoredSecret`: its namespace, name and data version in the clear (what the
scheduler reads to compute revisions, without any key), and `sealed`, the
AES-GCM envelope (`services/common/encryption.py`) of the serialized
`SecretRecord` (metadata, key names, values), bound to that etcd key. Only the
registry holds the encryption config, so only it opens the envelope; nothing
here logs, and no error quotes a value.

Writes are guarded by the key's mod revision; `apply` writes nothing when the data
and labels are unchanged, so `version` (what a deployment's revision hash
includes) moves only when the data does, and re-encryption keeps it.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sutradhar._errors import AlreadyExists, Conflict, FailedPrecondition, NotFound
from sutradhar._labels import validate_labels
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar.services.common import keys
from sutradhar.services.common.encryption import DecryptionFailed, EncryptionConfig, envelope_key_name
from sutradhar.services.common.secret_refs import check_data
from sutradhar.services.common.store import Guard, KeyValue, Op, Store
from sutradhar.services.registry._common import CAS_ATTEMPTS, describe, timestamp, utc_now
from sutradhar.v1 import secrets_pb2 as pb

__all__ = ["ConfigMapStore", "ReencryptProgress", "SecretStore"]

Clock = Callable[[], datetime]


def no_encryption_config() -> FailedPrecondition:
    return FailedPrecondition(
        "the registry has no encryption config, so it stores no secrets (they are encrypted at rest): start it with "
        "--encryption-config FILE (SUTRADHAR_REGISTRY_ENCRYPTION_CONFIG); `sutradhar up` makes one in its state "
        "directory")


@dataclass(frozen=True)
class ReencryptProgress:
    """One step of `SecretStore.reencrypt`."""

    examined: int
    total: int
    rewritten: int
    unchanged: int
    secret: str
    key: str
    failed: int = 0
    """Secrets sealed with a key the config no longer holds (left as they are)."""


class SecretStore:
    """Secrets in etcd, sealed with the current key of `encryption` (None: secrets are refused)."""

    def __init__(self, store: Store, encryption: EncryptionConfig | None, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._encryption = encryption
        self._clock = clock

    @property
    def encryption(self) -> EncryptionConfig:
        if self._encryption is None:
            raise no_encryption_config()
        return self._encryption

    def _require_encryption(self) -> None:
        if self._encryption is None:
            raise no_encryption_config()

    # -- sealing ----------------------------------------------------------------

    def _seal(self, key: str, record: pb.SecretRecord) -> bytes:
        sealed = self.encryption.encrypt(record.SerializeToString(deterministic=True), associated=key.encode())
        stored = pb.StoredSecret(namespace=record.secret.namespace, name=record.secret.name,
                                 version=record.secret.version, sealed=sealed)
        return keys.encode(stored)

    def _open(self, kv: KeyValue) -> pb.SecretRecord:
        stored = keys.decode(kv.value, pb.StoredSecret)
        plain = self.encryption.decrypt(stored.sealed, associated=kv.key.encode())
        record = pb.SecretRecord.FromString(plain)
        meta = record.secret
        meta.resource_version = kv.mod_revision
        meta.create_revision = kv.create_revision
        meta.encryption_key = envelope_key_name(stored.sealed)
        return record

    @staticmethod
    def _validate(namespace: str, name: str) -> None:
        validate_namespace(namespace)
        validate_dns_label(name, field="name", what="secret name")

    # -- the API ----------------------------------------------------------------

    async def apply(
        self, secret: pb.Secret, data: Mapping[str, bytes], *, updated_by: str
    ) -> tuple[pb.Secret, bool, bool]:
        """Create or replace; (metadata, created, changed). Unchanged data and labels write nothing."""
        validate_namespace(secret.namespace, field="secret.namespace")
        validate_dns_label(secret.name, field="secret.name", what="secret name")
        validate_labels(dict(secret.labels), field="secret.labels")
        check_data(data, field="data", what=f"secret {secret.name!r}")
        encryption = self.encryption
        namespace = keys.namespace_or_default(secret.namespace)
        key = keys.secret_key(namespace, secret.name)
        expected = secret.resource_version
        wanted = dict(data)
        for attempt in range(CAS_ATTEMPTS):
            current = await self._store.get(key)
            old, lost_version = None, 0
            if current is not None:
                try:
                    old = self._open(current)
                except DecryptionFailed:  # sealed with a key no longer held: replace it outright
                    lost_version = keys.decode(current.value, pb.StoredSecret).version
            self._check_expected(expected, current, namespace, secret.name)
            stale_key = current is not None and encryption.needs_rewrite(
                keys.decode(current.value, pb.StoredSecret).sealed)
            if old is not None and dict(old.data) == wanted and dict(old.secret.labels) == dict(secret.labels) \
                    and not stale_key:
                return old.secret, False, False
            now = timestamp(self._clock())
            meta = pb.Secret(namespace=namespace, name=secret.name, labels=dict(secret.labels))
            meta.keys.extend(pb.SecretKey(name=k, size=len(v)) for k, v in sorted(wanted.items()))
            changed = old is None or dict(old.data) != wanted
            if old is None:
                meta.version = lost_version + 1
                meta.create_time.CopyFrom(now)
            else:
                meta.version = old.secret.version + (1 if changed else 0)
                meta.create_time.CopyFrom(old.secret.create_time)
            if changed or old is None:
                meta.update_time.CopyFrom(now)
                meta.updated_by = updated_by
            else:
                meta.update_time.CopyFrom(old.secret.update_time)
                meta.updated_by = old.secret.updated_by
            record = pb.SecretRecord(secret=meta, data=wanted)
            guard = Guard(key, current.mod_revision if current is not None else 0)
            try:
                revision = await self._store.commit([guard], [Op(key, self._seal(key, record))])
            except (AlreadyExists, NotFound, Conflict) as err:
                if expected or attempt == CAS_ATTEMPTS - 1:
                    raise Conflict(f"{describe('secret', namespace, secret.name)} changed concurrently: {err}") \
                        from err
                continue
            meta.resource_version = revision
            meta.create_revision = current.create_revision if current is not None else revision
            meta.encryption_key = encryption.current.name
            return meta, current is None, changed
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _check_expected(expected: int, current: KeyValue | None, namespace: str, name: str) -> None:
        if not expected:
            return
        if current is None:
            raise Conflict(f"{describe('secret', namespace, name)} no longer exists (resource_version {expected} is "
                           "stale)", field="secret.resource_version")
        if current.mod_revision != expected:
            raise Conflict(f"{describe('secret', namespace, name)} changed since resource_version {expected} (now "
                           f"{current.mod_revision}); read it again and retry", field="secret.resource_version")

    async def _get_kv(self, namespace: str, name: str) -> KeyValue:
        self._validate(namespace, name)
        kv = await self._store.get(keys.secret_key(namespace, name))
        if kv is None:
            raise NotFound(f"{describe('secret', namespace, name)} not found", field="name")
        return kv

    async def get(self, namespace: str, name: str) -> pb.Secret:
        """One secret's metadata; NotFound when missing."""
        return self._open(await self._get_kv(namespace, name)).secret

    async def reveal(self, namespace: str, name: str) -> pb.SecretRecord:
        """One secret with its values."""
        return self._open(await self._get_kv(namespace, name))

    async def list(self, namespace: str) -> tuple[builtins.list[pb.Secret], int]:
        """Metadata of the secrets of `namespace` ("*": all), sorted, and the read revision. A secret
        whose key the config no longer holds is listed with its name, version and key name only."""
        validate_namespace(namespace, allow_all=True)
        self._require_encryption()
        kvs, revision = await self._store.list(keys.kind_prefix(keys.SECRETS, namespace))
        out = []
        for kv in kvs:
            try:
                out.append(self._open(kv).secret)
            except DecryptionFailed:
                stored = keys.decode(kv.value, pb.StoredSecret)
                out.append(pb.Secret(namespace=stored.namespace, name=stored.name, version=stored.version,
                                     resource_version=kv.mod_revision, create_revision=kv.create_revision,
                                     encryption_key=_key_name_or_unknown(stored.sealed)))
        return sorted(out, key=lambda s: (s.namespace, s.name)), revision

    async def delete(self, namespace: str, name: str) -> pb.Secret:
        """Delete and return the metadata; NotFound when missing."""
        for attempt in range(CAS_ATTEMPTS):
            kv = await self._get_kv(namespace, name)
            try:
                meta = self._open(kv).secret
            except DecryptionFailed:  # a secret whose key is gone can still be deleted
                stored = keys.decode(kv.value, pb.StoredSecret)
                meta = pb.Secret(namespace=stored.namespace, name=stored.name, version=stored.version)
            try:
                await self._store.commit([Guard(kv.key, kv.mod_revision)], [Op(kv.key)])
            except (NotFound, Conflict):
                if attempt == CAS_ATTEMPTS - 1:
                    raise
                continue
            return meta
        raise AssertionError("unreachable")  # pragma: no cover

    async def reencrypt(self, namespace: str = "") -> AsyncIterator[ReencryptProgress]:
        """Rewrite every secret of `namespace` ("" or "*": all) not sealed with the current key,
        one step per secret. A secret changed meanwhile is read again (its writer sealed it
        with the current key already)."""
        encryption = self.encryption
        scope = namespace or "*"
        validate_namespace(scope, allow_all=True)
        kvs, _ = await self._store.list(keys.kind_prefix(keys.SECRETS, scope))
        rewritten = unchanged = failed = 0
        current_key = encryption.current.name
        for i, kv in enumerate(kvs, start=1):
            try:
                did = await self._reencrypt_one(kv)
            except DecryptionFailed:
                failed += 1
            else:
                rewritten += did
                unchanged += not did
            _, ns, name = keys.parse_key(kv.key)
            yield ReencryptProgress(i, len(kvs), rewritten, unchanged, f"{ns}/{name}", current_key, failed)

    async def _reencrypt_one(self, kv: KeyValue | None) -> bool:
        for _ in range(CAS_ATTEMPTS):
            if kv is None:
                return False  # deleted meanwhile
            if not self.encryption.needs_rewrite(keys.decode(kv.value, pb.StoredSecret).sealed):
                return False
            record = self._open(kv)
            for name in ("resource_version", "create_revision", "encryption_key"):
                record.secret.ClearField(name)
            try:
                await self._store.commit([Guard(kv.key, kv.mod_revision)], [Op(kv.key, self._seal(kv.key, record))])
            except (NotFound, Conflict):
                kv = await self._store.get(kv.key)
                continue
            return True
        raise Conflict(f"{kv.key if kv else 'a secret'} kept changing during re-encryption; run it again")


def _key_name_or_unknown(sealed: bytes) -> str:
    try:
        return envelope_key_name(sealed)
    except DecryptionFailed:
        return "(not encrypted)"


class ConfigMapStore:
    """ConfigMaps in etcd, plain protobuf JSON (no state of its own)."""

    def __init__(self, store: Store, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    @staticmethod
    def _from_kv(kv: KeyValue) -> pb.ConfigMap:
        cm = keys.decode(kv.value, pb.ConfigMap)
        cm.resource_version = kv.mod_revision
        cm.create_revision = kv.create_revision
        return cm

    async def apply(self, config_map: pb.ConfigMap, *, updated_by: str) -> tuple[pb.ConfigMap, bool, bool]:
        """Create or replace; (stored, created, changed). Unchanged data and labels write nothing."""
        validate_namespace(config_map.namespace, field="config_map.namespace")
        validate_dns_label(config_map.name, field="config_map.name", what="config map name")
        validate_labels(dict(config_map.labels), field="config_map.labels")
        check_data(dict(config_map.data), field="config_map.data", what=f"config map {config_map.name!r}")
        namespace = keys.namespace_or_default(config_map.namespace)
        key = keys.configmap_key(namespace, config_map.name)
        expected = config_map.resource_version
        for attempt in range(CAS_ATTEMPTS):
            current = await self._store.get(key)
            old = self._from_kv(current) if current is not None else None
            if expected and (current is None or current.mod_revision != expected):
                raise Conflict(f"{describe('config map', namespace, config_map.name)} changed since "
                               f"resource_version {expected}; read it again and retry",
                               field="config_map.resource_version")
            if old is not None and dict(old.data) == dict(config_map.data) and \
                    dict(old.labels) == dict(config_map.labels):
                return old, False, False
            now = timestamp(self._clock())
            out = pb.ConfigMap(namespace=namespace, name=config_map.name, data=dict(config_map.data),
                               labels=dict(config_map.labels))
            changed = old is None or dict(old.data) != dict(config_map.data)
            out.version = 1 if old is None else old.version + (1 if changed else 0)
            out.create_time.CopyFrom(now if old is None else old.create_time)
            if changed:
                out.update_time.CopyFrom(now)
                out.updated_by = updated_by
            elif old is not None:
                out.update_time.CopyFrom(old.update_time)
                out.updated_by = old.updated_by
            guard = Guard(key, current.mod_revision if current is not None else 0)
            try:
                revision = await self._store.commit([guard], [Op(key, keys.encode(out))])
            except (AlreadyExists, NotFound, Conflict) as err:
                if expected or attempt == CAS_ATTEMPTS - 1:
                    raise Conflict(f"{describe('config map', namespace, config_map.name)} changed concurrently: "
                                   f"{err}") from err
                continue
            out.resource_version = revision
            out.create_revision = current.create_revision if current is not None else revision
            return out, old is None, changed
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, namespace: str, name: str) -> pb.ConfigMap:
        """One config map; NotFound when missing."""
        validate_namespace(namespace)
        validate_dns_label(name, field="name", what="config map name")
        kv = await self._store.get(keys.configmap_key(namespace, name))
        if kv is None:
            raise NotFound(f"{describe('config map', namespace, name)} not found", field="name")
        return self._from_kv(kv)

    async def list(self, namespace: str) -> tuple[builtins.list[pb.ConfigMap], int]:
        """The config maps of `namespace` ("*": all), sorted, and the read revision."""
        validate_namespace(namespace, allow_all=True)
        kvs, revision = await self._store.list(keys.kind_prefix(keys.CONFIGMAPS, namespace))
        return sorted((self._from_kv(kv) for kv in kvs), key=lambda c: (c.namespace, c.name)), revision

    async def delete(self, namespace: str, name: str) -> pb.ConfigMap:
        """Delete and return it; NotFound when missing."""
        for attempt in range(CAS_ATTEMPTS):
            current = await self.get(namespace, name)
            key = keys.configmap_key(namespace, name)
            try:
                await self._store.commit([Guard(key, current.resource_version)], [Op(key)])
            except (NotFound, Conflict):
                if attempt == CAS_ATTEMPTS - 1:
                    raise
                continue
            return current
        raise AssertionError("unreachable")  # pragma: no cover
