"""The gRPC surface of the registry: decode the request, call the domain, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from sutradhar._errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES
from sutradhar._identity import AGENT
from sutradhar._values import to_duration
from sutradhar.services.common import access, principal
from sutradhar.services.common.authorization import require_owner
from sutradhar.services.registry.agents import AgentFilter, Agents
from sutradhar.services.registry.instance_identity import check_instance_identity, validate_instance_identity
from sutradhar.services.registry.instances import InstanceFilter, Instances
from sutradhar.services.registry.load_reports import LoadReports
from sutradhar.services.registry.watch import Watcher, WatchSpec
from sutradhar.v1 import registry_pb2 as pb
from sutradhar.v1 import registry_pb2_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name


def _require(request: object, field: str) -> None:
    if not request.HasField(field):  # type: ignore[attr-defined]
        raise InvalidArgument(f"{field}: is required", field=field)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def check_list_size(response: pb.ListAgentsResponse | pb.ListInstancesResponse, *, limit: int) -> None:
    """ResourceExhausted, naming the size, the limit and a narrower filter,
    when `response` would not fit one gRPC message of `limit` bytes.

    The List RPCs have no pagination fields, so an oversized answer cannot be
    split; without this check gRPC itself fails the call with a bare
    "Sent message larger than max".
    """
    size = response.ByteSize()
    if size <= limit:
        return
    if isinstance(response, pb.ListAgentsResponse):
        rpc, what, count = "ListAgents", "agents", len(response.agents)
        narrower = 'one namespace instead of "*", type, capabilities, label_selector, version_range or runtime'
    else:
        rpc, what, count = "ListInstances", "instances", len(response.instances)
        narrower = 'one namespace instead of "*", agent_id, state or label_selector'
    raise ResourceExhausted(
        f"{rpc}: the {count} matching {what} take {size} bytes ({_mib(size)}), more than the registry's "
        f"maximum message size of {limit} bytes ({_mib(limit)}); narrow the filter ({narrower}), "
        "or use Watch with include_initial, which sends every object in batches"
    )


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    """sutradhar.v1.RegistryService over the domain classes."""

    def __init__(
        self,
        agents: Agents,
        instances: Instances,
        watcher: Watcher,
        loads: LoadReports,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        secured: bool = False,
    ) -> None:
        self._loads = loads
        self._max_message_bytes = max_message_bytes
        self._agents = agents
        self._instances = instances
        self._watcher = watcher
        self._secured = secured

    async def _own_instance(self, namespace: str, instance_id: str) -> None:
        """For a caller that authorization allowed only its own agent's instances
        (`Decision.owner`): PermissionDenied unless instance `instance_id` is its agent's."""
        decision = access.DECISION.get()
        if decision is None or not decision.owner:
            return
        require_owner((await self._instances.get(namespace, instance_id)).agent_id)

    async def _no_takeover(self, instance: pb.Instance) -> None:
        """An agent identity may not register over another agent's instance id (which would
        take that instance's place)."""
        if not self._secured or not instance.id:
            return
        caller = principal.current()
        if caller.identity.kind != AGENT:
            return
        try:
            existing = await self._instances.get(instance.namespace, instance.id)
        except NotFound:
            return
        if existing.agent_id != instance.agent_id:
            raise PermissionDenied(
                f"{caller.name} may not register instance {instance.id!r} in namespace "
                f"{existing.namespace or 'default'}: that id belongs to agent {existing.agent_id!r}, "
                "and agent identities may only register their own agent's instances; choose another instance id"
            )

    def _bind_identity(self, instance: pb.Instance) -> None:
        """Which identity the registered endpoint must present: the caller's own when an agent
        registers itself without naming one; `check_instance_identity` says who may bind which."""
        if not self._secured:
            return
        caller = principal.current().identity
        if not instance.identity and caller.kind == AGENT:
            instance.identity = str(caller)
        validate_instance_identity(instance, trust_domain=caller.trust_domain)  # a bad value first: INVALID_ARGUMENT
        check_instance_identity(caller, instance)

    async def RegisterAgent(
        self, request: pb.RegisterAgentRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterAgentResponse:
        _require(request, "agent")
        return pb.RegisterAgentResponse(agent=await self._agents.register(request.agent))

    async def UpdateAgent(
        self, request: pb.UpdateAgentRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateAgentResponse:
        _require(request, "agent")
        agent = await self._agents.update(request.agent, allow_missing=request.allow_missing)
        return pb.UpdateAgentResponse(agent=agent)

    async def GetAgent(self, request: pb.GetAgentRequest, context: grpc.aio.ServicerContext) -> pb.GetAgentResponse:
        return pb.GetAgentResponse(agent=await self._agents.get(request.namespace, request.id))

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentsResponse:
        found = await self._agents.list(AgentFilter.from_request(request))
        response = pb.ListAgentsResponse(agents=found.agents, revision=found.revision)
        check_list_size(response, limit=self._max_message_bytes)
        return response

    async def DeregisterAgent(
        self, request: pb.DeregisterAgentRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeregisterAgentResponse:
        agent = await self._agents.deregister(request.namespace, request.id, force=request.force)
        return pb.DeregisterAgentResponse(agent=agent)

    async def RegisterInstance(
        self, request: pb.RegisterInstanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterInstanceResponse:
        _require(request, "instance")
        ttl = request.ttl if request.HasField("ttl") else None
        self._bind_identity(request.instance)
        await self._no_takeover(request.instance)
        instance = await self._instances.register(request.instance, ttl=ttl, replace=request.replace)
        return pb.RegisterInstanceResponse(instance=instance)

    async def KeepAliveInstance(
        self, request: pb.KeepAliveInstanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.KeepAliveInstanceResponse:
        await self._own_instance(request.namespace, request.id)
        ttl = await self._instances.keep_alive(request.namespace, request.id, request.lease_id)
        return pb.KeepAliveInstanceResponse(ttl=to_duration(ttl))

    async def UpdateInstanceState(
        self, request: pb.UpdateInstanceStateRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateInstanceStateResponse:
        await self._own_instance(request.namespace, request.id)
        instance = await self._instances.update_state(request.namespace, request.id, request.state)
        return pb.UpdateInstanceStateResponse(instance=instance)

    async def GetInstance(
        self, request: pb.GetInstanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInstanceResponse:
        return pb.GetInstanceResponse(instance=await self._instances.get(request.namespace, request.id))

    async def ListInstances(
        self, request: pb.ListInstancesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInstancesResponse:
        found = await self._instances.list(InstanceFilter.from_request(request))
        response = pb.ListInstancesResponse(instances=found.instances, revision=found.revision)
        check_list_size(response, limit=self._max_message_bytes)
        return response

    async def DeregisterInstance(
        self, request: pb.DeregisterInstanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeregisterInstanceResponse:
        await self._own_instance(request.namespace, request.id)
        await self._instances.deregister(request.namespace, request.id)
        return pb.DeregisterInstanceResponse()

    async def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchResponse]:
        async for response in self._watcher.stream(WatchSpec.from_request(request)):
            yield response

    async def ReportLoad(
        self, request: pb.ReportLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportLoadResponse:
        return await self._loads.report(request)
