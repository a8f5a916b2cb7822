"""The one small interface every service uses to reach etcd.

Everything the mesh keeps lives in etcd; this module is the only place that
talks to it. The implementation wraps the asyncio client `aetcd`
(docs/decisions/0001-etcd-client.md) and translates its failures into the
project's error tree: an unreachable etcd becomes `Unavailable` with a message
that says how to fix it, a compacted watch revision becomes `OutOfRange`, and
a failed compare-and-swap becomes `Conflict` or `AlreadyExists`.

A *write* (commit, put, delete, lease grant or revoke) that times out is
different from one that could not be sent: etcd may have received it and may
still apply it (a hung etcd applies it when it resumes), so it raises
`WriteOutcomeUnknown` (DEADLINE_EXCEEDED on the wire, "read before retrying")
rather than UNAVAILABLE, which tells clients a retry is safe. Reads and lease
renewals, which are safe to repeat, keep UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.rpc
import aetcd.watcher
import grpc

from sutradhar._errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
)
from sutradhar._hosting import reconnect_options
from sutradhar._identity import SpiffeId
from sutradhar._tls import RotatingChannel, TlsSource, secure_channel
from sutradhar.services.common.etcd_server import ETCD_SERVICE_NAME
from sutradhar.services.common.tracing import etcd_span

log = logging.getLogger(__name__)

T = TypeVar("T")


class WriteOutcomeUnknown(DeadlineExceeded, Unavailable):
    """A write timed out after it may have reached etcd: it may or may not be
    applied (now or later). The gRPC status is DEADLINE_EXCEEDED; callers
    must read the key before retrying.

    It is also an `Unavailable` so in-process code that treats any etcd
    outage alike (log, back off, try again later) keeps doing so.
    """

    code = DeadlineExceeded.code


@dataclass(frozen=True)
class KeyValue:
    """One stored key with its etcd metadata."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


class EventType(Enum):
    """What happened to a key."""

    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True)
class Event:
    """One change to a key. For DELETE, `prev` holds the last value when known."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None
    revision: int


@dataclass(frozen=True)
class Scan:
    """One bounded read of a key range (`Store.scan`)."""

    kvs: list[KeyValue]
    """The keys read, in key order (values empty when read keys-only)."""
    revision: int
    """The store revision the read saw."""
    more: bool
    """More keys are in the range past the last one read."""
    count: int
    """How many keys the whole range holds."""


@dataclass(frozen=True)
class Op:
    """One write inside an atomic `Store.commit`: a put (value set) or a delete."""

    key: str
    value: bytes | None = None
    lease: int = 0


@dataclass(frozen=True)
class Guard:
    """A condition of an atomic `Store.commit`: the key's mod revision must
    equal `mod_revision` (0 means: the key must not exist)."""

    key: str
    mod_revision: int


@dataclass(frozen=True)
class EtcdEndpoint:
    """Where etcd listens."""

    host: str = "127.0.0.1"
    port: int = 2379

    @classmethod
    def parse(cls, text: str) -> EtcdEndpoint:
        """Parse "host:port" (an "http://" prefix is accepted)."""
        raw = text.removeprefix("http://").removeprefix("https://").rstrip("/")
        host, sep, port = raw.rpartition(":")
        if not sep or not port.isdigit():
            raise InvalidArgument(f"etcd endpoint {text!r} is not host:port", field="etcd")
        return cls(host=host or "127.0.0.1", port=int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _kv(raw: Any) -> KeyValue:
    return KeyValue(
        key=raw.key.decode(),
        value=bytes(raw.value),
        create_revision=int(raw.create_revision),
        mod_revision=int(raw.mod_revision),
        version=int(raw.version),
        lease=int(raw.lease),
    )


def prefix_end(prefix: str) -> bytes:
    """The etcd range end that covers every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    for i in range(len(raw) - 1, -1, -1):
        if raw[i] < 0xFF:
            raw[i] += 1
            return bytes(raw[: i + 1])
    return b"\0"


