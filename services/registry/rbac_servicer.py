"""The gRPC surface of RoleBindings (sutradhar.v1.RbacService), hosted by the registry.

Thin: decode, check, call `RoleBindingStore`, encode. Bad input is INVALID_ARGUMENT
naming the field (an unknown role lists the roles); writing a binding of a role the
writer does not wholly hold in that namespace is PERMISSION_DENIED naming the role and
what the writer lacks (`Authorizer.can_grant`: nobody can grant more than they hold).
Whether the caller may write bindings at all is the AUTHORIZATION stage's decision
(`update`/`create` on `rolebindings`), made before the servicer runs.

`ReviewAccess` is Kubernetes' SubjectAccessReview for agents that callers reach directly
(a `DirectClient`): the agent asks whether the caller whose certificate it holds may
`execute` it, and the `Authorizer` answers with the very check the router makes for
RouterService/Execute (`Authorizer.check(caller, "execute", "agents", namespace, agent_id)`).
Only an agent identity may ask, and only about itself: AUTHORIZATION allows `create
accessreviews` to role `agent` for its own agent id in its own namespace, and the servicer
refuses every other kind of caller (an admin, who holds "*", included). A denied review
leaves one audit record, as the router's denial of the same call would: the reviewed
principal, the asking agent as `peer`, verb, resource, namespace, name and reason.

Wiring (in `RegistryServer`)::

    bindings = RoleBindingStore(store)
    add_rbac_service(host, bindings, authorizer, audit_log)   # and RBAC_SERVICE_NAME in service_names
"""

from __future__ import annotations

import logging

import grpc

from sutradhar._errors import InvalidArgument, PermissionDenied, SutradharError
from sutradhar._hosting import GrpcHost
from sutradhar._identity import AGENT, SpiffeId
from sutradhar.services.common import audit_records, principal, rbac
from sutradhar.services.common.access import Decision
from sutradhar.services.common.audit import AuditLog, timestamp
from sutradhar.services.common.audit_middleware import request_id_of
from sutradhar.services.common.keys import namespace_or_default
from sutradhar.services.common.rbac import Authorizer
from sutradhar.services.common.rolebindings import RoleBindingStore, validate_binding
from sutradhar.v1 import agent_pb2, audit_pb2, rbac_pb2_grpc
from sutradhar.v1 import rbac_pb2 as pb

log = logging.getLogger(__name__)

__all__ = ["RBAC_SERVICE_NAME", "RbacServicer", "add_rbac_service", "role_to_proto"]

RBAC_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RbacService"].full_name
#: The call a reviewed decision is about (what its audit record names as the method).
REVIEWED_METHOD = f"/{agent_pb2.DESCRIPTOR.services_by_name['AgentService'].full_name}/Execute"


def role_to_proto(role: rbac.Role) -> pb.Role:
    """A built-in role as the API shows it."""
    return pb.Role(
        name=role.name,
        rules=[pb.Rule(verbs=list(r.verbs), resources=list(r.resources), resource_names=list(r.resource_names))
               for r in role.rules],
        cluster_scoped=role.cluster_scoped,
        description=role.description,
        implicit_only=role.name in rbac.IMPLICIT_ONLY_ROLES,
    )


