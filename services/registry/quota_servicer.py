"""The gRPC surface of ResourceQuotas (sutradhar.v1.QuotaService), hosted by the registry.

Thin: decode, call `QuotaStore`, encode. Bad input is INVALID_ARGUMENT naming the
field (an unknown resource lists the valid ones). Who may write quotas is the
AUTHORIZATION stage's decision (`update`/`create` on `resourcequotas`: cluster-admin
only, so a namespace admin cannot raise its own quota), made before the servicer runs.
Get and List fill `status.used` from what the namespace holds now.

Wiring (in `RegistryServer`, secure or not: quotas bound an insecure mesh too)::

    add_quota_service(host, QuotaStore(store))   # and QUOTA_SERVICE_NAME in service_names
"""

from __future__ import annotations

import grpc

from sutradhar._errors import InvalidArgument
from sutradhar._hosting import GrpcHost
from sutradhar.services.common import principal
from sutradhar.services.common.quota_store import QuotaStore
from sutradhar.v1 import quota_pb2 as pb
from sutradhar.v1 import quota_pb2_grpc

__all__ = ["QUOTA_SERVICE_NAME", "QuotaServicer", "add_quota_service"]

QUOTA_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QuotaService"].full_name


class QuotaServicer(quota_pb2_grpc.QuotaServiceServicer):
    """sutradhar.v1.QuotaService over a `QuotaStore`."""

    def __init__(self, quotas: QuotaStore) -> None:
        self._quotas = quotas

    async def ApplyQuota(
        self, request: pb.ApplyQuotaRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyQuotaResponse:
        if not request.HasField("quota"):
            raise InvalidArgument("quota: is required", field="quota")
        stored, created = await self._quotas.apply(request.quota, created_by=principal.current().name)
        return pb.ApplyQuotaResponse(quota=stored, created=created)

    async def GetQuota(self, request: pb.GetQuotaRequest, context: grpc.aio.ServicerContext) -> pb.GetQuotaResponse:
        return pb.GetQuotaResponse(quota=await self._quotas.get(request.namespace, request.name))

    async def ListQuotas(
        self, request: pb.ListQuotasRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListQuotasResponse:
        found, revision = await self._quotas.list(request.namespace)
        return pb.ListQuotasResponse(quotas=found, revision=revision)

    async def DeleteQuota(
        self, request: pb.DeleteQuotaRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteQuotaResponse:
        return pb.DeleteQuotaResponse(quota=await self._quotas.delete(request.namespace, request.name))


def add_quota_service(host: GrpcHost, quotas: QuotaStore) -> QuotaServicer:
    """Register QuotaService on `host` (through its middleware chain) and return the servicer."""
    servicer = QuotaServicer(quotas)
    host.add_servicer(quota_pb2_grpc.add_QuotaServiceServicer_to_server, servicer)
    return servicer
