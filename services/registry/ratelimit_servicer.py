"""RateLimit objects in etcd, and their gRPC surface (sutradhar.v1.RateLimitService).

`RateLimitStore` creates, replaces, reads, lists and deletes RateLimits under
``/sutradhar/v1/ratelimits/<namespace>/<name>``; writes compare the key's mod
revision (a stale `resource_version` is `Conflict`, ABORTED; without one, a lost
race is tried again). Bad input is INVALID_ARGUMENT naming the field
(`ratelimit_spec.validate_rate_limit`). Who may write them is the AUTHORIZATION
stage's decision (only a cluster-admin: `update`/`create` on `ratelimits`).

Routers do not call this service: they learn RateLimits through the registry's
`Watch` (`RESOURCE_KIND_RATE_LIMIT`), as they learn agents.

Wiring (in `RegistryServer`, secured or not)::

    add_ratelimit_service(host, RateLimitStore(store))   # and RATELIMIT_SERVICE_NAME in service_names
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import grpc

from sutradhar._errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from sutradhar._hosting import GrpcHost
from sutradhar._names import validate_dns_label, validate_namespace
from sutradhar.services.common import keys, principal
from sutradhar.services.common.ratelimit_spec import validate_rate_limit
from sutradhar.services.common.store import Guard, KeyValue, Op, Store
from sutradhar.v1 import ratelimit_pb2 as pb
from sutradhar.v1 import ratelimit_pb2_grpc

__all__ = ["RATELIMIT_SERVICE_NAME", "RateLimitServicer", "RateLimitStore", "add_ratelimit_service"]

RATELIMIT_SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["RateLimitService"].full_name
#: How often a write is tried again when a concurrent writer wins (no resource_version given).
_CAS_ATTEMPTS: Final = 8


def _describe(namespace: str, name: str) -> str:
    return f'rate limit "{name}" in namespace "{keys.namespace_or_default(namespace)}"'


def from_kv(kv: KeyValue) -> pb.RateLimit:
    """A stored RateLimit with its resource_version."""
    limit = keys.decode(kv.value, pb.RateLimit)
    limit.resource_version = kv.mod_revision
    return limit


class RateLimitStore:
    """RateLimits in etcd (no state of its own; safe across registry replicas)."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._clock = clock

    async def apply(self, limit: pb.RateLimit, *, created_by: str) -> tuple[pb.RateLimit, bool]:
        """Create `limit` or replace its spec; (stored, created)."""
        validate_rate_limit(limit)
        expected = limit.resource_version
        namespace = keys.namespace_or_default(limit.namespace)
        key = keys.ratelimit_key(namespace, limit.name)
        for attempt in range(_CAS_ATTEMPTS):
            current = await self._store.get(key)
            out = pb.RateLimit(namespace=namespace, name=limit.name, shared=limit.shared, created_by=created_by)
            for field in ("namespace_limit", "per_caller"):
                if limit.HasField(field):
                    getattr(out, field).CopyFrom(getattr(limit, field))
            if current is None:
                if expected:
                    raise Conflict(f"{_describe(namespace, limit.name)} no longer exists "
                                   f"(resource_version {expected} is stale)", field="rate_limit.resource_version")
                out.create_time.FromDatetime(self._clock())
                guard = Guard(key, 0)
            else:
                if expected and expected != current.mod_revision:
                    raise Conflict(f"{_describe(namespace, limit.name)} changed since resource_version {expected} "
                                   f"(now {current.mod_revision}); read it again and retry",
                                   field="rate_limit.resource_version")
                out.create_time.CopyFrom(from_kv(current).create_time)
                guard = Guard(key, current.mod_revision)
            try:
                out.resource_version = await self._store.commit([guard], [Op(key, keys.encode(out))])
            except (AlreadyExists, NotFound, Conflict) as err:
                if expected or attempt == _CAS_ATTEMPTS - 1:
                    raise Conflict(f"{_describe(namespace, limit.name)} changed concurrently: {err}") from err
                continue
            return out, current is None
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, namespace: str, name: str) -> pb.RateLimit:
        """One RateLimit; NotFound when missing."""
        validate_namespace(namespace)
        validate_dns_label(name, field="name", what="rate limit name")
        kv = await self._store.get(keys.ratelimit_key(namespace, name))
        if kv is None:
            raise NotFound(f"{_describe(namespace, name)} not found; list them with "
                           f"`sutradhar ratelimits -n {keys.namespace_or_default(namespace)}`", field="name")
        return from_kv(kv)

    async def list(self, namespace: str) -> tuple[builtins.list[pb.RateLimit], int]:
        """RateLimits of `namespace` ("*": all), sorted by namespace and name, and the read revision."""
        validate_namespace(namespace, allow_all=True)
        kvs, revision = await self._store.list(keys.kind_prefix(keys.RATELIMITS, namespace))
        return sorted((from_kv(kv) for kv in kvs), key=lambda r: (r.namespace, r.name)), revision

    async def delete(self, namespace: str, name: str) -> pb.RateLimit:
        """Delete a RateLimit and return it; NotFound when missing."""
        key = keys.ratelimit_key(namespace, name)
        for attempt in range(_CAS_ATTEMPTS):
            current = await self.get(namespace, name)
            try:
                await self._store.commit([Guard(key, current.resource_version)], [Op(key)])
            except (NotFound, Conflict):
                if attempt == _CAS_ATTEMPTS - 1:
                    raise
                continue
            return current
        raise AssertionError("unreachable")  # pragma: no cover


class RateLimitServicer(ratelimit_pb2_grpc.RateLimitServiceServicer):
    """sutradhar.v1.RateLimitService over a `RateLimitStore`."""

    def __init__(self, limits: RateLimitStore) -> None:
        self._limits = limits

    async def ApplyRateLimit(
        self, request: pb.ApplyRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyRateLimitResponse:
        if not request.HasField("rate_limit"):
            raise InvalidArgument("rate_limit: is required", field="rate_limit")
        stored, created = await self._limits.apply(request.rate_limit, created_by=principal.current().name)
        return pb.ApplyRateLimitResponse(rate_limit=stored, created=created)

    async def GetRateLimit(
        self, request: pb.GetRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRateLimitResponse:
        return pb.GetRateLimitResponse(rate_limit=await self._limits.get(request.namespace, request.name))

    async def ListRateLimits(
        self, request: pb.ListRateLimitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRateLimitsResponse:
        found, revision = await self._limits.list(request.namespace)
        return pb.ListRateLimitsResponse(rate_limits=found, revision=revision)

    async def DeleteRateLimit(
        self, request: pb.DeleteRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteRateLimitResponse:
        return pb.DeleteRateLimitResponse(rate_limit=await self._limits.delete(request.namespace, request.name))


def add_ratelimit_service(host: GrpcHost, limits: RateLimitStore) -> RateLimitServicer:
    """Register RateLimitService on `host` (through its middleware chain) and return the servicer."""
    servicer = RateLimitServicer(limits)
    host.add_servicer(ratelimit_pb2_grpc.add_RateLimitServiceServicer_to_server, servicer)
    return servicer
