"""Authorization decisions (services/common/rbac.py) without a network: every built-in
role, default deny, namespace isolation, resource names, "*" listings, escalation."""

from __future__ import annotations

import pytest

from sutradhar._identity import SpiffeId
from sutradhar.services.common.principal import CERTIFICATE, TOKEN, Grant, Principal
from sutradhar.services.common.rbac import (
    BUILTIN_ROLES,
    GOVERNANCE,
    RESOURCES,
    VERBS,
    Authorizer,
    Binding,
    BindingIndex,
    Rule,
    bootstrap_admin,
)

TD = "sutradhar.local"


def user(namespace: str, name: str, *, grants: tuple[Grant, ...] = (), token: str = "") -> Principal:
    return Principal(SpiffeId.user(TD, namespace, name), TOKEN if token else CERTIFICATE, token_id=token,
                     grants=grants)


def bound(*bindings: Binding) -> Authorizer:
    return Authorizer(BindingIndex(bindings), trust_domain=TD)


def binding(namespace: str, role: str, *subjects: Principal, name: str = "b") -> Binding:
    return Binding(namespace, name, role, tuple(str(p.identity) for p in subjects))


def allowed(a: Authorizer, p: Principal, verb: str, resource: str, namespace: str = "team-a", name: str = "") -> bool:
    return a.check(p, verb, resource, namespace, name).allowed


def test_default_deny_names_principal_verb_resource_and_namespace() -> None:
    ci = user("team-a", "ci")
    decision = bound().check(ci, "create", "deployments", "team-b")
    assert not decision.allowed
    assert decision.reason == (
        "spiffe://sutradhar.local/ns/team-a/user/ci may not create deployments in namespace team-b "
        "(no role binding grants it; ask an admin of team-b to bind you a role that does)"
    )


def test_viewer_reads_and_nothing_else() -> None:
    v = user("team-a", "v")
    a = bound(binding("team-a", "viewer", v))
    for resource in ("agents", "instances", "deployments", "health", "stats"):
        for verb in ("get", "list", "watch"):
            assert allowed(a, v, verb, resource), (verb, resource)
    for verb, resource in (("create", "deployments"), ("execute", "agents"), ("drain", "instances"),
                           ("logs", "deployments"), ("list", "rolebindings"), ("read", "audit"),
                           ("create", "tokens"), ("define-code", "agents")):
        assert not allowed(a, v, verb, resource), (verb, resource)


def test_denial_says_which_roles_the_principal_has_there() -> None:
    v = user("team-a", "v")
    reason = bound(binding("team-a", "viewer", v)).check(v, "scale", "deployments", "team-a").reason
    assert "its roles there (viewer) do not grant it" in reason


def test_invoker_only_executes() -> None:
    i = user("team-a", "i")
    a = bound(binding("team-a", "invoker", i))
    assert allowed(a, i, "execute", "agents")
    assert not allowed(a, i, "get", "agents")
    assert not allowed(a, i, "list", "instances")


def test_operator_deploys_scales_drains_reads_logs_but_defines_no_code() -> None:
    o = user("team-a", "o")
    a = bound(binding("team-a", "operator", o))
    for verb in ("create", "update", "delete", "scale", "rollout", "logs", "get", "list", "watch"):
        assert allowed(a, o, verb, "deployments"), verb
    assert allowed(a, o, "drain", "instances")
    assert allowed(a, o, "execute", "agents")
    assert not allowed(a, o, "create", "agents")
    assert not allowed(a, o, "define-code", "agents")
    reason = a.check(o, "define-code", "agents", "team-a", "evil").reason
    assert "admin-only" in reason and "define-code agents 'evil'" in reason
    assert not allowed(a, o, "update", "rolebindings")


def test_admin_has_everything_in_its_namespace_only() -> None:
    adm = user("team-a", "adm")
    a = bound(binding("team-a", "admin", adm))
    for verb in VERBS:
        for resource in RESOURCES:
            if resource in GOVERNANCE and verb not in ("get", "list", "watch"):
                continue
            if resource == "roles" and verb not in ("get", "list"):
                continue
            assert allowed(a, adm, verb, resource), (verb, resource)
    assert allowed(a, adm, "read-value", "secrets")
    assert not allowed(a, adm, "get", "agents", "team-b")
    assert not allowed(a, adm, "list", "agents", "*")
    assert not allowed(a, adm, "list", "members", "*")


