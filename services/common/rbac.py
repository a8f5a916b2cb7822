"""Who may do what, where: verbs on resources in a namespace (Kubernetes RBAC semantics).

Pure logic: no I/O, no gRPC. A `Role` is a set of `Rule`s (verbs x resources, optionally
limited to some object names); a `Binding` (a RoleBinding read from etcd) gives a role to
subjects (SPIFFE IDs) in one namespace. The `Authorizer` decides one call::

    authorizer.check(principal, "create", "deployments", "team-b", "web")
    -> Decision(allowed=False, reason="spiffe://sutradhar.local/ns/team-a/user/ci may not
       create deployments in namespace team-b (no role binding grants it; ask an admin of
       team-b to bind you a role that does)")

Where a principal's roles come from, all of them checked on every call:

- RoleBindings naming its SPIFFE ID. A binding in namespace N grants its role in N only,
  whatever the role. A binding in `SYSTEM_NAMESPACE` (``sutradhar-system``) of a
  *cluster-scoped* role (`cluster-admin`, `mesh-service`) grants it in every namespace:
  that is how cluster-wide bindings are written (no separate kind, no extra field).
- The grants of its token (`Principal.grants`), minted by someone allowed to grant them
  (`can_grant`). A grant counts in the identity's own namespace only; an identity of
  `SYSTEM_NAMESPACE` may carry grants for any namespace, ``"*"`` meaning every namespace.
- Implicit bindings, for identities of the authorizer's trust domain: an `agent` identity
  gets role `agent` in its own namespace, limited to its own agent id; a `service`
  identity of `SYSTEM_NAMESPACE` gets `mesh-service` cluster-wide; `BOOTSTRAP_ADMIN`
  (``spiffe://<td>/ns/sutradhar-system/user/admin``) gets `cluster-admin`.

Default deny. A principal of namespace A never gets anything in namespace B unless a
binding in B names it (or a cluster-wide one does). A request for every namespace
(``"*"``, a list or watch) needs the verb cluster-wide. `can_grant` is Kubernetes'
escalation check: one may bind (or mint a token for) a role only when one holds every
rule of it in that namespace (cluster-wide for a cluster-wide binding), or holds the
verb `bind` on the role.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from sutradhar._identity import AGENT, DEFAULT_TRUST_DOMAIN, SERVICE, SYSTEM_NAMESPACE, SpiffeId
from sutradhar._names import ALL_NAMESPACES
from sutradhar.services.common.access import Decision
from sutradhar.services.common.principal import Principal

__all__ = [
    "ALL",
    "BOOTSTRAP_ADMIN_NAME",
    "BUILTIN_ROLES",
    "DEFINE_CODE",
    "GOVERNANCE",
    "IMPLICIT_ONLY_ROLES",
    "READ_VALUE",
    "RESOURCES",
    "VERBS",
    "Authorizer",
    "Binding",
    "BindingIndex",
    "Bindings",
    "Role",
    "Rule",
    "agent_role",
    "bootstrap_admin",
    "role_names",
]

ALL: Final = "*"
"""In a rule: every verb, every resource. In a check: the request needs them all."""

GET, LIST, WATCH, CREATE, UPDATE, DELETE = "get", "list", "watch", "create", "update", "delete"
EXECUTE, DRAIN, SCALE, ROLLOUT, LOGS, READ, BIND = "execute", "drain", "scale", "rollout", "logs", "read", "bind"
DEFINE_CODE: Final = "define-code"
"""The admin-only verb on agents: register or change an agent whose runtime runs code on
the host (a process command, a container image, an in-process class)."""
READ_VALUE: Final = "read-value"
"""The verb on secrets that reveals their values; `get` and `list` show only names and
keys. Admins of the namespace and the mesh services (the scheduler hands values to
replicas) hold it; operators write secrets without it."""

VERBS: Final = (GET, LIST, WATCH, CREATE, UPDATE, DELETE, EXECUTE, DRAIN, SCALE, ROLLOUT, LOGS, READ,
                DEFINE_CODE, BIND, READ_VALUE)
"""Every verb a rule may name (besides "*")."""

AGENTS, INSTANCES, DEPLOYMENTS, HEALTH, STATS = "agents", "instances", "deployments", "health", "stats"
LOGS_RESOURCE, TOKENS, ROLEBINDINGS = "logs", "tokens", "rolebindings"
AUDIT, MEMBERS, ROLES = "audit", "members", "roles"
CERTIFICATES: Final = "certificates"
"""Certificates of the mesh CA (IdentityService/IssueCertificate): always for the caller's
own identity, so `create` on it is granted to every role a person or agent holds."""

SECRETS, CONFIGMAPS, RESOURCEQUOTAS, RATELIMITS = "secrets", "configmaps", "resourcequotas", "ratelimits"
ACCESSREVIEWS: Final = "accessreviews"
"""Access reviews (RbacService/ReviewAccess): an agent a caller reached directly asks whether
that caller may execute it. `create` on it, limited to its own agent id, is in role `agent`;
the registry answers agent identities only, about themselves."""
GOVERNANCE: Final = (RESOURCEQUOTAS, RATELIMITS)
"""What bounds a namespace (its quotas and its namespace and per-caller rate limits): an
admin of the namespace reads them, only a cluster-admin writes them (as in Kubernetes,
where a namespace admin cannot raise its own ResourceQuota)."""

RESOURCES: Final = (AGENTS, INSTANCES, DEPLOYMENTS, HEALTH, STATS, LOGS_RESOURCE, TOKENS, ROLEBINDINGS, AUDIT,
                    MEMBERS, ROLES, CERTIFICATES, SECRETS, CONFIGMAPS, RESOURCEQUOTAS, RATELIMITS, ACCESSREVIEWS)
"""Every resource a rule may name (besides "*")."""

BOOTSTRAP_ADMIN_NAME: Final = "admin"
"""The user `sutradhar up` writes a credential for: ``spiffe://<td>/ns/sutradhar-system/user/admin``."""