class _TlsClient(aetcd.Client):
    """aetcd's client on a mutual-TLS channel (docs/decisions/0007-etcd-over-mtls.md).

    aetcd opens a plaintext channel in `connect` and offers no way to pass
    credentials; this subclass replaces that one step: the channel is a
    `sutradhar._tls.RotatingChannel`, which presents the service's certificate,
    verifies etcd's identity and follows certificate rotation, and the stubs and
    the watcher are built on it exactly as aetcd builds them. Every other method
    (and its error handling) is aetcd's own.
    """

    def __init__(self, *, channel: Callable[[], RotatingChannel], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._make_channel = channel

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        channel = self._make_channel()
        self.channel = channel
        self.kvstub = aetcd.rpc.KVStub(channel)
        self.clusterstub = aetcd.rpc.ClusterStub(channel)
        self.leasestub = aetcd.rpc.LeaseStub(channel)
        self.maintenancestub = aetcd.rpc.MaintenanceStub(channel)
        self._watcher = aetcd.watcher.Watcher(aetcd.rpc.WatchStub(channel), timeout=self._timeout, metadata=None)
        self._connected.set()


class Store:
    """Async access to etcd: reads, guarded writes, leases and watches.

    With `tls`, the connection is mutual TLS: the service presents its
    certificate (etcd runs with client-certificate auth, so nothing without one
    reaches the data) and the handshake checks that etcd holds `etcd_identity`.
    """

    def __init__(
        self,
        endpoint: EtcdEndpoint,
        *,
        timeout: timedelta = timedelta(seconds=5),
        tls: TlsSource | None = None,
        etcd_identity: SpiffeId | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._timeout = timeout
        self.on_call: Callable[[str, float, bool], None] | None = None
        """Told each etcd call's RPC name, seconds taken and whether it succeeded, when set
        (the services' etcd latency metric, services/common/metrics_etcd.py)."""
        options = {
            "grpc.max_receive_message_length": 64 * 1024 * 1024,
            # Without fast reconnects every service answered UNAVAILABLE for
            # 10-15 s after a 30 s etcd outage had ended.
            **dict(reconnect_options()),
        }
        common: dict[str, Any] = {
            "host": endpoint.host,
            "port": endpoint.port,
            "timeout": max(1, int(timeout.total_seconds())),
            "options": options,
        }
        if tls is None:
            self._client = aetcd.Client(**common)
        else:
            expected = etcd_identity or SpiffeId.service(tls.identity.trust_domain, ETCD_SERVICE_NAME)
            self._client = _TlsClient(
                channel=lambda: secure_channel(str(endpoint), tls, options=list(options.items()), expected=expected),
                **common,
            )

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection to etcd."""
        with contextlib.suppress(Exception):
            await self._client.close()

    def _reason(self, err: BaseException) -> str:
        """What went wrong, never an empty text ("TimeoutError: ")."""
        if isinstance(err, (TimeoutError, aetcd.exceptions.ConnectionTimeoutError)):
            return f"timed out after {self._timeout.total_seconds():g}s"
        text = str(err).strip()
        return f"{type(err).__name__}: {text}" if text else type(err).__name__

    def _unavailable(self, err: BaseException) -> Unavailable:
        return Unavailable(
            f"etcd at {self.endpoint} is unreachable ({self._reason(err)}); "
            "check that etcd is running and the --etcd address is right "
            "(`sutradhar up` starts a local one)"
        )

    def _outcome_unknown(self, err: BaseException) -> WriteOutcomeUnknown:
        return WriteOutcomeUnknown(
            f"etcd at {self.endpoint} did not answer a write ({self._reason(err)}); the outcome is unknown: "
            "the write may have been applied or may still be applied, so read the current state "
            "before retrying"
        )

    async def _call(self, fn: Callable[[], Awaitable[T]], *, write: bool = False, op: str = "") -> T:
        """Run one etcd call under the store's deadline.

        `write`: the call changes etcd, so a timeout (the request may have
        reached etcd) is `WriteOutcomeUnknown`, not `Unavailable`. `op`: the
        etcd RPC, naming the call's span when it runs inside a traced RPC
        (`tracing.etcd_span`).
        """
        observe = self.on_call
        if observe is None:
            return await self._attempt(fn, write=write, op=op)
        begin = time.perf_counter()
        ok = False
        try:
            result = await self._attempt(fn, write=write, op=op)
            ok = True
            return result
        finally:
            observe(op or "Other", time.perf_counter() - begin, ok)

    async def _attempt(self, fn: Callable[[], Awaitable[T]], *, write: bool, op: str) -> T:
        try:
            with etcd_span(op):
                # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancellation (sutradhar._aio)
                async with asyncio.timeout(self._timeout.total_seconds()):
                    return await fn()
        except (TimeoutError, aetcd.exceptions.ConnectionTimeoutError) as err:
            if write:
                raise self._outcome_unknown(err) from err
            raise self._unavailable(err) from err
        except (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.InternalError) as err:
            raise self._unavailable(err) from err
        except aetcd.exceptions.ClientError as err:
            raise Unavailable(f"etcd at {self.endpoint} refused the request: {self._reason(err)}") from err
        except grpc.RpcError as err:
            if write and isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise self._outcome_unknown(err) from err
            raise self._unavailable(err) from err

    async def ping(self) -> int:
        """Return the current revision; raises Unavailable when etcd is down."""

        async def go() -> int:
            status = await self._client.get(b"/sutradhar/ping")
            if status is not None:
                return int(status.mod_revision)
            res = await self._client.get_prefix(b"/sutradhar/ping/", keys_only=True)
            return self._revision_of(res)

        return await self._call(go, op="Range")

    @staticmethod
    def _revision_of(res: Any) -> int:
        header = getattr(res, "header", None)
        return int(getattr(header, "revision", 0) or 0)

    async def get(self, key: str) -> KeyValue | None:
        """Return one key, or None when absent."""
        raw = await self._call(lambda: self._client.get(key.encode()), op="Range")
        return None if raw is None else _kv(raw)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Return every key under `prefix`, sorted by key, and the read revision."""
        res = await self._call(lambda: self._client.get_prefix(prefix.encode(), sort_order="ascend"), op="Range")
        return [_kv(r) for r in res], self._revision_of(res)

    async def scan(
        self, start: str, end: str | bytes, *, limit: int = 0, keys_only: bool = False, count_only: bool = False
    ) -> Scan:
        """Read keys from `start` up to (not including) `end` in key order, at
        most `limit` of them (0: all); `end` as bytes for a computed range end
        (`prefix_end`). With `count_only` no keys are returned, only `count`."""
        range_end = end if isinstance(end, bytes) else end.encode()
        request = aetcd.rpc.RangeRequest(
            key=start.encode(),
            range_end=range_end,
            limit=limit,
            sort_order=aetcd.rpc.RangeRequest.ASCEND,
            sort_target=aetcd.rpc.RangeRequest.KEY,
            keys_only=keys_only,
            count_only=count_only,
        )

        async def go() -> Any:
            # aetcd's get_range drops limit and count_only, so the range request is built here.
            await self._client.connect()
            return await self._client.kvstub.Range(request, metadata=self._client.metadata)

        res = await self._call(go, op="Range")
        return Scan([_kv(r) for r in res.kvs], self._revision_of(res), bool(res.more), int(res.count))

    async def revision(self) -> int:
        """The store's current revision."""
        res = await self._call(lambda: self._client.get_prefix(b"/sutradhar/\xff", keys_only=True), op="Range")
        return self._revision_of(res)

    async def commit(self, guards: Sequence[Guard], ops: Sequence[Op]) -> int:
        """Apply `ops` atomically if every guard holds; return the new revision.

        Raises AlreadyExists when a guard expected a missing key that exists,
        NotFound when it expected an existing key that is gone, and Conflict
        when a key changed since it was read.
        """
        tx = self._client.transactions
        compare = [tx.mod(g.key.encode()) == g.mod_revision for g in guards]
        success = [
            tx.delete(op.key.encode())
            if op.value is None
            else tx.put(op.key.encode(), op.value, lease=op.lease or None)
            for op in ops
        ]
        failure = [tx.get(g.key.encode()) for g in guards]
        ok, responses = await self._call(
            lambda: self._client.transaction(compare, success, failure), write=True, op="Txn")
        if ok:
            rev = 0
            for r in responses:
                kind = r.WhichOneof("response")
                rev = max(rev, int(getattr(r, kind).header.revision))
            return rev
        for guard, found in zip(guards, responses, strict=False):
            current = found[0][1].mod_revision if found else 0
            if current == guard.mod_revision:
                continue
            if guard.mod_revision == 0:
                raise AlreadyExists(f"{guard.key} exists already")
            if current == 0:
                raise NotFound(f"{guard.key} no longer exists")
            raise Conflict(
                f"{guard.key} changed since it was read (revision {guard.mod_revision}, now {current}); "
                "read it again and retry"
            )
        raise Conflict("a concurrent change made the write fail; retry")

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write a key unconditionally; return the new revision."""
        return await self.commit([], [Op(key, value, lease)])

    async def delete(self, key: str) -> bool:
        """Delete one key; return whether it existed."""
        res = await self._call(lambda: self._client.delete(key.encode()), write=True, op="DeleteRange")
        return res is not None and bool(getattr(res, "deleted", 1))

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix`; return how many were deleted."""
        res = await self._call(lambda: self._client.delete_prefix(prefix.encode()), write=True, op="DeleteRange")
        return len(res)

    # -- leases -------------------------------------------------------------

    async def grant_lease(self, ttl: timedelta) -> int:
        """Create a lease with the given TTL (whole seconds, at least 1)."""
        seconds = max(1, round(ttl.total_seconds()))
        lease = await self._call(lambda: self._client.lease(seconds), write=True, op="LeaseGrant")
        return int(lease.id)

    async def keep_alive(self, lease_id: int) -> timedelta:
        """Renew a lease; return its TTL. NotFound when it has lapsed."""
        reply = await self._call(lambda: self._client.refresh_lease(lease_id), op="LeaseKeepAlive")
        ttl = int(getattr(reply, "TTL", 0)) if reply is not None else 0
        if ttl <= 0:
            raise NotFound(f"lease {lease_id:x} has expired")
        return timedelta(seconds=ttl)

    async def lease_ttl(self, lease_id: int) -> timedelta | None:
        """Remaining TTL of a lease, or None when it has lapsed."""
        info = await self._call(lambda: self._client.get_lease_info(lease_id, keys=False), op="LeaseTimeToLive")
        ttl = int(getattr(info, "TTL", -1))
        return None if ttl <= 0 else timedelta(seconds=ttl)

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease (its keys are deleted). A lapsed lease is fine."""
        try:
            await self._call(lambda: self._client.revoke_lease(lease_id), write=True, op="LeaseRevoke")
        except Unavailable as err:
            if "not found" in str(err).lower():
                return
            raise

    # -- watches ------------------------------------------------------------

    async def watch(self, prefix: str, *, start_revision: int = 0) -> AsyncIterator[Event]:
        """Yield every change under `prefix` from `start_revision` on (0: from now).

        Raises OutOfRange when `start_revision` has been compacted away and
        Unavailable when the connection to etcd breaks; the caller resumes with
        the last seen revision + 1.
        """
        kwargs: dict[str, Any] = {"range_end": prefix_end(prefix), "prev_kv": True}
        if start_revision > 0:
            kwargs["start_revision"] = start_revision
        try:
            stream = await self._call(lambda: self._client.watch(prefix.encode(), **kwargs), op="Watch")
        except aetcd.exceptions.RevisionCompactedError as err:
            raise OutOfRange(
                f"revision {start_revision} was compacted (oldest kept: {err.compacted_revision}); "
                "list again and watch from the list's revision"
            ) from err
        try:
            async for raw in stream:
                kv = _kv(raw.kv)
                prev = _kv(raw.prev_kv) if raw.prev_kv is not None and raw.prev_kv.key else None
                kind = EventType.PUT if raw.kind == "PUT" else EventType.DELETE
                yield Event(type=kind, kv=kv, prev=prev, revision=kv.mod_revision)
        except aetcd.exceptions.RevisionCompactedError as err:
            raise OutOfRange(
                f"revision {start_revision} was compacted (oldest kept: {err.compacted_revision}); "
                "list again and watch from the list's revision"
            ) from err
        except (aetcd.exceptions.ClientError, grpc.RpcError) as err:
            raise self._unavailable(err) from err
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await stream.cancel()
