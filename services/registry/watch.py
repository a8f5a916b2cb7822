"""Watch: stream changes to agents, instances and rate limits, resumable by revision.

One etcd watch feeds each stream. With `include_initial` the stream first
sends every existing object as PUT events (in batches), then one SYNCED
event, then live changes. The SYNCED event's revision is a safe resume
point: reconnecting with ``start_revision = revision + 1`` loses nothing.
Every WatchResponse carries the highest revision it covers; a client that
remembers it and reconnects with ``start_revision = last + 1`` receives
exactly the changes it missed (OUT_OF_RANGE when etcd compacted them; then
list again). When etcd breaks, the stream ends with UNAVAILABLE so the
client reconnects, here or at another registry replica.

Kinds: an empty `kinds` means agents and instances (what every watcher asked
for before rate limits existed); RateLimits (`RESOURCE_KIND_RATE_LIMIT`) come
only to a client that lists them, as routers do.

A WatchResponse holds at most `batch_size` events and at most about
`batch_bytes` encoded bytes (always at least one event), so a namespace of
large agents can never push a response past the gRPC message limit (which
made every router's `Watch("*")` fail and stop routing in all namespaces).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from google.protobuf import json_format

from sutradhar import _names as names
from sutradhar._errors import InvalidArgument, OutOfRange, SutradharError, Unavailable
from sutradhar.services.common import keys
from sutradhar.services.common.store import Event, EventType, KeyValue, Store
from sutradhar.v1 import registry_pb2

log = logging.getLogger(__name__)

AGENT: Final = registry_pb2.RESOURCE_KIND_AGENT
INSTANCE: Final = registry_pb2.RESOURCE_KIND_INSTANCE
RATE_LIMIT: Final = registry_pb2.RESOURCE_KIND_RATE_LIMIT
_KIND_NAMES: Final[dict[int, str]] = {AGENT: keys.AGENTS, INSTANCE: keys.INSTANCES, RATE_LIMIT: keys.RATELIMITS}
_KINDS_BY_NAME: Final = {name: kind for kind, name in _KIND_NAMES.items()}
#: What an empty `kinds` means.
DEFAULT_KINDS: Final = frozenset({AGENT, INSTANCE})
#: The WatchEvent field that holds an object of each kind.
_TARGETS: Final[dict[int, str]] = {AGENT: "agent", INSTANCE: "instance", RATE_LIMIT: "rate_limit"}

#: Events per WatchResponse at most.
DEFAULT_BATCH_SIZE = 500
#: Encoded bytes per WatchResponse at most (a single larger event goes alone);
#: well under the default 4 MiB gRPC message limit.
DEFAULT_BATCH_BYTES = 1024 * 1024
#: Framing bytes of one event inside a WatchResponse (field tag and length),
#: and of the response's own revision field, at most.
_EVENT_OVERHEAD = 6
_RESPONSE_OVERHEAD = 16
#: Quiet time after which an empty progress response reports the latest revision.
DEFAULT_PROGRESS_INTERVAL = timedelta(seconds=5)
#: Events buffered per stream before the etcd watch is slowed down.
_QUEUE_SIZE = 10_000


@dataclass(frozen=True)
class WatchSpec:
    """What a Watch call asks for."""

    namespace: str = ""
    """Namespace; empty means "default", "*" means all."""
    kinds: frozenset[int] = frozenset()
    """ResourceKind values to watch; empty means agents and instances (`DEFAULT_KINDS`)."""
    start_revision: int = 0
    """Resume from this revision (the last seen + 1); 0 means from now."""
    include_initial: bool = False
    """Send every existing object first, then SYNCED."""

    @classmethod
    def from_request(cls, req: registry_pb2.WatchRequest) -> WatchSpec:
        """The spec a WatchRequest asks for."""
        return cls(req.namespace, frozenset(req.kinds), req.start_revision, req.include_initial)

    def validate(self) -> None:
        """InvalidArgument naming the field when the spec is malformed."""
        names.validate_namespace(self.namespace, allow_all=True)
        for kind in self.kinds:
            if kind not in _KIND_NAMES:
                raise InvalidArgument(
                    f"kinds: {kind} is not a watchable kind (RESOURCE_KIND_AGENT, RESOURCE_KIND_INSTANCE or "
                    "RESOURCE_KIND_RATE_LIMIT)",
                    field="kinds",
                )
        if self.start_revision < 0:
            raise InvalidArgument(f"start_revision: {self.start_revision} must not be negative", field="start_revision")
        if self.start_revision and self.include_initial:
            raise InvalidArgument(
                "start_revision: set either start_revision (resume) or include_initial (fresh start), not both",
                field="start_revision",
            )


def event_size(event: registry_pb2.WatchEvent) -> int:
    """Encoded bytes `event` adds to a WatchResponse."""
    return event.ByteSize() + _EVENT_OVERHEAD


def batches(
    events: list[registry_pb2.WatchEvent], *, max_count: int, max_bytes: int
) -> list[list[registry_pb2.WatchEvent]]:
    """Split `events`, in order, into batches of at most `max_count` events and
    at most `max_bytes` encoded bytes each; an event larger than `max_bytes`
    goes alone (a batch always has at least one event)."""
    out: list[list[registry_pb2.WatchEvent]] = []
    batch: list[registry_pb2.WatchEvent] = []
    size = _RESPONSE_OVERHEAD
    for event in events:
        n = event_size(event)
        if batch and (len(batch) >= max_count or size + n > max_bytes):
            out.append(batch)
            batch, size = [], _RESPONSE_OVERHEAD
        batch.append(event)
        size += n
    if batch:
        out.append(batch)
    return out


def _decode(kv: KeyValue | None, kind: int, namespace: str, name: str) -> registry_pb2.WatchEvent:
    event = registry_pb2.WatchEvent(kind=kind, namespace=namespace, id=name)  # type: ignore[arg-type]
    target: Any = getattr(event, _TARGETS[kind])
    if kv is not None and kv.value:
        try:
            json_format.Parse(kv.value, target, ignore_unknown_fields=True)
        except json_format.ParseError as err:
            log.warning("cannot decode %s: %s", kv.key, err)
            target.Clear()
        target.resource_version = kv.mod_revision
    if kind == RATE_LIMIT:
        if not target.name:
            target.name = name
            target.namespace = namespace
    elif not target.id:
        target.id = name
        target.namespace = namespace
    return event


class Watcher:
    """Builds Watch streams over the store."""

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        progress_interval: timedelta = DEFAULT_PROGRESS_INTERVAL,
        closing: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._batch_size = max(1, batch_size)
        self._batch_bytes = batch_bytes
        self._progress_interval = progress_interval
        self._closing = closing or asyncio.Event()

    def _prefix(self, spec: WatchSpec, kinds: frozenset[int]) -> str:
        if len(kinds) == 1:
            return keys.kind_prefix(_KIND_NAMES[next(iter(kinds))], spec.namespace)
        return keys.ROOT

    def _convert(self, ev: Event, spec: WatchSpec, kinds: frozenset[int]) -> registry_pb2.WatchEvent | None:
        try:
            kind_name, namespace, name = keys.parse_key(ev.kv.key)
        except ValueError:
            return None
        kind = _KINDS_BY_NAME.get(kind_name)
        if kind is None or kind not in kinds:
            return None
        if spec.namespace != names.ALL_NAMESPACES and namespace != keys.namespace_or_default(spec.namespace):
            return None
        if ev.type is EventType.PUT:
            event = _decode(ev.kv, kind, namespace, name)
            event.type = registry_pb2.WATCH_EVENT_TYPE_PUT
        else:
            event = _decode(ev.prev, kind, namespace, name)
            event.type = registry_pb2.WATCH_EVENT_TYPE_DELETE
        event.revision = ev.revision
        return event

    async def _initial(self, spec: WatchSpec, kinds: frozenset[int]) -> tuple[list[registry_pb2.WatchEvent], int]:
        """Every existing object as PUT events, read at one etcd revision."""
        # One range read, so the snapshot is consistent at one revision: the
        # kind's prefix for one kind, the common root for several (filtered).
        kvs, revision = await self._store.list(self._prefix(spec, kinds))
        listed: list[registry_pb2.WatchEvent] = []
        for kv in kvs:
            event = self._convert(Event(EventType.PUT, kv, None, kv.mod_revision), spec, kinds)
            if event is not None:
                listed.append(event)
        listed.sort(key=lambda e: (e.kind, e.namespace, e.id))
        return listed, revision

    async def stream(self, spec: WatchSpec) -> AsyncIterator[registry_pb2.WatchResponse]:
        """Yield WatchResponses for `spec` until the caller stops, etcd breaks
        (Unavailable), the revision is compacted or ahead of etcd (OutOfRange) or the registry
        shuts down (Unavailable).

        While changes that the spec filters out advance etcd's revision, an
        empty WatchResponse carrying the latest revision is sent at most every
        `progress_interval`, so an idle client's resume point stays recent.
        """
        spec.validate()
        kinds = spec.kinds or DEFAULT_KINDS
        start = spec.start_revision
        if start:
            # etcd would wait silently for a revision that may never come; a
            # resume point this registry handed out is never past current + 1.
            current = await self._store.revision()
            if start > current + 1:
                raise OutOfRange(
                    f"start_revision: {start} is ahead of the store's current revision {current}; "
                    "resume from the last revision received + 1, or watch again with include_initial"
                )
        if spec.include_initial:
            listed, synced = await self._initial(spec, kinds)
            for chunk in batches(listed, max_count=self._batch_size, max_bytes=self._batch_bytes):
                yield registry_pb2.WatchResponse(events=chunk, revision=synced)
            yield registry_pb2.WatchResponse(
                events=[registry_pb2.WatchEvent(type=registry_pb2.WATCH_EVENT_TYPE_SYNCED, revision=synced)],
                revision=synced,
            )
            start = synced + 1

        queue: asyncio.Queue[registry_pb2.WatchEvent | BaseException] = asyncio.Queue(_QUEUE_SIZE)
        seen = 0  # highest etcd revision the reader has fully handled (matching or not)

        async def read() -> None:
            nonlocal seen
            try:
                async for ev in self._store.watch(self._prefix(spec, kinds), start_revision=start):
                    event = self._convert(ev, spec, kinds)
                    if event is not None:
                        await queue.put(event)
                    seen = max(seen, ev.revision)
                await queue.put(Unavailable("the etcd watch ended; reconnect with start_revision = last + 1"))
            except asyncio.CancelledError:
                raise
            except BaseException as err:  # handed to the consumer, which raises it
                await queue.put(err)

        reader = asyncio.create_task(read(), name="registry-watch-reader")
        closing = asyncio.create_task(self._closing.wait(), name="registry-watch-closing")
        sent = start - 1 if start else 0
        # An event taken from the queue that did not fit the previous response.
        carried: registry_pb2.WatchEvent | None = None
        try:
            while True:
                item: registry_pb2.WatchEvent | BaseException
                if carried is not None:
                    item, carried = carried, None
                else:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        {getter, closing}, timeout=self._progress_interval.total_seconds(),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if closing in done:
                        getter.cancel()
                        raise Unavailable(
                            "the registry is shutting down; reconnect with start_revision = last revision + 1"
                        )
                    if getter not in done:
                        getter.cancel()
                        # Quiet for a while: report progress if filtered-out changes moved the revision.
                        # (The queue is empty and `seen` is read in the same step, so no matching
                        # event at or below `seen` is still pending.)
                        if queue.empty() and seen > sent:
                            sent = seen
                            yield registry_pb2.WatchResponse(revision=seen)
                        continue
                    item = getter.result()
                batch: list[registry_pb2.WatchEvent] = []
                size = _RESPONSE_OVERHEAD
                while True:
                    if isinstance(item, BaseException):
                        if batch:  # deliver what came before the failure first
                            yield registry_pb2.WatchResponse(events=batch, revision=batch[-1].revision)
                        if isinstance(item, SutradharError):
                            raise item
                        raise Unavailable(f"the etcd watch failed ({type(item).__name__}: {item}); reconnect")
                    n = event_size(item)
                    if batch and (len(batch) >= self._batch_size or size + n > self._batch_bytes):
                        carried = item  # starts the next response
                        break
                    batch.append(item)
                    size += n
                    if queue.empty():
                        break
                    item = queue.get_nowait()
                revision = batch[-1].revision
                if carried is not None and carried.revision == revision:
                    # One etcd revision (a transaction) split across responses: this
                    # one covers it only in part, so it reports the one before as
                    # the resume point (resuming there replays the whole transaction).
                    revision -= 1
                sent = max(sent, revision)
                yield registry_pb2.WatchResponse(events=batch, revision=revision)
        finally:
            for task in (reader, closing):
                task.cancel()
            for task in (reader, closing):
                with contextlib.suppress(BaseException):
                    await task
