"""The method access table (services/common/rbac_methods.py): every RPC of every mesh
service has an entry, and entries read namespace, name and extras from requests."""

from __future__ import annotations

import importlib
import pkgutil

import sutradhar.v1
from sutradhar.services.common import rbac
from sutradhar.services.common.access import ACCESS, access_for
from sutradhar.services.common.rbac_methods import MESH_SERVICES, methods
from sutradhar.v1 import health_pb2, rbac_pb2, registry_pb2, router_pb2, scheduler_pb2

#: Services in protos/ that the mesh's servers do not serve (agents serve AgentService).
NOT_SERVED_BY_THE_MESH = {"sutradhar.v1.AgentService"}


def every_service() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(sutradhar.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"sutradhar.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            out[service.full_name] = [m.name for m in service.methods]
    return out


def test_every_method_of_every_mesh_service_has_an_entry() -> None:
    services = every_service()
    assert set(services) - NOT_SERVED_BY_THE_MESH == set(MESH_SERVICES)
    missing = [f"/{s}/{m}" for s in MESH_SERVICES for m in services[s] if access_for(f"/{s}/{m}") is None]
    assert not missing, f"methods without an access entry (add them to rbac_methods.methods()): {missing}"
    extra = set(methods()) - {f"/{s}/{m}" for s in MESH_SERVICES for m in services[s]}
    assert not extra, f"entries for methods that do not exist: {extra}"


def test_entries_name_known_verbs_and_resources() -> None:
    for name, entry in ACCESS.items():
        assert entry.verb in rbac.VERBS, name
        assert entry.resource in rbac.RESOURCES, name


def entry(method: str):  # type: ignore[no-untyped-def]
    found = access_for(method)
    assert found is not None
    return found


def test_namespaces_and_names_come_from_the_request() -> None:
    get = entry("/sutradhar.v1.RegistryService/GetAgent")
    assert get.namespace(registry_pb2.GetAgentRequest(namespace="team-a", id="echo")) == "team-a"
    assert get.name(registry_pb2.GetAgentRequest(namespace="team-a", id="echo")) == "echo"
    reg = entry("/sutradhar.v1.RegistryService/RegisterInstance")
    req = registry_pb2.RegisterInstanceRequest(instance=registry_pb2.Instance(namespace="b", agent_id="echo", id="i"))
    assert (reg.verb, reg.resource, reg.namespace(req), reg.name(req)) == ("create", "instances", "b", "echo")
    keep = entry("/sutradhar.v1.RegistryService/KeepAliveInstance")
    assert keep.instance_owner and not keep.mutation  # a heartbeat: audited only when denied
    dep = entry("/sutradhar.v1.SchedulerService/CreateDeployment")
    d = scheduler_pb2.CreateDeploymentRequest(deployment=scheduler_pb2.Deployment(namespace="n", name="web"))
    assert (dep.namespace(d), dep.name(d)) == ("n", "web")
    drain = entry("/sutradhar.v1.HealthService/DrainInstance")
    assert (drain.verb, drain.resource) == ("drain", "instances")
    assert drain.name(health_pb2.DrainInstanceRequest(instance_id="i-1")) == "i-1"
    logs = entry("/sutradhar.v1.SchedulerService/GetLogs")
    assert logs.verb == "logs"
    members = entry("/sutradhar.v1.HealthService/ListMembers")
    assert members.cluster and members.namespace(health_pb2.ListMembersRequest()) == "*"
    bind = entry("/sutradhar.v1.RbacService/ApplyRoleBinding")
    b = rbac_pb2.ApplyRoleBindingRequest(binding=rbac_pb2.RoleBinding(namespace="t", name="x"))
    assert (bind.namespace(b), bind.name(b), bind.extra(b)) == ("t", "x", (("create", "rolebindings"),))


def test_get_stats_without_a_namespace_is_every_namespace() -> None:
    stats = entry("/sutradhar.v1.RouterService/GetStats")
    assert (stats.verb, stats.resource) == ("get", "stats")
    assert stats.namespace(router_pb2.GetStatsRequest()) == "*"
    assert stats.namespace(router_pb2.GetStatsRequest(namespace="a")) == "a"


def test_router_execute_reads_the_selector_of_a_split_request() -> None:
    from sutradhar._routing import wire

    request = router_pb2.RouterServiceExecuteRequest(
        task=router_pb2.RouterServiceExecuteRequest().task, selector=router_pb2.Selector(namespace="t", agent_id="e"))
    request.task.id = "1"
    split = wire.split_route_request(request.SerializeToString())
    execute = entry("/sutradhar.v1.RouterService/Execute")
    assert (execute.verb, execute.resource) == ("execute", "agents")
    assert (execute.namespace(split), execute.name(split)) == ("t", "e")
    stream = entry("/sutradhar.v1.RouterService/ExecuteStream")
    assert stream.namespace(wire.split_route_stream_request(request.SerializeToString())) == "t"
    assert execute.namespace(request) == "t"  # a decoded request works too


def test_agents_whose_runtime_runs_code_need_define_code() -> None:
    register = entry("/sutradhar.v1.RegistryService/RegisterAgent")
    update = entry("/sutradhar.v1.RegistryService/UpdateAgent")
    for runtime in ("process", "container", "in-process", ""):
        req = registry_pb2.RegisterAgentRequest(agent=registry_pb2.Agent(runtime=runtime))
        assert register.extra(req) == (("define-code", "agents"),), runtime
        upd = registry_pb2.UpdateAgentRequest(agent=registry_pb2.Agent(runtime=runtime))
        assert update.extra(upd) == (("define-code", "agents"),), runtime
    http = registry_pb2.RegisterAgentRequest(agent=registry_pb2.Agent(runtime="http"))
    assert register.extra(http) == ()


def test_watch_needs_instances_too_unless_it_watches_agents_only() -> None:
    watch = entry("/sutradhar.v1.RegistryService/Watch")
    assert watch.extra(registry_pb2.WatchRequest()) == (("watch", "instances"),)
    agents_only = registry_pb2.WatchRequest(kinds=[registry_pb2.RESOURCE_KIND_AGENT])
    assert watch.extra(agents_only) == ()
