"""Registry instances over gRPC against a real etcd: leases, keep-alive, state, deletion."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
from google.protobuf import duration_pb2
from test_registry_support import expect_code, make_agent, make_instance, registry, snapshot, stub

from sutradhar.services.common import keys
from sutradhar.v1 import registry_pb2 as pb

__all__ = ["registry", "stub"]  # fixtures imported for pytest


async def _agent(stub, ns: str, agent_id: str = "echo", **fields) -> pb.Agent:
    return (await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent(agent_id, ns, **fields)))).agent


async def _instance(stub, ns: str, instance_id: str) -> pb.Instance:
    request = pb.RegisterInstanceRequest(instance=make_instance("echo", ns, id=instance_id))
    return (await stub.RegisterInstance(request)).instance


async def test_register_defaults_and_lease(stub, store, unique):
    ns = unique
    agent = await _agent(stub, ns, version="1.2.3", runtime="http", config={"url": "http://127.0.0.1:9"})
    inst = (await stub.RegisterInstance(pb.RegisterInstanceRequest(
        instance=make_instance("echo", ns, endpoint="http://127.0.0.1:9")))).instance
    assert re.fullmatch(r"echo-[0-9a-f]{8}", inst.id)
    assert inst.namespace == ns and inst.runtime == "http" and inst.version == agent.version
    assert inst.state == pb.INSTANCE_STATE_SERVING
    assert inst.lease_id > 0 and inst.lease_ttl.seconds == 10 and inst.register_time.seconds > 0
    kv = await store.get(keys.instance_key(ns, inst.id))
    assert kv is not None and kv.lease == inst.lease_id and kv.mod_revision == inst.resource_version
    assert (await store.lease_ttl(inst.lease_id)).total_seconds() > 5

    starting = (await stub.RegisterInstance(pb.RegisterInstanceRequest(
        instance=make_instance("echo", ns, id="s1", version="1.3.0", state=pb.INSTANCE_STATE_STARTING),
        ttl=duration_pb2.Duration(seconds=30)))).instance
    assert (starting.id, starting.state, starting.version, starting.lease_ttl.seconds) == (
        "s1", pb.INSTANCE_STATE_STARTING, "1.3.0", 30,
    )
    got = (await stub.GetInstance(pb.GetInstanceRequest(namespace=ns, id="s1"))).instance
    assert got == starting


async def test_register_refusals_leave_nothing(stub, store, unique):
    ns = unique
    await _agent(stub, ns)
    await stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("echo", ns, id="one")))
    before = await snapshot(store, ns)
    err = await expect_code(
        stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("nope", ns))), grpc.StatusCode.NOT_FOUND
    )
    assert "nope" in err.details() and "register the agent first" in err.details()
    await expect_code(
        stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("echo", ns, id="one"))),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    for ttl in (1, 301):
        err = await expect_code(
            stub.RegisterInstance(pb.RegisterInstanceRequest(
                instance=make_instance("echo", ns), ttl=duration_pb2.Duration(seconds=ttl))),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert err.details().startswith("ttl:")
    for bad, field in (
        (make_instance("echo", ns, endpoint=""), "instance.endpoint"),
        (make_instance("echo", ns, id="Bad_Id"), "instance.id"),
        (make_instance("echo", ns, version="banana"), "instance.version"),
        (make_instance("echo", ns, labels={"x": "bad value"}), 'instance.labels["x"]'),
    ):
        err = await expect_code(
            stub.RegisterInstance(pb.RegisterInstanceRequest(instance=bad)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert err.details().startswith(field), err.details()
    assert await snapshot(store, ns) == before


async def test_replace_moves_the_instance_to_a_new_lease(stub, store, unique):
    ns = unique
    await _agent(stub, ns)
    first = await _instance(stub, ns, "r")
    second = (await stub.RegisterInstance(pb.RegisterInstanceRequest(
        instance=make_instance("echo", ns, id="r", endpoint="127.0.0.1:51000"), replace=True))).instance
    assert second.lease_id != first.lease_id and second.endpoint == "127.0.0.1:51000"
    assert await store.lease_ttl(first.lease_id) is None  # the old lease is revoked
    # keep-alive with the old lease is told to register again
    err = await expect_code(
        stub.KeepAliveInstance(pb.KeepAliveInstanceRequest(namespace=ns, id="r", lease_id=first.lease_id)),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "register again" in err.details()


async def test_lease_lapse_and_keep_alive(stub, unique):
    ns = unique
    await _agent(stub, ns)
    two = duration_pb2.Duration(seconds=2)
    await stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("echo", ns, id="kept"), ttl=two))
    lapsing = (await stub.RegisterInstance(pb.RegisterInstanceRequest(
        instance=make_instance("echo", ns, id="lapsing"), ttl=two))).instance

    loop = asyncio.get_running_loop()
    start = loop.time()
    gone_after = None
    while loop.time() - start < 4.5:
        reply = await stub.KeepAliveInstance(pb.KeepAliveInstanceRequest(namespace=ns, id="kept"))
        assert reply.ttl.seconds == 2
        listed = {i.id for i in (await stub.ListInstances(pb.ListInstancesRequest(namespace=ns))).instances}
        assert "kept" in listed
        if gone_after is None and "lapsing" not in listed:
            gone_after = loop.time() - start
        await asyncio.sleep(0.5)
    assert gone_after is not None, "the instance without keep-alive did not lapse"
    assert gone_after <= 3.5
    err = await expect_code(
        stub.KeepAliveInstance(pb.KeepAliveInstanceRequest(namespace=ns, id="lapsing", lease_id=lapsing.lease_id)),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "register" in err.details()


async def test_update_state_keeps_the_lease(stub, store, unique):
    ns = unique
    await _agent(stub, ns)
    inst = await _instance(stub, ns, "d")
    drained = (await stub.UpdateInstanceState(
        pb.UpdateInstanceStateRequest(namespace=ns, id="d", state=pb.INSTANCE_STATE_DRAINING))).instance
    assert drained.state == pb.INSTANCE_STATE_DRAINING and drained.lease_id == inst.lease_id
    assert drained.resource_version > inst.resource_version
    kv = await store.get(keys.instance_key(ns, "d"))
    assert kv.lease == inst.lease_id
    await expect_code(
        stub.UpdateInstanceState(pb.UpdateInstanceStateRequest(namespace=ns, id="d")), grpc.StatusCode.INVALID_ARGUMENT
    )
    await expect_code(
        stub.UpdateInstanceState(pb.UpdateInstanceStateRequest(namespace=ns, id="zz", state=pb.INSTANCE_STATE_SERVING)),
        grpc.StatusCode.NOT_FOUND,
    )
    # concurrent state writes all land (CAS with retry), the last one wins
    states = [pb.INSTANCE_STATE_SERVING, pb.INSTANCE_STATE_NOT_SERVING] * 4
    await asyncio.gather(*(
        stub.UpdateInstanceState(pb.UpdateInstanceStateRequest(namespace=ns, id="d", state=s)) for s in states
    ))
    final = (await stub.GetInstance(pb.GetInstanceRequest(namespace=ns, id="d"))).instance
    assert final.state in (pb.INSTANCE_STATE_SERVING, pb.INSTANCE_STATE_NOT_SERVING)
    assert final.lease_id == inst.lease_id


async def test_list_instances_filters(stub, unique):
    ns = unique
    await _agent(stub, ns, "a")
    await _agent(stub, ns, "b")
    for agent_id, inst_id, state, labels in (
        ("a", "a-1", pb.INSTANCE_STATE_SERVING, {"rev": "1"}),
        ("a", "a-2", pb.INSTANCE_STATE_STARTING, {"rev": "2"}),
        ("b", "b-1", pb.INSTANCE_STATE_SERVING, {"rev": "2"}),
    ):
        await stub.RegisterInstance(pb.RegisterInstanceRequest(
            instance=make_instance(agent_id, ns, id=inst_id, state=state, labels=labels)))

    async def ids(**filters) -> list[str]:
        return [i.id for i in (await stub.ListInstances(pb.ListInstancesRequest(namespace=ns, **filters))).instances]

    assert await ids() == ["a-1", "a-2", "b-1"]
    assert await ids(agent_id="a") == ["a-1", "a-2"]
    assert await ids(state=pb.INSTANCE_STATE_SERVING) == ["a-1", "b-1"]
    assert await ids(label_selector="rev=2") == ["a-2", "b-1"]
    assert await ids(agent_id="a", label_selector="rev in (2,3)") == ["a-2"]
    await expect_code(stub.ListInstances(pb.ListInstancesRequest(namespace=ns, label_selector="(")),
                      grpc.StatusCode.INVALID_ARGUMENT)


async def test_deregister_instance_and_agent(stub, store, unique):
    ns = unique
    await _agent(stub, ns)
    one = await _instance(stub, ns, "x1")
    two = await _instance(stub, ns, "x2")

    await stub.DeregisterInstance(pb.DeregisterInstanceRequest(namespace=ns, id="x1"))
    assert await store.lease_ttl(one.lease_id) is None
    await expect_code(stub.DeregisterInstance(pb.DeregisterInstanceRequest(namespace=ns, id="x1")),
                      grpc.StatusCode.NOT_FOUND)

    before = await snapshot(store, ns)
    err = await expect_code(stub.DeregisterAgent(pb.DeregisterAgentRequest(namespace=ns, id="echo")),
                            grpc.StatusCode.FAILED_PRECONDITION)
    assert "x2" in err.details() and "force" in err.details()
    assert await snapshot(store, ns) == before

    await stub.DeregisterAgent(pb.DeregisterAgentRequest(namespace=ns, id="echo", force=True))
    assert await snapshot(store, ns) == []
    assert await store.lease_ttl(two.lease_id) is None


@pytest.mark.parametrize("rpc", ["GetInstance", "DeregisterInstance"])
async def test_bad_instance_names(stub, unique, rpc):
    request = getattr(pb, f"{rpc}Request")(namespace=unique, id="Not/Valid")
    err = await expect_code(getattr(stub, rpc)(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert err.details().startswith("id:")
