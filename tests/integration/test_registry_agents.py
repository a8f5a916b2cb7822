"""Registry agents over gRPC against a real etcd: CRUD, filters, every bad input."""

from __future__ import annotations

import grpc
import pytest
from test_registry_support import expect_code, make_agent, make_instance, registry, snapshot, stub

from sutradhar._values import to_struct
from sutradhar.v1 import registry_pb2 as pb

__all__ = ["registry", "stub"]  # fixtures imported for pytest

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_agent_crud(stub, unique):
    ns = unique
    created = (await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("echo", ns)))).agent
    assert created.resource_version > 0
    assert created.create_time.seconds > 0 and created.create_time == created.update_time
    got = (await stub.GetAgent(pb.GetAgentRequest(namespace=ns, id="echo"))).agent
    assert got == created

    changed = make_agent("echo", ns, version="1.1.0", description="v2", resource_version=got.resource_version)
    updated = (await stub.UpdateAgent(pb.UpdateAgentRequest(agent=changed))).agent
    assert updated.version == "1.1.0" and updated.description == "v2"
    assert updated.resource_version > created.resource_version
    assert updated.create_time == created.create_time

    # a stale resource_version is refused, and nothing changes
    stale = make_agent("echo", ns, version="9.9.9", resource_version=created.resource_version)
    err = await expect_code(stub.UpdateAgent(pb.UpdateAgentRequest(agent=stale)), grpc.StatusCode.ABORTED)
    assert "changed since" in err.details()
    assert (await stub.GetAgent(pb.GetAgentRequest(namespace=ns, id="echo"))).agent.version == "1.1.0"

    # update without resource_version overwrites; output-only fields in the request are ignored
    blind = make_agent("echo", ns, version="1.2.0")
    blind.create_time.seconds = 1
    assert (await stub.UpdateAgent(pb.UpdateAgentRequest(agent=blind))).agent.create_time == created.create_time

    deleted = (await stub.DeregisterAgent(pb.DeregisterAgentRequest(namespace=ns, id="echo"))).agent
    assert deleted.version == "1.2.0"
    await expect_code(stub.GetAgent(pb.GetAgentRequest(namespace=ns, id="echo")), grpc.StatusCode.NOT_FOUND)
    await expect_code(
        stub.DeregisterAgent(pb.DeregisterAgentRequest(namespace=ns, id="echo")), grpc.StatusCode.NOT_FOUND
    )


async def test_duplicate_and_missing(stub, store, unique):
    ns = unique
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("dup", ns)))
    before = await snapshot(store, ns)
    err = await expect_code(
        stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("dup", ns, version="2.0.0"))),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert "dup" in err.details()
    err = await expect_code(
        stub.UpdateAgent(pb.UpdateAgentRequest(agent=make_agent("ghost", ns))), grpc.StatusCode.NOT_FOUND
    )
    assert "ghost" in err.details()
    assert await snapshot(store, ns) == before
    # allow_missing creates
    made = (await stub.UpdateAgent(pb.UpdateAgentRequest(agent=make_agent("ghost", ns), allow_missing=True))).agent
    assert made.create_time.seconds > 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": "Bad_Id"}, "agent.id"),
        ({"id": ""}, "agent.id"),
        ({"version": "banana"}, "agent.version"),
        ({"runtime": "docker"}, "agent.runtime"),
        ({"type": "UPPER"}, "agent.type"),
        ({"config": {"command": "x", "unknown": 1}}, "agent.config.unknown"),
        ({"runtime": "container", "config": {"port": 80}}, "agent.config.image"),
        ({"description": "x" * 5000}, "agent.description"),
        ({"labels": {"bad key": "v"}}, "agent.labels"),
        ({"capabilities": ["a", "a"]}, "agent.capabilities[1]"),
        ({"resources": pb.Resources(memory="1Mi")}, "agent.resources.memory"),
    ],
)
async def test_bad_agent_is_refused_naming_the_field(stub, store, unique, fields, field):
    ns = unique
    agent_id = fields.pop("id", "bad")
    before = await snapshot(store, ns)
    for call in (
        stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent(agent_id, ns, **dict(fields)))),
        stub.UpdateAgent(pb.UpdateAgentRequest(agent=make_agent(agent_id, ns, **dict(fields)), allow_missing=True)),
    ):
        err = await expect_code(call, INVALID)
        assert err.details().startswith(f"{field}"), err.details()
    assert await snapshot(store, ns) == before


async def test_banana_message(stub, unique):
    err = await expect_code(
        stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("b", unique, version="banana"))), INVALID
    )
    assert err.details() == (
        'agent.version: "banana" is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.4.0)'
    )


async def test_missing_agent_and_bad_names(stub, unique):
    await expect_code(stub.RegisterAgent(pb.RegisterAgentRequest()), INVALID)
    await expect_code(stub.GetAgent(pb.GetAgentRequest(namespace=unique, id="No")), INVALID)
    await expect_code(stub.GetAgent(pb.GetAgentRequest(namespace="*", id="x")), INVALID)
    await expect_code(stub.ListAgents(pb.ListAgentsRequest(namespace=unique, version_range=">>1")), INVALID)
    await expect_code(stub.ListAgents(pb.ListAgentsRequest(namespace=unique, label_selector="a in")), INVALID)
    await expect_code(stub.ListAgents(pb.ListAgentsRequest(namespace=unique, runtime="vm")), INVALID)


