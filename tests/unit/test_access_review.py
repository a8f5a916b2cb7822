"""Access reviews without a mesh: the agent's answer cache (TTL by an injected clock, bounded),
who an agent reviews instead of refusing (`MeshCallers`), failing closed when the registry
cannot answer, and the rule: only an agent, about itself, may ask (role `agent`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sutradhar._access_review import AccessReviews, ReviewCache
from sutradhar._errors import Unavailable
from sutradhar._identity import SpiffeId
from sutradhar._mesh_callers import MeshCallers
from sutradhar.services.common import rbac_methods
from sutradhar.services.common.etcd_server import free_port
from sutradhar.services.common.principal import CERTIFICATE, Principal
from sutradhar.services.common.rbac import ACCESSREVIEWS, Authorizer, Binding, BindingIndex, bootstrap_admin
from sutradhar.v1 import rbac_pb2
from tests.secure_support import Pki

TD = "sutradhar.local"
APP = SpiffeId.user(TD, "team-a", "app")


def test_answers_are_kept_for_the_ttl_allowed_and_denied_alike() -> None:
    cache = ReviewCache(ttl=timedelta(seconds=10))
    cache.put("allowed", "", now=100.0)
    cache.put("denied", "app may not execute agents 'echo'", now=100.0)
    assert cache.get("allowed", 109.9) == "" and cache.get("denied", 109.9) == "app may not execute agents 'echo'"
    assert cache.get("allowed", 110.0) is None and cache.get("denied", 110.0) is None  # asked again
    assert len(cache) == 0 and cache.get("never", 0.0) is None


def test_the_cache_is_bounded_and_drops_the_oldest_answer() -> None:
    cache = ReviewCache(ttl=timedelta(seconds=10), size=2)
    cache.put("a", "", 0.0)
    cache.put("b", "", 1.0)
    cache.put("a", "", 2.0)  # renewed: now the newest
    cache.put("c", "", 3.0)
    assert len(cache) == 2 and cache.get("b", 3.0) is None and cache.get("a", 3.0) == "" and cache.get("c", 3.0) == ""
    with pytest.raises(ValueError, match="at least 1"):
        ReviewCache(size=0)
    with pytest.raises(ValueError, match="positive"):
        ReviewCache(ttl=timedelta(0))


def test_mesh_services_pass_users_and_agents_are_reviewed_others_refused() -> None:
    reviews = AccessReviews("127.0.0.1:1", lambda: None)
    callers = MeshCallers(TD, agent="agent echo", reviews=reviews)
    assert callers._verdict(str(SpiffeId.service(TD, "router")).encode()) == ""
    assert callers._verdict(str(APP).encode()) == APP
    other_agent = SpiffeId.agent(TD, "team-b", "summarize", "s-1")
    assert callers._verdict(str(other_agent).encode()) == other_agent
    for refused in (SpiffeId.service(TD, "registry"), SpiffeId.user("other.domain", "team-a", "app")):
        verdict = callers._verdict(str(refused).encode())
        assert isinstance(verdict, str) and str(refused) in verdict and "route tasks through the router" in verdict
    # without a registry to ask, users are refused as before
    alone = MeshCallers(TD, agent="agent echo")
    verdict = alone._verdict(str(APP).encode())
    assert isinstance(verdict, str) and str(APP) in verdict


async def test_no_certificate_or_an_unreachable_registry_fails_closed_and_is_not_cached(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no certificate yet"):
        await AccessReviews("127.0.0.1:1", lambda: None, agent="agent echo").refusal(APP)
    source = Pki.create(tmp_path).source(SpiffeId.agent(TD, "team-a", "echo", "echo-1"))
    address = f"127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    reviews = AccessReviews(address, lambda: source, agent="agent echo", timeout=timedelta(seconds=2))
    try:
        with pytest.raises(Unavailable) as err:
            await reviews.refusal(APP)
    finally:
        await reviews.close()
    message = str(err.value)
    assert address in message and str(APP) in message and "call through the router" in message
    assert len(reviews.cache) == 0 and reviews.reviews == 0


def test_only_an_agent_may_ask_and_only_about_itself() -> None:
    entry = rbac_methods.methods()["/sutradhar.v1.RbacService/ReviewAccess"]
    request = rbac_pb2.ReviewAccessRequest(principal=str(APP), verb="execute", resource="agents",
                                           namespace="team-a", name="echo")
    assert (entry.verb, entry.resource, entry.namespace(request), entry.name(request)) == (
        "create", ACCESSREVIEWS, "team-a", "echo")
    assert not entry.mutation  # a question, not a change: audited when denied
    authorizer = Authorizer(BindingIndex([Binding("team-a", "app", "invoker", (str(APP),))]), trust_domain=TD)

    def may(who: SpiffeId, namespace: str = "team-a", name: str = "echo") -> bool:
        return authorizer.check(Principal(who, CERTIFICATE), "create", ACCESSREVIEWS, namespace, name).allowed

    echo = SpiffeId.agent(TD, "team-a", "echo", "echo-1")
    assert may(echo)
    assert not may(echo, name="summarize") and not may(echo, namespace="team-b") and not may(echo, name="")
    assert not may(APP) and not may(SpiffeId.service(TD, "router"))
    # the decision reviewed is the router's for Execute: execute on agents, by agent id
    assert authorizer.check(Principal(APP, CERTIFICATE), "execute", "agents", "team-a", "echo").allowed
    assert not authorizer.check(Principal(APP, CERTIFICATE), "execute", "agents", "team-b", "echo").allowed
    # the cluster admin holds "*" (the registry's servicer still refuses it: it is no agent)
    assert authorizer.check(Principal(bootstrap_admin(TD), CERTIFICATE), "create", ACCESSREVIEWS, "team-a",
                            "echo").allowed


async def test_a_certified_direct_client_leaves_container_replicas_and_other_namespaces_to_the_router(
    tmp_path: Path,
) -> None:
    from sutradhar import Task
    from sutradhar._direct import DirectClient
    from sutradhar._routing import wire
    from sutradhar.v1 import agent_pb2, registry_pb2, router_pb2

    source = Pki.create(tmp_path).source(APP)
    client = DirectClient("127.0.0.1:1", registry="127.0.0.1:1", namespace="team-a", tls=source)
    try:
        serving = registry_pb2.INSTANCE_STATE_SERVING
        client.view.replace(
            [registry_pb2.Agent(id=agent_id, namespace="team-a", type=agent_id, version="1.0.0", runtime=runtime)
             for agent_id, runtime in (("boxed", "container"), ("proc", "process"))],
            [registry_pb2.Instance(id=f"{agent_id}-1", agent_id=agent_id, namespace="team-a", endpoint="127.0.0.1:9",
                                   state=serving, identity=str(SpiffeId.agent(TD, "team-a", agent_id, f"{agent_id}-1")))
             for agent_id in ("boxed", "proc")],
        )

        def route(agent_type: str, namespace: str = "team-a") -> wire.RouteRequest | None:
            selector = router_pb2.Selector(namespace=namespace, agent_type=agent_type)
            return client._route(Task(id="t", type=agent_type), selector, router_pb2.RouteOptions(),
                                 agent_pb2.ExecuteRequest)

        assert route("boxed") is None and route("proc", "team-b") is None
        assert route("proc") is not None  # a process replica: direct
        assert client.stats().fallbacks == {"container-replica": 1, "other-namespace": 1}
        assert client.stats().direct == 1
    finally:
        await client.close()
