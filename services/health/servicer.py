"""The HealthService gRPC servicer: decode, call the manager, encode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from sutradhar._errors import ResourceExhausted
from sutradhar._names import ALL_NAMESPACES, validate_dns_label, validate_instance_id, validate_namespace
from sutradhar.v1 import health_pb2, health_pb2_grpc

from ..common import keys
from .manager import HealthManager


def _namespace(value: str, *, allow_all: bool = False) -> str:
    validate_namespace(value, allow_all=allow_all)
    return value if allow_all and value == ALL_NAMESPACES else keys.namespace_or_default(value)


def _agent_id(value: str) -> str:
    validate_dns_label(value, field="agent_id", what="agent id")
    return value


def _instance_id(value: str) -> str:
    validate_instance_id(value, field="instance_id")
    return value


class HealthServicer(health_pb2_grpc.HealthServiceServicer):
    """Thin adapter from gRPC to `HealthManager`."""

    def __init__(self, manager: HealthManager) -> None:
        self.manager = manager

    async def GetAgentHealth(
        self, request: health_pb2.GetAgentHealthRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.GetAgentHealthResponse:
        health = await self.manager.agent_health(
            _namespace(request.namespace), _agent_id(request.agent_id)
        )
        return health_pb2.GetAgentHealthResponse(health=health)

    async def ListAgentHealth(
        self, request: health_pb2.ListAgentHealthRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.ListAgentHealthResponse:
        agents = await self.manager.list_agent_health(
            _namespace(request.namespace, allow_all=True), include_instances=request.include_instances
        )
        return health_pb2.ListAgentHealthResponse(agents=agents)

    async def GetInstanceHealth(
        self, request: health_pb2.GetInstanceHealthRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.GetInstanceHealthResponse:
        inst = await self.manager.get_instance(
            _namespace(request.namespace), _instance_id(request.instance_id)
        )
        return health_pb2.GetInstanceHealthResponse(instance=inst)

    async def DrainInstance(
        self, request: health_pb2.DrainInstanceRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.DrainInstanceResponse:
        inst = await self.manager.set_drained(
            _namespace(request.namespace), _instance_id(request.instance_id), True
        )
        return health_pb2.DrainInstanceResponse(instance=inst)

    async def EnableInstance(
        self, request: health_pb2.EnableInstanceRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.EnableInstanceResponse:
        inst = await self.manager.set_drained(
            _namespace(request.namespace), _instance_id(request.instance_id), False
        )
        return health_pb2.EnableInstanceResponse(instance=inst)

    async def WatchHealth(
        self, request: health_pb2.WatchHealthRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.WatchHealthResponse]:
        namespace = _namespace(request.namespace, allow_all=True)
        if request.agent_id:
            _agent_id(request.agent_id)
        bus = self.manager.bus
        sub = bus.subscribe(namespace, request.agent_id)
        try:
            if request.include_current:
                await self.manager.synced.wait()
                # Subscribed before the snapshot, on one event loop with no
                # await in between: nothing falls between the two.
                snapshot = self.manager.current(namespace, request.agent_id)
                for ev in snapshot:
                    yield health_pb2.WatchHealthResponse(event=ev)
                yield health_pb2.WatchHealthResponse(
                    event=health_pb2.HealthEvent(type=health_pb2.HEALTH_EVENT_TYPE_SYNCED)
                )
            while True:
                try:
                    async with asyncio.timeout(1.0):  # not wait_for: on 3.11 it can swallow the call's cancel
                        ev = await sub.queue.get()
                except TimeoutError:
                    if sub.overflowed:
                        raise ResourceExhausted(
                            "this watcher fell more than 10,000 events behind; watch again with include_current"
                        ) from None
                    continue
                yield health_pb2.WatchHealthResponse(event=ev)
        finally:
            bus.unsubscribe(sub)

    async def ListMembers(
        self, request: health_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.ListMembersResponse:
        membership = self.manager.membership
        loads = self.manager.member_loads()
        out = health_pb2.ListMembersResponse(answered_by=membership.member_id)
        for member_id in membership.live():
            info = membership.members.get(member_id, {})
            member = health_pb2.HealthMember(
                id=member_id, address=info.get("address", ""), instances=loads.get(member_id, 0)
            )
            if info.get("join_time"):
                member.join_time.FromJsonString(info["join_time"].replace("+00:00", "Z"))
            out.members.append(member)
        return out