def bootstrap_admin(trust_domain: str = DEFAULT_TRUST_DOMAIN) -> SpiffeId:
    """The bootstrap admin identity of `trust_domain`; it holds `cluster-admin` implicitly."""
    return SpiffeId.user(trust_domain, SYSTEM_NAMESPACE, BOOTSTRAP_ADMIN_NAME)


@dataclass(frozen=True)
class Rule:
    """Verbs on resources, for every object or only those named in `resource_names`."""

    verbs: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for verb in self.verbs:
            if verb != ALL and verb not in VERBS:
                raise ValueError(f"rule verb {verb!r} is not one of {', '.join(VERBS)} or '*'")
        for resource in self.resources:
            if resource != ALL and resource not in RESOURCES:
                raise ValueError(f"rule resource {resource!r} is not one of {', '.join(RESOURCES)} or '*'")

    def allows(self, verb: str, resource: str, name: str = "") -> bool:
        """Whether this rule covers `verb` on `resource` named `name` ("" = every object;
        "*" as verb or resource = all of them, covered only by a "*" rule)."""
        if ALL not in self.verbs and verb not in self.verbs:
            return False
        if ALL not in self.resources and resource not in self.resources:
            return False
        return not self.resource_names or (name != "" and name in self.resource_names)


@dataclass(frozen=True)
class Role:
    """A named set of rules. A `cluster_scoped` role may be bound cluster-wide (in
    `SYSTEM_NAMESPACE`); bound in another namespace it grants its rules there only."""

    name: str
    rules: tuple[Rule, ...]
    cluster_scoped: bool = False
    description: str = ""

    def allows(self, verb: str, resource: str, name: str = "") -> bool:
        """Whether any rule covers the request."""
        return any(rule.allows(verb, resource, name) for rule in self.rules)


_READ = (GET, LIST, WATCH)
_VIEWED = (AGENTS, INSTANCES, DEPLOYMENTS, HEALTH, STATS, CONFIGMAPS, RESOURCEQUOTAS, RATELIMITS)
# A certificate for one's own identity (`sutradhar login`): the identity is the caller's
# already, so holding any role is reason enough; nobody gets one for another identity.
_OWN_CERTIFICATE: Final = Rule((CREATE,), (CERTIFICATES,))

VIEWER: Final = Role("viewer", (
    Rule(_READ, _VIEWED),
    Rule((GET, LIST), (ROLES,)),  # `sutradhar roles`: the built-in roles are no secret
    _OWN_CERTIFICATE,
), description="read agents, instances, deployments, health, stats, configmaps, quotas and rate limits")
INVOKER: Final = Role("invoker", (Rule((EXECUTE,), (AGENTS,)), _OWN_CERTIFICATE),
                      description="route tasks to agents (nothing else)")
