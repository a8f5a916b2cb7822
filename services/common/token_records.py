"""Token records in etcd, and the revocation cache every verifying service keeps.

A token's record (`sutradhar.v1.TokenRecord`, never the token) lives at
``/sutradhar/v1/tokens/<namespace>/<jti>`` under its own lease, which ends
`RECORD_GRACE` after the token expires: an expired token's record vanishes by
itself, and a revoked one's stays as long as the token could still verify.
A token of every namespace ("*") has its record in ``sutradhar-system``.

`RevocationCache` lists and watches the prefix and answers `is_revoked(jti)`
from memory, with no etcd read per call: pass its `is_revoked` to
`TokenVerifier`. While etcd is unreachable it keeps what it knew (a
revocation made meanwhile takes effect when the watch resumes); before its
first listing (`synced`) it knows no revocation, so a server should wait for
`synced` before serving.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Final

from google.protobuf import timestamp_pb2

from sutradhar._errors import Conflict, NotFound
from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId
from sutradhar._names import ALL_NAMESPACES
from sutradhar.services.common import keys
from sutradhar.services.common.follow import follow_prefix
from sutradhar.services.common.store import Event, EventType, Guard, KeyValue, Op, Store
from sutradhar.services.common.tokens import DEFAULT_LEEWAY, Clock, TokenRecord, utc_now
from sutradhar.v1 import tokens_pb2

log = logging.getLogger(__name__)

#: How long a record outlives its token (more than the verifiers' leeway, so a
#: revoked token cannot verify again in its last seconds).
RECORD_GRACE: Final = DEFAULT_LEEWAY + timedelta(seconds=90)


def storage_namespace(namespace: str) -> str:
    """Where a token's record lives: its namespace, ``sutradhar-system`` for "*"."""
    return SYSTEM_NAMESPACE if namespace == ALL_NAMESPACES else keys.namespace_or_default(namespace)


def _timestamp(at: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(at)
    return out


def record_to_proto(record: TokenRecord) -> tokens_pb2.TokenRecord:
    """The wire and storage form of a record."""
    out = tokens_pb2.TokenRecord(
        id=record.id, namespace=record.namespace, subject=str(record.subject), role=record.role,
        created_by=record.created_by, description=record.description,
        create_time=_timestamp(record.create_time), expire_time=_timestamp(record.expire_time),
    )
    if record.revoke_time is not None:
        out.revoke_time.CopyFrom(_timestamp(record.revoke_time))
    return out


def record_from_proto(message: tokens_pb2.TokenRecord) -> TokenRecord:
    """A record read back."""
    return TokenRecord(
        id=message.id, namespace=message.namespace, subject=SpiffeId.parse(message.subject), role=message.role,
        create_time=message.create_time.ToDatetime(tzinfo=UTC),
        expire_time=message.expire_time.ToDatetime(tzinfo=UTC),
        description=message.description, created_by=message.created_by,
        revoke_time=message.revoke_time.ToDatetime(tzinfo=UTC) if message.HasField("revoke_time")
        else None,
    )


class TokenRecords:
    """The records of issued tokens, in etcd."""

    def __init__(self, store: Store, *, now: Clock = utc_now, grace: timedelta = RECORD_GRACE) -> None:
        self._store = store
        self._now = now
        self._grace = grace

    async def create(self, record: TokenRecord) -> tokens_pb2.TokenRecord:
        """Store a new record under a lease ending `grace` after the token expires."""
        key = keys.token_key(storage_namespace(record.namespace), record.id)
        lease = await self._store.grant_lease(record.expire_time - self._now() + self._grace)
        message = record_to_proto(record)
        try:
            await self._store.commit([Guard(key, 0)], [Op(key, keys.encode(message), lease)])
        except BaseException:
            await self._store.revoke_lease(lease)
            raise
        return message

    async def get(self, namespace: str, token_id: str) -> tokens_pb2.TokenRecord:
        """One record; NotFound saying how to find the id."""
        kv = await self._get(namespace, token_id)
        return keys.decode(kv.value, tokens_pb2.TokenRecord)

    async def _get(self, namespace: str, token_id: str) -> KeyValue:
        ns = storage_namespace(namespace)
        kv = await self._store.get(keys.token_key(ns, token_id))
        if kv is None:
            raise NotFound(
                f'no token {token_id!r} in namespace "{ns}" (an expired token\'s record is gone); '
                f"list them with `sutradhar token list -n {ns}`"
            )
        return kv

    async def revoke(self, namespace: str, token_id: str) -> tokens_pb2.TokenRecord:
        """Mark a token revoked (idempotent: a revoked one keeps its first revoke_time)."""
        while True:
            kv = await self._get(namespace, token_id)
            message = keys.decode(kv.value, tokens_pb2.TokenRecord)
            if message.HasField("revoke_time"):
                return message
            message.revoke_time.CopyFrom(_timestamp(self._now()))
            try:
                await self._store.commit([Guard(kv.key, kv.mod_revision)], [Op(kv.key, keys.encode(message), kv.lease)])
            except Conflict:
                continue  # changed meanwhile: read again
            return message

    async def list(self, namespace: str) -> list[tokens_pb2.TokenRecord]:
        """Records of a namespace ("*": all), sorted by namespace and id."""
        prefix = keys.kind_prefix(keys.TOKENS, ALL_NAMESPACES if namespace == ALL_NAMESPACES
                                  else storage_namespace(namespace))
        kvs, _ = await self._store.list(prefix)
        return [keys.decode(kv.value, tokens_pb2.TokenRecord) for kv in kvs]


class RevocationCache:
    """The ids of revoked, unexpired tokens, kept in step with etcd by a watch.

    Run `run()` in the service's task group; `is_revoked` is a set lookup.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._revoked: set[str] = set()
        self._by_key: dict[str, str] = {}
        self.synced = asyncio.Event()
        """Set once the first listing is in."""

    def is_revoked(self, token_id: str) -> bool:
        """Whether the token with this jti was revoked (no I/O)."""
        return token_id in self._revoked

    @property
    def revoked(self) -> frozenset[str]:
        """Every revoked id known now."""
        return frozenset(self._revoked)

    def _put(self, kv: KeyValue) -> None:
        try:
            message = keys.decode(kv.value, tokens_pb2.TokenRecord)
        except Exception as err:  # a bad record must not stop the watch
            log.warning("unreadable token record at %s: %s", kv.key, err)
            return
        if message.HasField("revoke_time") and message.id:
            self._revoked.add(message.id)
            self._by_key[kv.key] = message.id

    def _reset(self, kvs: list[KeyValue]) -> None:
        self._revoked.clear()
        self._by_key.clear()
        for kv in kvs:
            self._put(kv)
        self.synced.set()

    def _event(self, event: Event) -> None:
        if event.type is EventType.PUT:
            self._put(event.kv)
            return
        token_id = self._by_key.pop(event.kv.key, None)  # the record expired (or was deleted)
        if token_id is not None:
            self._revoked.discard(token_id)

    async def run(self) -> None:
        """List and watch the token records forever (cancel to stop)."""
        await follow_prefix(self._store, keys.kind_prefix(keys.TOKENS), reset=self._reset, event=self._event)
