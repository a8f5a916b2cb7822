"""sutradhar.v1.TokenService: mint, revoke and list bearer tokens (hosted by the registry).

Who may call which method is authorization's business (verbs create, delete
and list on resource ``tokens``, from the method access table). This servicer
adds the one check authorization cannot make from the method alone: nobody
can grant more than they hold, asked of a `GrantCheck` (the RBAC authorizer's
``can_grant``) for the role and namespace the token would carry.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta
from typing import Final, Protocol

import grpc

from sutradhar._errors import InvalidArgument, PermissionDenied
from sutradhar._hosting import GrpcHost
from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId
from sutradhar._names import ALL_NAMESPACES, validate_dns_label, validate_namespace
from sutradhar.services.common import keys, principal
from sutradhar.services.common.principal import Principal
from sutradhar.services.common.store import Store
from sutradhar.services.common.token_records import TokenRecords, storage_namespace
from sutradhar.services.common.tokens import Clock, TokenIssuer, new_token_id, utc_now
from sutradhar.v1 import tokens_pb2 as pb
from sutradhar.v1 import tokens_pb2_grpc

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["TokenService"].full_name

#: A token's lifetime unless the request says otherwise.
DEFAULT_TTL: Final = timedelta(hours=1)
#: The longest lifetime a token may be given.
MAX_TTL: Final = timedelta(days=30)
#: The role of an agent's bootstrap token.
AGENT_ROLE: Final = "agent"
#: Longest description kept in a record.
MAX_DESCRIPTION: Final = 1024


class GrantDecision(Protocol):
    """What `GrantCheck.can_grant` answers (the authorizer's Decision)."""

    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class GrantCheck(Protocol):
    """May `principal` hand out `role` in `namespace`? (RBAC: only a role it holds there.)"""

    def can_grant(
        self, principal: Principal, role: str, namespace: str
    ) -> GrantDecision | Awaitable[GrantDecision]: ...

    def can_grant_agent(
        self, principal: Principal, agent_id: str, namespace: str
    ) -> GrantDecision | Awaitable[GrantDecision]:
        """May `principal` mint a bootstrap token for agent `agent_id` (role `agent`, which no
        binding names, so `can_grant` refuses it)? Only if it holds that agent's rules there."""
        ...


def token_ttl(request: pb.CreateTokenRequest) -> timedelta:
    """The lifetime asked for: DEFAULT_TTL when unset; InvalidArgument naming ``ttl`` outside (0, MAX_TTL]."""
    if not request.HasField("ttl"):
        return DEFAULT_TTL
    ttl = request.ttl.ToTimedelta()
    if ttl <= timedelta(0):
        raise InvalidArgument(f"ttl: {ttl.total_seconds():g}s is not a lifetime; give a positive duration "
                              f"(default {DEFAULT_TTL}, at most 30 days)", field="ttl")
    if ttl > MAX_TTL:
        raise InvalidArgument(f"ttl: {ttl} is longer than the longest token lifetime, 30 days; mint a shorter "
                              "token and mint a new one before it expires", field="ttl")
    return ttl


def token_subject(request: pb.CreateTokenRequest, trust_domain: str, namespace: str, token_id: str) -> tuple[
        SpiffeId, str]:
    """The subject and role of the token `request` asks for (namespace already resolved)."""
    if request.agent_id:
        validate_dns_label(request.agent_id, field="agent_id", what="agent id")
        if request.subject_name:
            raise InvalidArgument("subject_name: not allowed with agent_id (a bootstrap token stands for the agent "
                                  "spiffe://<td>/ns/<namespace>/agent/<agent_id>)", field="subject_name")
        if request.role not in ("", AGENT_ROLE):
            raise InvalidArgument(f"role: a bootstrap token (agent_id set) has role {AGENT_ROLE!r}, "
                                  f"not {request.role!r}; leave role empty", field="role")
        if namespace == ALL_NAMESPACES:
            raise InvalidArgument('namespace: an agent\'s bootstrap token belongs to one namespace, not "*"',
                                  field="namespace")
        return SpiffeId.agent(trust_domain, namespace, request.agent_id), AGENT_ROLE
    if not request.role:
        raise InvalidArgument("role: is required (e.g. viewer, invoker, operator, admin)", field="role")
    validate_dns_label(request.role, field="role", what="role")
    name = request.subject_name or f"token-{token_id[:12]}"
    validate_dns_label(name, field="subject_name", what="subject name")
    subject_ns = SYSTEM_NAMESPACE if namespace == ALL_NAMESPACES else namespace
    return SpiffeId.user(trust_domain, subject_ns, name), request.role


class TokenServicer(tokens_pb2_grpc.TokenServiceServicer):
    """sutradhar.v1.TokenService over `TokenRecords` and a `TokenIssuer`."""

    def __init__(self, records: TokenRecords, issuer: TokenIssuer, grants: GrantCheck) -> None:
        self._records = records
        self._issuer = issuer
        self._grants = grants

    async def _check_grant(self, caller: Principal, role: str, namespace: str, agent_id: str = "") -> None:
        if agent_id:
            decision = self._grants.can_grant_agent(caller, agent_id, namespace)
        else:
            decision = self._grants.can_grant(caller, role, namespace)
        if inspect.isawaitable(decision):
            decision = await decision
        if not decision.allowed:
            raise PermissionDenied(
                f"{caller.name} may not create a token with role {role!r} in namespace {namespace!r}: "
                f"{decision.reason or 'it does not hold that role there'} (nobody can grant more than they hold)"
            )

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTokenResponse:
        caller = principal.current()
        namespace = request.namespace or keys.DEFAULT_NAMESPACE
        validate_namespace(namespace, allow_all=True)
        ttl = token_ttl(request)
        if len(request.description) > MAX_DESCRIPTION:
            raise InvalidArgument(f"description: {len(request.description)} characters, at most {MAX_DESCRIPTION}",
                                  field="description")
        token_id = new_token_id()
        subject, role = token_subject(request, self._issuer.trust_domain, namespace, token_id)
        await self._check_grant(caller, role, namespace, request.agent_id)
        minted = self._issuer.mint(subject, namespace, role, ttl, request.description, jti=token_id)
        record = await self._records.create(replace(minted.record, created_by=caller.name))
        return pb.CreateTokenResponse(token=minted.token, record=record)

    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeTokenResponse:
        validate_namespace(request.namespace)
        validate_dns_label(request.id, field="id", what="token id")
        return pb.RevokeTokenResponse(record=await self._records.revoke(request.namespace, request.id))

    async def ListTokens(
        self, request: pb.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTokensResponse:
        validate_namespace(request.namespace, allow_all=True)
        namespace = request.namespace if request.namespace == ALL_NAMESPACES else storage_namespace(request.namespace)
        return pb.ListTokensResponse(records=await self._records.list(namespace))


def add_token_service(
    host: GrpcHost, *, store: Store, issuer: TokenIssuer, grants: GrantCheck, now: Clock = utc_now
) -> TokenServicer:
    """Host TokenService on `host` (through its middleware chain); records in `store`.

    `host` should list `SERVICE_NAME` among its `service_names` (health and reflection).
    """
    servicer = TokenServicer(TokenRecords(store, now=now), issuer, grants)
    host.add_servicer(tokens_pb2_grpc.add_TokenServiceServicer_to_server, servicer)
    return servicer
