"""Every RPC of the mesh as a verb on a resource: fills `access.ACCESS`.

Importing this module fills the table (`install()` does it again, idempotently). One
entry per method of RegistryService, RouterService, SchedulerService, HealthService,
RbacService, TokenService, AuditService, IdentityService, QuotaService, SecretService,
ConfigMapService and RateLimitService; `tests/unit/test_rbac_methods.py` fails when a method
of those services has none (a method without an entry is refused by the AUTHORIZATION stage
anyway).

Namespaces come from the request ("" = default, "*" = every namespace); GetStats is the
exception: its empty namespace means every namespace, so it is read as "*"; and
IssueCertificate names nothing: its namespace and name are the caller's own (a certificate
is only ever issued for the caller's identity). The name is
the object's id where the request has one. Requests that name an instance only by id
(KeepAliveInstance, UpdateInstanceState, DeregisterInstance) are `instance_owner`: the
`agent` role, limited to one agent id, allows them only for that agent's instances
(`Decision.owner`, checked by the servicer).

AgentService (agent.proto) is not here: agents serve it, not the mesh's services.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from sutradhar._names import ALL_NAMESPACES
from sutradhar.services.common import principal, rbac
from sutradhar.services.common.access import ACCESS, MethodAccess
from sutradhar.v1 import (
    audit_pb2,
    health_pb2,
    identity_pb2,
    quota_pb2,
    ratelimit_pb2,
    rbac_pb2,
    registry_pb2,
    router_pb2,
    scheduler_pb2,
    secrets_pb2,
    tokens_pb2,
)

__all__ = ["CODE_FREE_RUNTIMES", "MESH_SERVICES", "define_code_needed", "install", "methods"]

#: Runtimes that run no code of the agent's on the host (the agent is a URL elsewhere).
#: Every other runtime (process, container, in-process, and any added later) needs
#: `define-code`: a new runtime is admin-only until it is listed here.
CODE_FREE_RUNTIMES: Final = frozenset({"http"})

#: The services whose methods the table covers, by full name.
MESH_SERVICES: Final = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (registry_pb2, "RegistryService"),
        (router_pb2, "RouterService"),
        (scheduler_pb2, "SchedulerService"),
        (health_pb2, "HealthService"),
        (rbac_pb2, "RbacService"),
        (tokens_pb2, "TokenService"),
        (audit_pb2, "AuditService"),
        (identity_pb2, "IdentityService"),
        (quota_pb2, "QuotaService"),
        (secrets_pb2, "SecretService"),
        (secrets_pb2, "ConfigMapService"),
        (ratelimit_pb2, "RateLimitService"),
    )
)

_DEFINE_CODE: Final = ((rbac.DEFINE_CODE, rbac.AGENTS),)
_WATCH_INSTANCES: Final = ((rbac.WATCH, rbac.INSTANCES),)
_WATCH_RATELIMITS: Final = ((rbac.WATCH, rbac.RATELIMITS),)


def define_code_needed(agent: registry_pb2.Agent) -> bool:
    """Whether writing `agent` decides what code runs on the host."""
    return agent.runtime not in CODE_FREE_RUNTIMES


def _agent_extra(request: Any) -> tuple[tuple[str, str], ...]:
    return _DEFINE_CODE if define_code_needed(request.agent) else ()


def _watch_extra(request: registry_pb2.WatchRequest) -> tuple[tuple[str, str], ...]:
    kinds = set(request.kinds)
    extra: tuple[tuple[str, str], ...] = ()
    if not kinds or registry_pb2.RESOURCE_KIND_INSTANCE in kinds:
        extra = _WATCH_INSTANCES
    if registry_pb2.RESOURCE_KIND_RATE_LIMIT in kinds:
        extra += _WATCH_RATELIMITS
    return extra


def _ns(request: Any) -> str:
    return str(request.namespace)


def _id(request: Any) -> str:
    return str(request.id)


def _name(request: Any) -> str:
    return str(request.name)


def _instance_id(request: Any) -> str:
    return str(request.instance_id)


def _agent_id(request: Any) -> str:
    return str(request.agent_id)


def _of(field: str, inner: Callable[[Any], str]) -> Callable[[Any], str]:
    """Read from the request's message field `field` (RegisterAgentRequest.agent...)."""

    def read(request: Any) -> str:
        return inner(getattr(request, field))

    return read


