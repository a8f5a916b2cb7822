"""The AUTHORIZATION stage: may this principal call this method on this namespace.

`Authorization(authorizer)` is a `sutradhar._middleware.Middleware` at
`Stage.AUTHORIZATION`. Composed once per method:

- infrastructure methods (grpc.health.v1, reflection) pass untouched, at no cost;
- a method without an `access.ACCESS` entry is refused on every call (default deny);
- otherwise, per call: the refusal authentication left (`principal.REFUSAL`) is raised
  (UNAUTHENTICATED); else the principal (`principal.current()`), the namespace and name
  read from the request by the method's `MethodAccess`, and the `Authorizer` decides the
  verb and every extra (verb, resource) the request needs. A denial is `PermissionDenied`
  naming principal, verb, resource and namespace.

The decision goes into `access.DECISION` for the AUDIT stage (which wraps this one) and
for servicers: a call the `agent` role allows on an instance named by id only carries
`Decision.owner`, and the servicer must call `require_owner` with the instance's agent
id once it has read it. Nothing here reads etcd: bindings come from the in-memory
`RoleBindingCache`, and a principal's roles are worked out once per bindings snapshot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc

from sutradhar._errors import PermissionDenied
from sutradhar._identity import AGENT
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar.services.common import access, principal
from sutradhar.services.common.access import DECISION, Decision, MethodAccess
from sutradhar.services.common.rbac import Authorizer

__all__ = ["Authorization", "require_owner"]


class Authorization:
    """The AUTHORIZATION middleware over an `Authorizer` and the method table."""

    stage = Stage.AUTHORIZATION

    def __init__(self, authorizer: Authorizer, *, table: dict[str, MethodAccess] | None = None) -> None:
        self._authorizer = authorizer
        self._table = access.ACCESS if table is None else table

    def _decide(self, method: Method, entry: MethodAccess | None, request: Any) -> None:
        refusal = principal.REFUSAL.get()
        if refusal is not None:
            raise refusal
        caller = principal.current()
        if entry is None:
            decision = Decision(False, (
                f"{caller.name} may not call {method.full_name}: the method has no access rule, so it is "
                "refused to everyone (default deny)"))
            DECISION.set(decision)
            raise PermissionDenied(decision.reason)
        namespace = entry.namespace(request) or "default"
        name = entry.name(request)
        check = self._authorizer.check
        decision = check(caller, entry.verb, entry.resource, namespace, name)
        if not decision.allowed and entry.instance_owner and caller.identity.kind == AGENT:
            own = caller.identity.agent_id
            conditional = check(caller, entry.verb, entry.resource, namespace, own)
            if conditional.allowed:
                decision = dataclasses.replace(
                    conditional, name=name, owner=own,
                    reason=f"{conditional.reason}, if instance {name!r} belongs to agent {own!r}")
        if decision.allowed:
            for verb, resource in entry.extra(request):
                more = check(caller, verb, resource, namespace, name)
                if not more.allowed:
                    decision = more
                    break
        DECISION.set(decision)
        if not decision.allowed:
            raise PermissionDenied(decision.reason)

    def unary(self, method: Method, call_next: Unary) -> Unary:
        """`call_next` behind the check (infrastructure methods: `call_next` itself)."""
        if method.infrastructure:
            return call_next
        entry = self._table.get(method.full_name)
        decide = self._decide

        async def authorized(request: Any, context: grpc.aio.ServicerContext) -> Any:
            decide(method, entry, request)
            return await call_next(request, context)

        return authorized

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        """`call_next` behind the check, made before the first response."""
        if method.infrastructure:
            return call_next
        entry = self._table.get(method.full_name)
        decide = self._decide

        async def authorized(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            decide(method, entry, request)
            async for item in call_next(request, context):
                yield item

        return authorized


def require_owner(agent_id: str, *, what: str = "instance") -> None:
    """In a servicer, after reading the object a call names: refuse the call when
    authorization allowed it only for another agent's objects (`Decision.owner`)."""
    decision = DECISION.get()
    if decision is None or not decision.owner or decision.owner == agent_id:
        return
    caller = principal.current_or_none()
    who = caller.name if caller is not None else "the caller"
    raise PermissionDenied(
        f"{who} may not {decision.verb} {what} {decision.name!r} in namespace {decision.namespace}: "
        f"it belongs to another agent, and agent identities may only act on their own agent's instances"
    )