class RbacServicer(rbac_pb2_grpc.RbacServiceServicer):
    """sutradhar.v1.RbacService over a `RoleBindingStore` and the `Authorizer`."""

    def __init__(self, bindings: RoleBindingStore, authorizer: Authorizer, audit_log: AuditLog) -> None:
        self._bindings = bindings
        self._authorizer = authorizer
        self._audit_log = audit_log

    async def ApplyRoleBinding(
        self, request: pb.ApplyRoleBindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyRoleBindingResponse:
        if not request.HasField("binding"):
            raise InvalidArgument("binding: is required", field="binding")
        binding = request.binding
        validate_binding(binding)
        writer = principal.current()
        grant = self._authorizer.can_grant(writer, binding.role, binding.namespace)
        if not grant.allowed:
            raise PermissionDenied(grant.reason)
        stored, created = await self._bindings.apply(binding, created_by=writer.name)
        return pb.ApplyRoleBindingResponse(binding=stored, created=created)

    async def GetRoleBinding(
        self, request: pb.GetRoleBindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRoleBindingResponse:
        return pb.GetRoleBindingResponse(binding=await self._bindings.get(request.namespace, request.name))

    async def ListRoleBindings(
        self, request: pb.ListRoleBindingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRoleBindingsResponse:
        found, revision = await self._bindings.list(request.namespace)
        return pb.ListRoleBindingsResponse(bindings=found, revision=revision)

    async def DeleteRoleBinding(
        self, request: pb.DeleteRoleBindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteRoleBindingResponse:
        return pb.DeleteRoleBindingResponse(binding=await self._bindings.delete(request.namespace, request.name))

    async def ListRoles(
        self, request: pb.ListRolesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRolesResponse:
        return pb.ListRolesResponse(roles=[role_to_proto(r) for r in rbac.BUILTIN_ROLES.values()])

    async def ReviewAccess(
        self, request: pb.ReviewAccessRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReviewAccessResponse:
        asker = principal.current()
        namespace = namespace_or_default(request.namespace)
        own = asker.identity.agent_id if asker.identity.kind == AGENT else ""
        if not own or asker.identity.namespace != namespace or own != request.name:
            raise PermissionDenied(
                f"{asker.name} may not review access to agents {request.name!r} in namespace {namespace}: only an "
                "agent asks, about calls to itself (its certificate's namespace and agent id)")
        if (request.verb, request.resource) != (rbac.EXECUTE, rbac.AGENTS):
            raise InvalidArgument(
                f"only verb {rbac.EXECUTE!r} on resource {rbac.AGENTS!r} is reviewed, not "
                f"{request.verb!r} on {request.resource!r}", field="verb")
        try:
            caller = SpiffeId.parse(request.principal)
        except InvalidArgument as err:
            raise InvalidArgument(f"principal: {err.message}", field="principal") from None
        reviewed = principal.Principal(identity=caller, via=principal.CERTIFICATE, peer=caller)
        decision = self._authorizer.check(reviewed, rbac.EXECUTE, rbac.AGENTS, namespace, request.name)
        if not decision.allowed:
            await self._audit_denial(decision, reviewed, asker, context)
        return pb.ReviewAccessResponse(allowed=decision.allowed, reason=decision.reason)

    async def _audit_denial(self, decision: Decision, reviewed: principal.Principal, asker: principal.Principal,
                            context: grpc.aio.ServicerContext) -> None:
        """The one record of a denied direct call, as the router writes for a denied Execute."""
        audit_log = self._audit_log
        now = audit_log.now()
        event = audit_pb2.AuditEvent(
            audit_id=audit_log.new_id(now), request_received_time=timestamp(now), method=REVIEWED_METHOD,
            request_id=request_id_of(context), principal=reviewed.name, peer=str(asker.identity),
            source=asker.source or str(context.peer() or ""), verb=decision.verb, resource=decision.resource,
            namespace=decision.namespace, name=decision.name, stage=audit_pb2.AUDIT_STAGE_RESPONSE_COMPLETE,
            decision=audit_pb2.AUDIT_DECISION_DENY, reason=audit_records.cut(decision.reason),
            status_code=grpc.StatusCode.PERMISSION_DENIED.name, status_message=audit_records.cut(decision.reason),
        )
        try:
            await audit_log.append(event)
        except SutradharError as err:  # the call is refused anyway, as for every denial
            log.error("AUDIT RECORD LOST: the denial of a direct call to agent %s/%s to %r (reviewed for %s) could "
                      "not be written: %s", decision.namespace, decision.name, reviewed.name, asker.identity, err)


def add_rbac_service(
    host: GrpcHost, bindings: RoleBindingStore, authorizer: Authorizer, audit_log: AuditLog
) -> RbacServicer:
    """Register RbacService on `host` (through its middleware chain) and return the servicer."""
    servicer = RbacServicer(bindings, authorizer, audit_log)
    host.add_servicer(rbac_pb2_grpc.add_RbacServiceServicer_to_server, servicer)
    return servicer