OPERATOR: Final = Role("operator", (
    *VIEWER.rules,
    Rule((CREATE, UPDATE, DELETE, SCALE, ROLLOUT, LOGS), (DEPLOYMENTS,)),
    Rule((DRAIN,), (INSTANCES, HEALTH)),
    Rule((EXECUTE,), (AGENTS,)),
    # secrets: write them and see their names and keys, never their values (read-value)
    Rule((GET, LIST, WATCH, CREATE, UPDATE, DELETE), (SECRETS,)),
    Rule((CREATE, UPDATE, DELETE), (CONFIGMAPS,)),
), description="viewer + deploy, scale, roll out, drain, read logs, execute, write secrets and configmaps")
ADMIN: Final = Role("admin", (
    Rule((ALL,), tuple(resource for resource in RESOURCES if resource not in (*GOVERNANCE, ROLES))),
    # not `bind` on roles: that would let it bind cluster-admin in its namespace, which
    # writes the namespace's quotas and rate limits (it grants the roles whose rules it holds)
    Rule((GET, LIST), (ROLES,)),
    Rule(_READ, GOVERNANCE),
), description=(
    "everything in the namespace: agents (with define-code: runtimes that run code), "
    "rolebindings, tokens, audit, secret values; reads (not writes) its quotas and rate limits"))
CLUSTER_ADMIN: Final = Role("cluster-admin", (Rule((ALL,), (ALL,)),), cluster_scoped=True,
                            description="everything in every namespace, and the mesh itself (members)")
MESH_SERVICE: Final = Role("mesh-service", (
    # router: its view of routable instances is the registry's Watch("*") of agents and
    # instances; health: lists and watches instances to probe, reads their agents' probes;
    # scheduler: reads the agents it runs and its deployments.
    Rule(_READ, (AGENTS, INSTANCES, DEPLOYMENTS)),
    # scheduler: registers, keeps alive and deregisters the instances of replicas it
    # runs (create, update, delete); health: writes an instance's probed state (update).
    Rule((CREATE, UPDATE, DELETE), (INSTANCES,)),
    # scheduler: UndoRollout writes back an earlier agent definition (UpdateAgent), code
    # included. The scheduler already runs every agent's code, so this adds no power.
    Rule((UPDATE, DEFINE_CODE), (AGENTS,)),
    # scheduler: resolves the secrets and configmaps replicas reference and checks
    # quotas; router: watches rate limits.
    Rule((GET, LIST, WATCH, READ_VALUE), (SECRETS,)),
    Rule(_READ, (CONFIGMAPS, *GOVERNANCE)),
), cluster_scoped=True, description="what the registry, router, scheduler and health services need of each other")

AGENT_ROLE_NAME: Final = "agent"


@functools.lru_cache(maxsize=4096)
def agent_role(agent_id: str) -> Role:
    """Role `agent` for one agent: register, keep alive, update the state of and
    deregister its own instances, read its own definition, and obtain (renew) a
    certificate for its own identity, and ask whether a caller that reached it directly
    may execute it (an access review about itself)."""
    own = (agent_id,)
    return Role(AGENT_ROLE_NAME, (
        Rule((GET,), (AGENTS,), own),
        Rule((CREATE, UPDATE, DELETE), (INSTANCES,), own),
        Rule((CREATE,), (CERTIFICATES,), own),
        Rule((CREATE,), (ACCESSREVIEWS,), own),
    ), description="an agent's own instances (given implicitly to agent identities)")


BUILTIN_ROLES: Final[Mapping[str, Role]] = {
    role.name: role
    for role in (VIEWER, INVOKER, OPERATOR, ADMIN, agent_role("<agent-id>"), CLUSTER_ADMIN, MESH_SERVICE)
}
"""Every role by name; `agent`'s rules are shown for the placeholder agent id."""

IMPLICIT_ONLY_ROLES: Final = frozenset({AGENT_ROLE_NAME})
"""Roles only implicit bindings give (a RoleBinding or token naming one is refused)."""


def role_names() -> str:
    """The roles a binding may name, for messages: "viewer, invoker, ..."."""
    return ", ".join(name for name in BUILTIN_ROLES if name not in IMPLICIT_ONLY_ROLES)


