"""RateLimit objects in etcd, and their gRPC surface (sutradhar.v1.RateLimitService).

`rate_limit_store` creates, replaces, reads, lists and deletes RateLimits under
``/sutradhar/v1/ratelimits/<namespace>/<name>`` (`objects.NamespacedObjects`: writes
compare the key's mod revision; a stale `resource_version` is `Conflict`, ABORTED). Bad
input is INVALID_ARGUMENT naming the field (`ratelimit_spec.validate_rate_limit`). Who may
write them is the AUTHORIZATION stage's decision (only a cluster-admin: `update`/`create`
on `ratelimits`).

Routers do not call this service: they learn RateLimits through the registry's
`Watch` (`RESOURCE_KIND_RATE_LIMIT`), as they learn agents.

Wiring (in `RegistryServer`, secured or not)::

    add_ratelimit_service(host, rate_limit_store(store))   # and RATELIMIT_SERVICE_NAME in service_names
"""

from __future__ import annotations

from typing import Final, TypeAlias

import grpc

from sutradhar._errors import InvalidArgument
from sutradhar._hosting import GrpcHost
from sutradhar._ratelimit_spec import validate_rate_limit
from sutradhar.services.common import keys, principal
from sutradhar.services.common.objects import NamespacedObjects
from sutradhar.services.common.store import Store
from sutradhar.v1 import ratelimit_pb2 as pb
from sutradhar.v1 import ratelimit_pb2_grpc

__all__ = ["RATELIMIT_SERVICE_NAME", "RateLimitServicer", "RateLimitStore", "add_ratelimit_service",
           "rate_limit_store"]

RATELIMIT_SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["RateLimitService"].full_name

RateLimitStore: TypeAlias = NamespacedObjects[pb.RateLimit]
"""RateLimits in etcd."""


def rate_limit_store(store: Store) -> RateLimitStore:
    """The RateLimits of `store`, checked by `validate_rate_limit` on apply."""
    return NamespacedObjects(store, kind=keys.RATELIMITS, message=pb.RateLimit, what="rate limit", field="rate_limit",
                             validate=validate_rate_limit,
                             not_found_hint="; list them with `sutradhar ratelimits -n NAMESPACE`")


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