@functools.lru_cache(maxsize=4096)
def _selector(selector_bytes: bytes) -> tuple[str, str]:
    """(namespace, agent_id) of a serialized Selector; cached, since a caller sends the
    same few selectors again and again (the router keys its own caches the same way)."""
    try:
        selector = router_pb2.Selector.FromString(selector_bytes)
    except Exception:  # a malformed request: the handler reports it; authorize it as "default"
        return "", ""
    return selector.namespace, selector.agent_id


def _route_namespace(request: Any) -> str:
    """The router's Execute requests arrive split, not decoded (`wire.RouteRequest`)."""
    selector_bytes = getattr(request, "selector_bytes", None)
    if selector_bytes is not None:
        return _selector(selector_bytes)[0]
    return str(request.selector.namespace)


def _route_agent(request: Any) -> str:
    selector_bytes = getattr(request, "selector_bytes", None)
    if selector_bytes is not None:
        return _selector(selector_bytes)[1]
    return str(request.selector.agent_id)


def _stats_namespace(request: router_pb2.GetStatsRequest) -> str:
    return request.namespace or ALL_NAMESPACES


def _cluster(_request: Any) -> str:
    return ALL_NAMESPACES


def _own_namespace(_request: Any) -> str:
    """The caller's own namespace ("" before authentication found a caller)."""
    caller = principal.current_or_none()
    return caller.identity.namespace if caller is not None else ""


def _own_name(_request: Any) -> str:
    """The caller's own name: an agent's id (so role `agent`'s resource names apply), else its name."""
    caller = principal.current_or_none()
    if caller is None:
        return ""
    return caller.identity.agent_id or caller.identity.name