def test_only_a_cluster_admin_writes_a_namespace_s_quotas_and_rate_limits() -> None:
    adm, root = user("team-a", "adm"), user("ops", "root")
    a = bound(binding("team-a", "admin", adm), binding("sutradhar-system", "cluster-admin", root))
    for resource in GOVERNANCE:
        assert allowed(a, adm, "get", resource)
        for verb in ("create", "update", "delete"):
            assert not allowed(a, adm, verb, resource), (verb, resource)
            assert allowed(a, root, verb, resource, "team-a"), (verb, resource)
    assert a.can_grant(adm, "admin", "team-a").allowed  # admin still grants admin


def test_operators_write_secrets_without_reading_their_values() -> None:
    o = user("team-a", "op")
    a = bound(binding("team-a", "operator", o))
    for verb in ("get", "list", "create", "update", "delete"):
        assert allowed(a, o, verb, "secrets"), verb
    assert not allowed(a, o, "read-value", "secrets")
    assert "read-value secrets" in a.check(o, "read-value", "secrets", "team-a").reason
    assert not allowed(a, user("team-a", "v"), "read-value", "secrets")


def test_cluster_admin_bound_in_the_system_namespace_is_cluster_wide() -> None:
    root = user("ops", "root")
    a = bound(binding("sutradhar-system", "cluster-admin", root))
    assert allowed(a, root, "define-code", "agents", "team-b")
    assert allowed(a, root, "list", "deployments", "*")
    assert allowed(a, root, "list", "members", "*")


def test_a_cluster_scoped_role_bound_elsewhere_grants_that_namespace_only() -> None:
    p = user("team-a", "p")
    a = bound(binding("team-a", "cluster-admin", p))
    assert allowed(a, p, "delete", "agents", "team-a")
    assert not allowed(a, p, "delete", "agents", "team-b")
    assert not allowed(a, p, "list", "agents", "*")


def test_the_bootstrap_admin_is_cluster_admin() -> None:
    admin = Principal(bootstrap_admin(TD), CERTIFICATE)
    a = bound()
    assert allowed(a, admin, "define-code", "agents", "anywhere")
    assert allowed(a, admin, "list", "members", "*")
    other_domain = Principal(bootstrap_admin("other.example"), CERTIFICATE)
    assert not allowed(a, other_domain, "get", "agents")


def test_agent_identity_acts_on_its_own_agent_only() -> None:
    echo = Principal(SpiffeId.agent(TD, "team-a", "echo", "echo-1"), CERTIFICATE)
    a = bound()
    for verb in ("create", "update", "delete"):
        assert allowed(a, echo, verb, "instances", "team-a", "echo"), verb
        assert not allowed(a, echo, verb, "instances", "team-a", "other"), verb
        assert not allowed(a, echo, verb, "instances", "team-a", ""), verb  # every instance: no
    assert allowed(a, echo, "get", "agents", "team-a", "echo")
    assert not allowed(a, echo, "get", "agents", "team-a", "other")
    assert not allowed(a, echo, "update", "agents", "team-a", "echo")
    assert not allowed(a, echo, "create", "instances", "team-b", "echo")  # its namespace only


def test_mesh_services_get_what_they_need_cluster_wide_and_no_more() -> None:
    router = Principal(SpiffeId.service(TD, "router"), CERTIFICATE)
    a = bound()
    assert allowed(a, router, "watch", "agents", "*")
    assert allowed(a, router, "watch", "instances", "*")
    assert allowed(a, router, "update", "instances", "team-a", "any")
    assert not allowed(a, router, "execute", "agents", "team-a")
    assert not allowed(a, router, "create", "deployments", "team-a")
    assert not allowed(a, router, "list", "rolebindings", "team-a")
    service_elsewhere = Principal(SpiffeId(TD, "team-a", "service", "router"), CERTIFICATE)
    assert not allowed(a, service_elsewhere, "watch", "agents", "*")


def test_token_grants_count_in_the_identitys_own_namespace() -> None:
    ci = user("team-a", "ci", grants=(Grant("team-a", "operator"), Grant("team-b", "admin")), token="jti-1")
    a = bound()
    assert allowed(a, ci, "scale", "deployments", "team-a")
    assert not allowed(a, ci, "get", "agents", "team-b")  # a grant for another namespace is ignored
    reason = a.check(ci, "get", "agents", "team-b").reason
    assert reason.startswith("spiffe://sutradhar.local/ns/team-a/user/ci (token jti-1) may not get agents")


