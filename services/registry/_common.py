"""Helpers shared by the registry's domain classes: clocks, codecs, retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf import timestamp_pb2

from sutradhar._errors import Conflict
from sutradhar.services.common import keys
from sutradhar.services.common.store import KeyValue
from sutradhar.v1 import registry_pb2

T = TypeVar("T")

Clock = Callable[[], datetime]
"""Returns the current wall-clock time (UTC); injected so tests can pin it."""

#: How often a read-modify-write is retried when a concurrent writer wins.
CAS_ATTEMPTS = 8


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def timestamp(now: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp for `now`."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(now)
    return out


def describe(kind: str, namespace: str, name: str) -> str:
    """How messages name an object: 'agent "echo" in namespace "default"'."""
    return f'{kind} "{name}" in namespace "{keys.namespace_or_default(namespace)}"'


def agent_from_kv(kv: KeyValue) -> registry_pb2.Agent:
    """Decode a stored agent and set its resource_version from etcd."""
    agent = keys.decode(kv.value, registry_pb2.Agent)
    agent.resource_version = kv.mod_revision
    return agent


def instance_from_kv(kv: KeyValue) -> registry_pb2.Instance:
    """Decode a stored instance and set its resource_version from etcd."""
    instance = keys.decode(kv.value, registry_pb2.Instance)
    instance.resource_version = kv.mod_revision
    return instance


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], *, attempts: int = CAS_ATTEMPTS) -> T:
    """Run a read-modify-write `attempt` again while it loses a race (Conflict).

    The last Conflict propagates (ABORTED) when every attempt lost.
    """
    for _ in range(attempts - 1):
        try:
            return await attempt()
        except Conflict:
            continue
    return await attempt()
