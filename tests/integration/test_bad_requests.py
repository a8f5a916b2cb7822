"""Bad requests against real servers (registry, health, router on port 0, the
session etcd): bad bytes, absurd values and huge strings get INVALID_ARGUMENT
naming the field, with a bounded message, and leave nothing in etcd; a watch
from a future revision is OUT_OF_RANGE."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from sutradhar.services.common import keys
from sutradhar.services.common.store import Store
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.services.registry import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.v1 import (
    agent_pb2,
    health_pb2,
    health_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)
from tests.support import rpc_status

LONG = "a" * 10_000


@pytest.fixture(scope="module")
async def mesh(etcd: str) -> AsyncIterator[dict[str, str]]:
    """Registry, health and router servers over the session etcd: their addresses."""
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd))
    router = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address))
    try:
        await health.start()
        await router.start()
        # Execute answers UNAVAILABLE until the router has the registry's state: wait for it
        assert await router.wait_synced(timedelta(seconds=10)), "the router did not sync with the registry"
        yield {"registry": registry.address, "health": health.address, "router": router.address}
    finally:
        await router.stop()
        await health.stop()
        await registry.stop()


async def _raw(address: str, method: str, raw: bytes, *, stream: bool = False) -> tuple[grpc.StatusCode, str]:
    async with grpc.aio.insecure_channel(address) as channel:
        if stream:
            call = channel.unary_stream(method)(raw, timeout=5)

            async def drain() -> None:
                async for _ in call:
                    pass

            return await rpc_status(drain())
        return await rpc_status(channel.unary_unary(method)(raw, timeout=5))


BAD_UTF8_FIELD_2 = b"\x12\x03a\xffb"  # field 2 (a string in every request below) with invalid UTF-8
CORRUPT = b"\xff\xff\xff"


@pytest.mark.parametrize(
    ("service", "method", "stream"),
    [
        ("registry", "/sutradhar.v1.RegistryService/GetAgent", False),
        ("registry", "/sutradhar.v1.RegistryService/ListAgents", False),
        ("registry", "/sutradhar.v1.RegistryService/Watch", True),
        ("health", "/sutradhar.v1.HealthService/GetAgentHealth", False),
        ("health", "/sutradhar.v1.HealthService/ListMembers", False),
        ("health", "/sutradhar.v1.HealthService/WatchHealth", True),
        ("router", "/sutradhar.v1.RouterService/GetStats", False),
        ("router", "/sutradhar.v1.RouterService/Execute", False),
    ],
)
async def test_undecodable_requests_are_invalid_argument(mesh, service: str, method: str, stream: bool) -> None:
    # Before: UNKNOWN "Unexpected <class 'DecodeError'>" from grpc's own deserializer call.
    for raw in (BAD_UTF8_FIELD_2, CORRUPT):
        if raw is BAD_UTF8_FIELD_2 and method.endswith(("ListMembers", "Execute")):
            continue  # field 2 is not a string there
        code, details = await _raw(mesh[service], method, raw, stream=stream)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, raw, code, details)


async def test_huge_strings_are_invalid_argument_with_a_bounded_message(mesh, unique: str) -> None:
    # Before: the message quoted all 10k characters, the status overflowed gRPC's
    # metadata limit and the caller got RESOURCE_EXHAUSTED "Stream removed".
    async with (
        grpc.aio.insecure_channel(mesh["registry"]) as rc,
        grpc.aio.insecure_channel(mesh["health"]) as hc,
        grpc.aio.insecure_channel(mesh["router"]) as oc,
    ):
        reg = registry_pb2_grpc.RegistryServiceStub(rc)
        hea = health_pb2_grpc.HealthServiceStub(hc)
        rou = router_pb2_grpc.RouterServiceStub(oc)
        calls = {
            "registry GetAgent": reg.GetAgent(registry_pb2.GetAgentRequest(id=LONG)),
            "registry ListAgents": reg.ListAgents(registry_pb2.ListAgentsRequest(namespace=LONG)),
            "registry RegisterInstance": reg.RegisterInstance(registry_pb2.RegisterInstanceRequest(
                instance=registry_pb2.Instance(id=LONG, agent_id="x", endpoint="127.0.0.1:1"))),
            "health GetInstanceHealth": hea.GetInstanceHealth(health_pb2.GetInstanceHealthRequest(instance_id=LONG)),
            "health ListAgentHealth": hea.ListAgentHealth(health_pb2.ListAgentHealthRequest(namespace=LONG)),
            "router Execute": rou.Execute(router_pb2.RouterServiceExecuteRequest(
                task=agent_pb2.Task(type="t"), selector=router_pb2.Selector(agent_type=LONG))),
            "router GetStats": rou.GetStats(router_pb2.GetStatsRequest(namespace=LONG)),
        }
        for name, call in calls.items():
            code, details = await rpc_status(call)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, code, details[:200])
            assert len(details) < 4096, name


async def test_absurd_values_are_invalid_argument_and_write_nothing(mesh, store: Store, unique: str) -> None:
    async with grpc.aio.insecure_channel(mesh["registry"]) as channel:
        reg = registry_pb2_grpc.RegistryServiceStub(channel)
        agent = registry_pb2.Agent(id="a", namespace=unique, type="echo", version="1.0.0", runtime="process")
        await reg.RegisterAgent(registry_pb2.RegisterAgentRequest(agent=agent))

        nan_agent = registry_pb2.Agent(id="b", namespace=unique, type="echo", version="1.0.0", runtime="process")
        nan_agent.config.fields["x"].number_value = math.nan
        code, details = await rpc_status(reg.RegisterAgent(registry_pb2.RegisterAgentRequest(agent=nan_agent)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("agent.config:"), details  # was INTERNAL

        req = registry_pb2.RegisterInstanceRequest(
            instance=registry_pb2.Instance(id="i", namespace=unique, agent_id="a", endpoint="127.0.0.1:1"))
        req.ttl.seconds = 2**62
        code, details = await rpc_status(reg.RegisterInstance(req))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("ttl:"), details  # was INTERNAL

    kvs, _ = await store.list(keys.kind_prefix(keys.INSTANCES, unique))
    assert kvs == []
    kvs, _ = await store.list(keys.kind_prefix(keys.AGENTS, unique))
    assert [kv.key for kv in kvs] == [keys.agent_key(unique, "a")]


async def test_router_stats_refuse_a_malformed_filter(mesh) -> None:
    async with grpc.aio.insecure_channel(mesh["router"]) as channel:
        rou = router_pb2_grpc.RouterServiceStub(channel)
        code, details = await rpc_status(rou.GetStats(router_pb2.GetStatsRequest(namespace="a/b")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("namespace:"), details
        code, _ = await rpc_status(rou.GetStats(router_pb2.GetStatsRequest(namespace="*", agent_type="echo")))
        assert code == grpc.StatusCode.OK


async def test_watch_from_a_future_revision_is_out_of_range(mesh) -> None:
    # Before: the stream hung silently (etcd waits for the revision) until the
    # caller's deadline. OUT_OF_RANGE makes watchers list again, as after a compaction.
    async with grpc.aio.insecure_channel(mesh["registry"]) as channel:
        reg = registry_pb2_grpc.RegistryServiceStub(channel)
        current = (await reg.ListAgents(registry_pb2.ListAgentsRequest())).revision

        async def first(start: int) -> None:
            async for _ in reg.Watch(registry_pb2.WatchRequest(start_revision=start), timeout=5):
                return

        code, details = await rpc_status(first(2**62))
        assert code == grpc.StatusCode.OUT_OF_RANGE and "start_revision" in details, (code, details)
        # The next revision is a valid resume point: the stream opens and waits.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first(current + 1), 0.5)


