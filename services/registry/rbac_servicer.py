"""The gRPC surface of RoleBindings (sutradhar.v1.RbacService), hosted by the registry.

Thin: decode, check, call `RoleBindingStore`, encode. Bad input is INVALID_ARGUMENT
naming the field (an unknown role lists the roles); writing a binding of a role the
writer does not wholly hold in that namespace is PERMISSION_DENIED naming the role and
what the writer lacks (`Authorizer.can_grant`: nobody can grant more than they hold).
Whether the caller may write bindings at all is the AUTHORIZATION stage's decision
(`update`/`create` on `rolebindings`), made before the servicer runs.

Wiring (in `RegistryServer`)::

    bindings = RoleBindingStore(store)
    add_rbac_service(host, bindings, authorizer)   # and RBAC_SERVICE_NAME in service_names
"""

from __future__ import annotations

import grpc

from sutradhar._errors import InvalidArgument, PermissionDenied
from sutradhar._hosting import GrpcHost
from sutradhar.services.common import principal, rbac
from sutradhar.services.common.rbac import Authorizer
from sutradhar.services.common.rolebindings import RoleBindingStore, validate_binding
from sutradhar.v1 import rbac_pb2 as pb
from sutradhar.v1 import rbac_pb2_grpc

__all__ = ["RBAC_SERVICE_NAME", "RbacServicer", "add_rbac_service", "role_to_proto"]

RBAC_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RbacService"].full_name


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

    def __init__(self, bindings: RoleBindingStore, authorizer: Authorizer) -> None:
        self._bindings = bindings
        self._authorizer = authorizer

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


def add_rbac_service(host: GrpcHost, bindings: RoleBindingStore, authorizer: Authorizer) -> RbacServicer:
    """Register RbacService on `host` (through its middleware chain) and return the servicer."""
    servicer = RbacServicer(bindings, authorizer)
    host.add_servicer(rbac_pb2_grpc.add_RbacServiceServicer_to_server, servicer)
    return servicer