@dataclass(frozen=True)
class Binding:
    """A RoleBinding: `role` for `subjects` (SPIFFE ID strings) in `namespace`."""

    namespace: str
    name: str
    role: str
    subjects: tuple[str, ...]

    @property
    def cluster_wide(self) -> bool:
        """A cluster-scoped role bound in the system namespace: it applies in every namespace."""
        role = BUILTIN_ROLES.get(self.role)
        return self.namespace == SYSTEM_NAMESPACE and role is not None and role.cluster_scoped


class Bindings(Protocol):
    """Where the authorizer finds the bindings: an in-memory snapshot, swapped whole
    when a binding changes (`RoleBindingCache`), or a fixed `BindingIndex`."""

    def index(self) -> BindingIndex:
        """The current snapshot."""
        ...


class BindingIndex:
    """Bindings by subject: an immutable snapshot (the cache swaps in a new one)."""

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        by_subject: dict[str, list[Binding]] = {}
        for binding in bindings:
            for subject in dict.fromkeys(binding.subjects):
                by_subject.setdefault(subject, []).append(binding)
        self._by_subject = {s: tuple(sorted(b, key=lambda x: (x.namespace, x.name))) for s, b in by_subject.items()}

    def for_subject(self, subject: str) -> tuple[Binding, ...]:
        """Every binding naming `subject` (a SPIFFE ID string)."""
        return self._by_subject.get(subject, ())

    def index(self) -> BindingIndex:
        """Itself: a fixed index is its own snapshot."""
        return self


@dataclass(frozen=True)
class _Held:
    """One role a principal holds, where ("*": every namespace), and what gave it."""

    scope: str
    role: Role
    source: str

    def covers(self, namespace: str) -> bool:
        return self.scope == ALL_NAMESPACES or self.scope == namespace


_HINTS: Final = {
    DEFINE_CODE: ("registering or changing an agent whose runtime runs code on the host "
                  "(process, container, in-process) is admin-only"),
}


def _describe(verb: str, resource: str, name: str = "") -> str:
    """ "create deployments", "every verb on every resource", "get agents 'echo'"."""
    verbs = "every verb on" if verb == ALL else verb
    resources = "every resource" if resource == ALL else resource
    return f"{verbs} {resources}" + (f" {name!r}" if name else "")