def test_system_identities_may_carry_grants_for_any_namespace() -> None:
    ops = user("sutradhar-system", "ops", grants=(Grant("team-b", "viewer"), Grant("*", "viewer")), token="t")
    a = bound()
    assert allowed(a, ops, "get", "agents", "team-b")
    assert allowed(a, ops, "list", "agents", "*")


def test_a_binding_in_another_namespace_is_what_crosses_namespaces() -> None:
    ci = user("team-a", "ci")
    a = bound(binding("team-b", "viewer", ci))
    assert allowed(a, ci, "get", "agents", "team-b")
    assert not allowed(a, ci, "get", "agents", "team-a")


def test_all_namespaces_needs_the_verb_cluster_wide_and_says_how_to_narrow() -> None:
    v = user("team-a", "v")
    a = bound(binding("team-a", "viewer", v))
    decision = a.check(v, "list", "deployments", "*")
    assert not decision.allowed
    assert "in all namespaces" in decision.reason and "--namespace team-a" in decision.reason
    cluster_viewer = bound(Binding("sutradhar-system", "b", "viewer", (str(v.identity),)))
    assert not allowed(cluster_viewer, v, "list", "deployments", "*")  # viewer is not cluster-scoped


def test_empty_namespace_means_default() -> None:
    v = user("default", "v")
    a = bound(binding("default", "viewer", v))
    assert allowed(a, v, "get", "agents", "")


def test_resource_names_limit_a_rule() -> None:
    rule = Rule(("get",), ("agents",), ("echo",))
    assert rule.allows("get", "agents", "echo")
    assert not rule.allows("get", "agents", "other")
    assert not rule.allows("get", "agents", "")
    assert Rule(("*",), ("*",)).allows("*", "*")
    assert not Rule(("get",), ("*",)).allows("*", "agents")
    with pytest.raises(ValueError, match="not one of"):
        Rule(("fly",), ("agents",))


def test_role_changes_are_seen_through_a_new_snapshot() -> None:
    v = user("team-a", "v")

    class Swappable:
        def __init__(self) -> None:
            self.current = BindingIndex()

        def index(self) -> BindingIndex:
            return self.current

    source = Swappable()
    a = Authorizer(source, trust_domain=TD)
    assert not allowed(a, v, "get", "agents")
    source.current = BindingIndex([binding("team-a", "viewer", v)])
    assert allowed(a, v, "get", "agents")
    source.current = BindingIndex()
    assert not allowed(a, v, "get", "agents")


def test_escalation_one_grants_only_what_one_holds() -> None:
    op = user("team-a", "op")
    adm = user("team-a", "adm")
    a = bound(binding("team-a", "operator", op, name="o"), binding("team-a", "admin", adm, name="a"))
    assert a.can_grant(op, "viewer", "team-a").allowed
    assert a.can_grant(op, "invoker", "team-a").allowed
    refused = a.can_grant(op, "admin", "team-a")
    assert not refused.allowed
    assert "may not grant role admin in namespace team-a" in refused.reason
    assert "lacks every verb on agents" in refused.reason
    assert not a.can_grant(op, "viewer", "team-b").allowed
    assert a.can_grant(adm, "admin", "team-a").allowed
    # cluster-admin bound in team-a would write team-a's quotas and rate limits: more than admin holds
    refused = a.can_grant(adm, "cluster-admin", "team-a")
    assert not refused.allowed and "lacks every verb on every resource" in refused.reason
    cluster = a.can_grant(adm, "cluster-admin", "sutradhar-system")
    assert not cluster.allowed and "cluster-wide" in cluster.reason
    assert not a.can_grant(adm, "agent", "team-a").allowed
    assert "roles: viewer" in a.can_grant(adm, "nope", "team-a").reason


def test_an_admin_of_the_system_namespace_cannot_make_itself_cluster_admin() -> None:
    sysadm = user("sutradhar-system", "sysadm")
    a = bound(binding("sutradhar-system", "admin", sysadm))
    assert allowed(a, sysadm, "update", "rolebindings", "sutradhar-system")
    assert not a.can_grant(sysadm, "cluster-admin", "sutradhar-system").allowed
    assert not a.can_grant(sysadm, "mesh-service", "sutradhar-system").allowed
    root = Principal(bootstrap_admin(TD), CERTIFICATE)
    assert a.can_grant(root, "cluster-admin", "sutradhar-system").allowed


def test_every_builtin_role_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rbac.md").read_text()
    for name in BUILTIN_ROLES:
        assert f"`{name}`" in doc, name
    for verb in VERBS:
        assert f"`{verb}`" in doc, verb
    for resource in RESOURCES:
        assert f"`{resource}`" in doc, resource