def methods() -> dict[str, MethodAccess]:
    """Full method name -> its access, for every method of `MESH_SERVICES`."""
    r = rbac
    quota_service = quota_pb2.DESCRIPTOR.services_by_name["QuotaService"].full_name
    quota_ns, quota_name = _of("quota", _ns), _of("quota", _name)
    registry, router, scheduler, health, rbac_service, token_service, audit_service, identity = MESH_SERVICES[:8]
    ratelimits = ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
    audit_ns = _of("filter", _ns)
    agent_ns, agent_id = _of("agent", _ns), _of("agent", _id)
    inst_ns, inst_agent = _of("instance", _ns), _of("instance", _agent_id)
    dep_ns, dep_name = _of("deployment", _ns), _of("deployment", _name)
    bind_ns, bind_name = _of("binding", _ns), _of("binding", _name)
    limit_ns, limit_name = _of("rate_limit", _ns), _of("rate_limit", _name)
    table = {
        f"/{registry}/RegisterAgent": MethodAccess(r.CREATE, r.AGENTS, agent_ns, agent_id, True, _agent_extra),
        f"/{registry}/UpdateAgent": MethodAccess(r.UPDATE, r.AGENTS, agent_ns, agent_id, True, _agent_extra),
        f"/{registry}/GetAgent": MethodAccess(r.GET, r.AGENTS, _ns, _id),
        f"/{registry}/ListAgents": MethodAccess(r.LIST, r.AGENTS, _ns),
        f"/{registry}/DeregisterAgent": MethodAccess(r.DELETE, r.AGENTS, _ns, _id, True),
        # An instance is named by its agent's id here, so `agent`'s resource_names apply.
        f"/{registry}/RegisterInstance": MethodAccess(r.CREATE, r.INSTANCES, inst_ns, inst_agent, True),
        # A lease renewal is a heartbeat (every ttl/3 per instance), not a change of what the
        # mesh runs: like Kubernetes' node lease updates it is audited only when denied.
        f"/{registry}/KeepAliveInstance": MethodAccess(r.UPDATE, r.INSTANCES, _ns, _id, False, instance_owner=True),
        f"/{registry}/UpdateInstanceState": MethodAccess(r.UPDATE, r.INSTANCES, _ns, _id, True,
                                                         instance_owner=True),
        f"/{registry}/GetInstance": MethodAccess(r.GET, r.INSTANCES, _ns, _id),
        f"/{registry}/ListInstances": MethodAccess(r.LIST, r.INSTANCES, _ns),
        f"/{registry}/DeregisterInstance": MethodAccess(r.DELETE, r.INSTANCES, _ns, _id, True, instance_owner=True),
        f"/{registry}/Watch": MethodAccess(r.WATCH, r.AGENTS, _ns, extra=_watch_extra),
        # The load of one's own calls to a namespace's agents: whoever may execute them may report
        # it (a DirectClient, every second while it sends calls); a heartbeat, audited only when denied.
        f"/{registry}/ReportLoad": MethodAccess(r.EXECUTE, r.AGENTS, _ns),

        f"/{router}/Execute": MethodAccess(r.EXECUTE, r.AGENTS, _route_namespace, _route_agent),
        f"/{router}/ExecuteStream": MethodAccess(r.EXECUTE, r.AGENTS, _route_namespace, _route_agent),
        f"/{router}/GetStats": MethodAccess(r.GET, r.STATS, _stats_namespace),

        f"/{scheduler}/CreateDeployment": MethodAccess(r.CREATE, r.DEPLOYMENTS, dep_ns, dep_name, True),
        f"/{scheduler}/ApplyDeployment": MethodAccess(r.UPDATE, r.DEPLOYMENTS, dep_ns, dep_name, True,
                                                      lambda _req: ((r.CREATE, r.DEPLOYMENTS),)),
        f"/{scheduler}/GetDeployment": MethodAccess(r.GET, r.DEPLOYMENTS, _ns, _name),
        f"/{scheduler}/ListDeployments": MethodAccess(r.LIST, r.DEPLOYMENTS, _ns),
        f"/{scheduler}/UpdateDeployment": MethodAccess(r.UPDATE, r.DEPLOYMENTS, dep_ns, dep_name, True),
        f"/{scheduler}/ScaleDeployment": MethodAccess(r.SCALE, r.DEPLOYMENTS, _ns, _name, True),
        f"/{scheduler}/DeleteDeployment": MethodAccess(r.DELETE, r.DEPLOYMENTS, _ns, _name, True),
        f"/{scheduler}/WatchDeployments": MethodAccess(r.WATCH, r.DEPLOYMENTS, _ns, _name),
        f"/{scheduler}/PauseRollout": MethodAccess(r.ROLLOUT, r.DEPLOYMENTS, _ns, _name, True),
        f"/{scheduler}/ResumeRollout": MethodAccess(r.ROLLOUT, r.DEPLOYMENTS, _ns, _name, True),
        f"/{scheduler}/UndoRollout": MethodAccess(r.ROLLOUT, r.DEPLOYMENTS, _ns, _name, True),
        f"/{scheduler}/GetLogs": MethodAccess(r.LOGS, r.DEPLOYMENTS, _ns, _name),

        f"/{health}/GetAgentHealth": MethodAccess(r.GET, r.HEALTH, _ns, _agent_id),
        f"/{health}/ListAgentHealth": MethodAccess(r.LIST, r.HEALTH, _ns),
        f"/{health}/GetInstanceHealth": MethodAccess(r.GET, r.HEALTH, _ns, _instance_id),
        f"/{health}/DrainInstance": MethodAccess(r.DRAIN, r.INSTANCES, _ns, _instance_id, True),
        f"/{health}/EnableInstance": MethodAccess(r.DRAIN, r.INSTANCES, _ns, _instance_id, True),
        f"/{health}/WatchHealth": MethodAccess(r.WATCH, r.HEALTH, _ns, _agent_id),
        f"/{health}/ListMembers": MethodAccess(r.LIST, r.MEMBERS, _cluster, cluster=True),

        f"/{rbac_service}/ApplyRoleBinding": MethodAccess(r.UPDATE, r.ROLEBINDINGS, bind_ns, bind_name, True,
                                                          lambda _req: ((r.CREATE, r.ROLEBINDINGS),)),
        f"/{rbac_service}/GetRoleBinding": MethodAccess(r.GET, r.ROLEBINDINGS, _ns, _name),
        f"/{rbac_service}/ListRoleBindings": MethodAccess(r.LIST, r.ROLEBINDINGS, _ns),
        f"/{rbac_service}/DeleteRoleBinding": MethodAccess(r.DELETE, r.ROLEBINDINGS, _ns, _name, True),
        f"/{rbac_service}/ListRoles": MethodAccess(r.LIST, r.ROLES, _ns),
        # An agent asking about a caller of its own (role `agent`: its own agent id, in its own
        # namespace); a read, audited when denied; the reviewed decision is audited by the servicer.
        f"/{rbac_service}/ReviewAccess": MethodAccess(r.CREATE, r.ACCESSREVIEWS, _ns, _name),

        # Minting a token is also a grant: the servicer checks `can_grant` for its role.
        f"/{token_service}/CreateToken": MethodAccess(r.CREATE, r.TOKENS, _ns, mutation=True),
        f"/{token_service}/RevokeToken": MethodAccess(r.DELETE, r.TOKENS, _ns, _id, True),
        f"/{token_service}/ListTokens": MethodAccess(r.LIST, r.TOKENS, _ns),

        # Reading the audit log is its own verb, for listing and following alike.
        f"/{audit_service}/ListAuditEvents": MethodAccess(r.READ, r.AUDIT, audit_ns),
        f"/{audit_service}/WatchAuditEvents": MethodAccess(r.READ, r.AUDIT, audit_ns),

        # Only a cluster-admin writes rate limits (rbac.py); readers of a namespace read them.
        f"/{ratelimits}/ApplyRateLimit": MethodAccess(r.UPDATE, r.RATELIMITS, limit_ns, limit_name, True,
                                                      lambda _req: ((r.CREATE, r.RATELIMITS),)),
        f"/{ratelimits}/GetRateLimit": MethodAccess(r.GET, r.RATELIMITS, _ns, _name),
        f"/{ratelimits}/ListRateLimits": MethodAccess(r.LIST, r.RATELIMITS, _ns),
        f"/{ratelimits}/DeleteRateLimit": MethodAccess(r.DELETE, r.RATELIMITS, _ns, _name, True),

        # Always the caller's own identity: every role of a person or agent grants it.
        f"/{identity}/IssueCertificate": MethodAccess(r.CREATE, r.CERTIFICATES, _own_namespace, _own_name, True),

        # Writing a quota is cluster-admin's (no namespace role writes resourcequotas).
        f"/{quota_service}/ApplyQuota": MethodAccess(r.UPDATE, r.RESOURCEQUOTAS, quota_ns, quota_name, True,
                                                     lambda _req: ((r.CREATE, r.RESOURCEQUOTAS),)),
        f"/{quota_service}/GetQuota": MethodAccess(r.GET, r.RESOURCEQUOTAS, _ns, _name),
        f"/{quota_service}/ListQuotas": MethodAccess(r.LIST, r.RESOURCEQUOTAS, _ns),
        f"/{quota_service}/DeleteQuota": MethodAccess(r.DELETE, r.RESOURCEQUOTAS, _ns, _name, True),
    }
    table.update(_secret_methods())
    return table