class Authorizer:
    """Decides calls from bindings (in memory), token grants and implicit bindings."""

    #: Principals whose roles are kept between calls (the memo is cleared past this).
    MEMO_SIZE: Final = 10_000

    def __init__(self, bindings: Bindings, *, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> None:
        self._bindings = bindings
        self.trust_domain = trust_domain
        self._admin = bootstrap_admin(trust_domain)
        self._memo: dict[Principal, tuple[BindingIndex, tuple[_Held, ...]]] = {}

    # -- what a principal holds ------------------------------------------------

    def held(self, principal: Principal) -> tuple[_Held, ...]:
        """Every role `principal` holds, with its scope and source; worked out once per
        principal and bindings snapshot, so a call costs a dictionary look-up."""
        index = self._bindings.index()
        memo = self._memo.get(principal)
        if memo is not None and memo[0] is index:
            return memo[1]
        held = self._held(principal, index)
        if len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
        self._memo[principal] = (index, held)
        return held

    def _held(self, principal: Principal, index: BindingIndex) -> tuple[_Held, ...]:
        identity = principal.identity
        out: list[_Held] = []
        if identity.trust_domain == self.trust_domain:
            if identity == self._admin:
                out.append(_Held(ALL_NAMESPACES, CLUSTER_ADMIN, "the bootstrap admin identity"))
            elif identity.kind == SERVICE and identity.namespace == SYSTEM_NAMESPACE:
                out.append(_Held(ALL_NAMESPACES, MESH_SERVICE, "a mesh service identity"))
            elif identity.kind == AGENT:
                out.append(_Held(identity.namespace, agent_role(identity.agent_id),
                                 f"an agent identity of agent {identity.agent_id}"))
        for grant in principal.grants:
            role = BUILTIN_ROLES.get(grant.role)
            if role is None or grant.role in IMPLICIT_ONLY_ROLES:
                continue
            if grant.namespace == identity.namespace or identity.namespace == SYSTEM_NAMESPACE:
                out.append(_Held(grant.namespace, role, f"token {principal.token_id or '(no id)'}"))
        for binding in index.for_subject(str(identity)):
            role = BUILTIN_ROLES.get(binding.role)
            if role is None or binding.role in IMPLICIT_ONLY_ROLES:
                continue
            scope = ALL_NAMESPACES if binding.cluster_wide else binding.namespace
            where = "cluster-wide" if binding.cluster_wide else f"in namespace {binding.namespace}"
            out.append(_Held(scope, role, f"role binding {binding.name} {where}"))
        return tuple(out)

    # -- one call --------------------------------------------------------------

    def check(self, principal: Principal, verb: str, resource: str, namespace: str, name: str = "") -> Decision:
        """May `principal` do `verb` on `resource` (named `name`, "" for all) in
        `namespace` ("" = default, "*" = every namespace: needs a cluster-wide grant)?"""
        namespace = namespace or "default"
        held = self.held(principal)
        for h in held:
            if h.covers(namespace) and h.role.allows(verb, resource, name):
                return Decision(True, f"allowed by role {h.role.name} ({h.source})", verb, resource, namespace, name)
        return Decision(False, self._denial(principal, held, verb, resource, namespace, name),
                        verb, resource, namespace, name)

    def _denial(self, principal: Principal, held: tuple[_Held, ...], verb: str, resource: str, namespace: str,
                name: str) -> str:
        what = _describe(verb, resource, name)
        hint = f"{_HINTS[verb]}; " if verb in _HINTS else ""
        if namespace == ALL_NAMESPACES:
            own = principal.identity.namespace
            return (f"{principal.name} may not {what} in all namespaces ({hint}\"*\" needs {verb} on {resource} "
                    f"bound cluster-wide); ask for one namespace instead, e.g. --namespace {own}")
        there = sorted({h.role.name for h in held if h.covers(namespace)})
        why = f"its roles there ({', '.join(there)}) do not grant it" if there else "no role binding grants it"
        return (f"{principal.name} may not {what} in namespace {namespace} ({hint}{why}; "
                f"ask an admin of {namespace} to bind you a role that does)")

    # -- escalation ------------------------------------------------------------

    def can_grant(self, principal: Principal, role_name: str, namespace: str) -> Decision:
        """May `principal` bind `role_name` (or mint a token for it) in `namespace`?

        Only if it holds every rule of the role there (cluster-wide for a cluster-scoped
        role bound in the system namespace, or namespace "*"), or may `bind` that role.
        """
        namespace = namespace or "default"
        role = BUILTIN_ROLES.get(role_name)
        if role is None or role_name in IMPLICIT_ONLY_ROLES:
            return Decision(False, f"role {role_name!r} is not a role a binding may name (roles: {role_names()})",
                            BIND, ROLES, namespace, role_name)
        return self._can_grant(principal, role, namespace)

    def can_grant_agent(self, principal: Principal, agent_id: str, namespace: str) -> Decision:
        """May `principal` mint a bootstrap token for agent `agent_id` in `namespace` (role
        `agent`, which no binding may name)? Only if it holds every rule of that agent's role
        there (an admin of the namespace does): the token can do nothing its minter cannot."""
        return self._can_grant(principal, agent_role(agent_id), namespace or "default")

    def _can_grant(self, principal: Principal, role: Role, namespace: str) -> Decision:
        role_name = role.name
        scope = namespace
        if namespace == SYSTEM_NAMESPACE and role.cluster_scoped:
            scope = ALL_NAMESPACES
        if role_name not in IMPLICIT_ONLY_ROLES:
            bind = self.check(principal, BIND, ROLES, scope, role_name)
            if bind.allowed:
                return bind
        lacking: list[str] = []
        for rule in role.rules:
            for verb in rule.verbs:
                for resource in rule.resources:
                    for name in rule.resource_names or ("",):
                        if not self.check(principal, verb, resource, scope, name).allowed:
                            lacking.append(_describe(verb, resource, name))
        where = "cluster-wide" if scope == ALL_NAMESPACES else f"in namespace {namespace}"
        if lacking:
            return Decision(False, (
                f"{principal.name} may not grant role {role_name} {where}: nobody can grant more than they hold, "
                f"and it lacks {', '.join(lacking)} {where}"), BIND, ROLES, namespace, role_name)
        return Decision(True, f"{principal.name} holds every rule of role {role_name} {where}",
                        BIND, ROLES, namespace, role_name)