async def test_oversized_request_is_resource_exhausted(stub, store, unique):
    agent = make_agent("big", unique, config={"command": "x", "env": {"BIG": "y" * (5 * 1024 * 1024)}})
    err = await expect_code(
        stub.RegisterAgent(pb.RegisterAgentRequest(agent=agent)), grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    assert "larger than" in err.details().lower() or "max" in err.details().lower()
    assert await snapshot(store, unique) == []
    # just under 4 MiB reaches validation and is refused for the 64 KiB config limit instead
    agent = make_agent("big", unique, config={"command": "x", "env": {"BIG": "y" * (3 * 1024 * 1024)}})
    err = await expect_code(stub.RegisterAgent(pb.RegisterAgentRequest(agent=agent)), INVALID)
    assert err.details().startswith("agent.config:")


async def test_list_filters(stub, unique):
    ns = unique
    specs = [
        ("a1", {"type": "tutor", "version": "1.4.2", "capabilities": ["answer", "hint"], "labels": {"tier": "gold"}}),
        ("a2", {"type": "tutor", "version": "2.0.0", "capabilities": ["answer"], "labels": {"tier": "silver"}}),
        ("a3", {"type": "review", "version": "1.9.0", "capabilities": ["hint"], "runtime": "http",
                "config": {"urls": ["http://127.0.0.1:8080"]}}),
    ]
    for agent_id, fields in specs:
        await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent(agent_id, ns, **fields)))

    async def ids(**filters) -> list[str]:
        res = await stub.ListAgents(pb.ListAgentsRequest(namespace=ns, **filters))
        assert res.revision > 0
        return [a.id for a in res.agents]

    assert await ids() == ["a1", "a2", "a3"]
    assert await ids(type="tutor") == ["a1", "a2"]
    assert await ids(capabilities=["answer", "hint"]) == ["a1"]
    assert await ids(capabilities=["hint"]) == ["a1", "a3"]
    assert await ids(label_selector="tier=gold") == ["a1"]
    assert await ids(label_selector="tier!=gold") == ["a2", "a3"]
    assert await ids(label_selector="tier in (gold,silver),!legacy") == ["a1", "a2"]
    assert await ids(version_range="^1.4") == ["a1", "a3"]
    assert await ids(version_range=">=1.5 <2") == ["a3"]
    assert await ids(runtime="http") == ["a3"]
    assert await ids(type="tutor", version_range="*", capabilities=["answer"], label_selector="tier") == ["a1", "a2"]


async def test_namespace_isolation(stub, unique):
    ns_a, ns_b = f"{unique}-a", f"{unique}-b"
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("same", ns_a, description="A")))
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("same", ns_b, description="B")))
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("only-a", ns_a)))
    await stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("only-a", ns_a, id="i-a")))

    b = await stub.ListAgents(pb.ListAgentsRequest(namespace=ns_b))
    assert [(x.namespace, x.id, x.description) for x in b.agents] == [(ns_b, "same", "B")]
    await expect_code(stub.GetAgent(pb.GetAgentRequest(namespace=ns_b, id="only-a")), grpc.StatusCode.NOT_FOUND)
    await expect_code(stub.GetInstance(pb.GetInstanceRequest(namespace=ns_b, id="i-a")), grpc.StatusCode.NOT_FOUND)
    assert not (await stub.ListInstances(pb.ListInstancesRequest(namespace=ns_b))).instances
    # an instance cannot join an agent of another namespace
    await expect_code(
        stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("only-a", ns_b))),
        grpc.StatusCode.NOT_FOUND,
    )
    every = await stub.ListAgents(pb.ListAgentsRequest(namespace="*", label_selector=""))
    mine = [(x.namespace, x.id) for x in every.agents if x.namespace.startswith(unique)]
    assert mine == [(ns_a, "only-a"), (ns_a, "same"), (ns_b, "same")]
    # deleting in B leaves A alone
    await stub.DeregisterAgent(pb.DeregisterAgentRequest(namespace=ns_b, id="same"))
    assert (await stub.GetAgent(pb.GetAgentRequest(namespace=ns_a, id="same"))).agent.description == "A"


async def test_default_namespace(stub, unique):
    agent_id = unique
    created = (await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent(agent_id, "")))).agent
    try:
        assert created.namespace == "default"
        assert (await stub.GetAgent(pb.GetAgentRequest(id=agent_id))).agent.namespace == "default"
    finally:
        await stub.DeregisterAgent(pb.DeregisterAgentRequest(id=agent_id, force=True))


async def test_in_process_and_container_agents_store_their_config(stub, unique):
    agent = make_agent("c", unique, runtime="container", config={"image": "echo:1", "port": 8080})
    stored = (await stub.RegisterAgent(pb.RegisterAgentRequest(agent=agent))).agent
    assert stored.config == to_struct({"image": "echo:1", "port": 8080})
