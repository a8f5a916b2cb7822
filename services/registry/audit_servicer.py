"""The gRPC surface of the audit log (sutradhar.v1.AuditService), hosted by the registry.

Thin: decode the filter, call `AuditLog`, encode. Who may read is for
authorization (the verb ``read`` on the resource ``audit``); this servicer
checks nothing itself. Nothing here writes: records come from the AUDIT
stage of every server's middleware chain (`services/common/audit_middleware.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from sutradhar._hosting import GrpcHost
from sutradhar.services.common.audit import AuditLog
from sutradhar.services.common.audit_records import AuditFilter
from sutradhar.v1 import audit_pb2 as pb
from sutradhar.v1 import audit_pb2_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AuditService"].full_name


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """sutradhar.v1.AuditService over an `AuditLog`."""

    def __init__(self, audit_log: AuditLog) -> None:
        self._log = audit_log

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        page = await self._log.list(
            AuditFilter.from_proto(request.filter), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAuditEventsResponse(events=page.events, next_page_token=page.next_page_token)

    async def WatchAuditEvents(
        self, request: pb.WatchAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchAuditEventsResponse]:
        flt = AuditFilter.from_proto(request.filter)
        async for batch in self._log.follow(flt, include_initial=request.include_initial):
            yield pb.WatchAuditEventsResponse(events=batch.events, synced=batch.synced)


def add_audit_service(host: GrpcHost, audit_log: AuditLog) -> AuditServicer:
    """Serve AuditService over `audit_log` on `host` (through its chain). Name
    `SERVICE_NAME` in the host's `service_names` too, for reflection and health."""
    servicer = AuditServicer(audit_log)
    host.add_servicer(audit_pb2_grpc.add_AuditServiceServicer_to_server, servicer)
    return servicer


__all__ = ["SERVICE_NAME", "AuditServicer", "add_audit_service"]