def _reencrypt_namespace(request: secrets_pb2.ReencryptSecretsRequest) -> str:
    """ReencryptSecrets' empty namespace means every namespace (only a cluster-wide grant)."""
    return request.namespace or ALL_NAMESPACES


def _secret_methods() -> dict[str, MethodAccess]:
    """SecretService and ConfigMapService (secrets.proto, served by the registry)."""
    r = rbac
    secrets, configmaps = (f"sutradhar.v1.{name}" for name in ("SecretService", "ConfigMapService"))
    secret_ns, secret_name = _of("secret", _ns), _of("secret", _name)
    cm_ns, cm_name = _of("config_map", _ns), _of("config_map", _name)
    return {
        f"/{secrets}/ApplySecret": MethodAccess(r.UPDATE, r.SECRETS, secret_ns, secret_name, True,
                                                lambda _req: ((r.CREATE, r.SECRETS),)),
        f"/{secrets}/GetSecret": MethodAccess(r.GET, r.SECRETS, _ns, _name),
        f"/{secrets}/ListSecrets": MethodAccess(r.LIST, r.SECRETS, _ns),
        # Reading a value is its own verb, and audited like a mutation: who read which
        # secret is what an audit of secrets is for (the record never holds a value).
        f"/{secrets}/RevealSecret": MethodAccess(r.READ_VALUE, r.SECRETS, _ns, _name, True),
        f"/{secrets}/DeleteSecret": MethodAccess(r.DELETE, r.SECRETS, _ns, _name, True),
        # Rewrites values without reading them out: update on every secret in scope.
        f"/{secrets}/ReencryptSecrets": MethodAccess(r.UPDATE, r.SECRETS, _reencrypt_namespace, mutation=True),
        f"/{configmaps}/ApplyConfigMap": MethodAccess(r.UPDATE, r.CONFIGMAPS, cm_ns, cm_name, True,
                                                      lambda _req: ((r.CREATE, r.CONFIGMAPS),)),
        f"/{configmaps}/GetConfigMap": MethodAccess(r.GET, r.CONFIGMAPS, _ns, _name),
        f"/{configmaps}/ListConfigMaps": MethodAccess(r.LIST, r.CONFIGMAPS, _ns),
        f"/{configmaps}/DeleteConfigMap": MethodAccess(r.DELETE, r.CONFIGMAPS, _ns, _name, True),
    }


def install() -> None:
    """Fill `access.ACCESS` with `methods()` (again: idempotent)."""
    ACCESS.update(methods())


install()
