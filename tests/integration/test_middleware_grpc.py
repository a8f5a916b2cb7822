"""The middleware chain over real gRPC: every service maps its errors through
it, a registry conflict arrives as `Conflict` (ABORTED), grpc.health.v1 and
reflection keep working, and a stage sees the ServicerContext and sets
per-request context for the handler."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sutradhar import Conflict, RegistryClient
from sutradhar._hosting import GrpcHost
from sutradhar._middleware import Method, Stage, Streaming, Unary
from sutradhar.services.health.server import HealthConfig, HealthServer
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.server import SchedulerServer
from sutradhar.v1 import registry_pb2
from tests.integration.test_registry_support import make_agent

#: Field 1 (a string in every request below) holding invalid UTF-8.
GARBAGE = b"\x0a\x01\xff"


async def raw_call(address: str, method: str, payload: bytes) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(payload, timeout=10)
    return err.value


@pytest.fixture
async def mesh(etcd: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with contextlib.AsyncExitStack() as stack:  # each server is stopped even if a later one fails to start
        registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
        await registry.start()
        stack.push_async_callback(registry.stop, timedelta(0))
        router = RouterServer(RouterConfig(insecure=True, port=0, registry=None))
        await router.start()
        stack.push_async_callback(router.stop, timedelta(0))
        scheduler = SchedulerServer(SchedulerConfig(insecure=True,
            port=0, etcd=etcd, registry=registry.address, state_dir=tmp_path, member_id=f"middleware-{tmp_path.name}",
        ))
        await scheduler.start()
        stack.push_async_callback(scheduler.stop)
        health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd, member_ttl=timedelta(seconds=2)))
        await health.start()
        stack.push_async_callback(health.stop)
        yield {
            "registry": registry.address,
            "router": router.address,
            "scheduler": scheduler.address,
            "health": health.address,
        }


async def test_every_service_maps_its_errors_through_the_chain(mesh: dict[str, str], unique: str) -> None:
    calls = {
        "registry": ("/sutradhar.v1.RegistryService/GetAgent", "sutradhar.v1.GetAgentRequest"),
        "router": ("/sutradhar.v1.RouterService/GetStats", "sutradhar.v1.GetStatsRequest"),
        "scheduler": ("/sutradhar.v1.SchedulerService/GetDeployment", "sutradhar.v1.GetDeploymentRequest"),
        "health": ("/sutradhar.v1.HealthService/GetInstanceHealth", "sutradhar.v1.GetInstanceHealthRequest"),
    }
    for service, (method, request_type) in calls.items():
        err = await raw_call(mesh[service], method, GARBAGE)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (service, err.code(), err.details())
        assert (err.details() or "").startswith(f"request is not a valid {request_type}"), (service, err.details())

    # A domain error keeps its code and its message on each service.
    missing = registry_pb2.GetAgentRequest(namespace=unique, id="ghost").SerializeToString()
    err = await raw_call(mesh["registry"], calls["registry"][0], missing)
    assert err.code() == grpc.StatusCode.NOT_FOUND and "ghost" in (err.details() or "")
    err = await raw_call(mesh["scheduler"], calls["scheduler"][0], missing)  # same fields: namespace, name
    assert err.code() == grpc.StatusCode.NOT_FOUND and "ghost" in (err.details() or "")
    err = await raw_call(mesh["router"], calls["router"][0], b"\x0a\x04..%x")  # namespace "..%x"
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "namespace" in (err.details() or "")


async def test_a_registry_conflict_arrives_as_conflict_with_code_aborted(mesh: dict[str, str], unique: str) -> None:
    async with RegistryClient(mesh["registry"]) as client:
        created = await client.register_agent(make_agent("echo", unique))
        fresh = registry_pb2.Agent()
        fresh.CopyFrom(created)
        fresh.description = "first"
        await client.update_agent(fresh)
        stale = registry_pb2.Agent()
        stale.CopyFrom(created)  # the resource_version of before the update
        stale.description = "second"
        with pytest.raises(Conflict) as caught:
            await client.update_agent(stale)
    assert caught.value.code == grpc.StatusCode.ABORTED
    assert "changed since" in caught.value.message


async def test_standard_health_and_reflection_work_on_every_service(mesh: dict[str, str]) -> None:
    for service, address in mesh.items():
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=10)).status in (
                health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING,
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            # Watch writes with context.write; through ErrorInterceptor it failed with INTERNAL.
            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
            first = await watch.read()
            assert first.status != health_pb2.HealthCheckResponse.SERVICE_UNKNOWN, service
            watch.cancel()

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            info = stub.ServerReflectionInfo(timeout=10)
            await info.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            listed = await info.read()
            await info.done_writing()
            names = {s.name for s in listed.list_services_response.service}
            assert "grpc.health.v1.Health" in names and any(n.startswith("sutradhar.v1.") for n in names), names


caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")


class Identify:
    """An authentication-like stage: reads the ServicerContext, sets `caller`."""

    stage = Stage.AUTHENTICATION

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, str]] = []

    def unary(self, method: Method, call_next: Unary) -> Unary:
        if method.infrastructure:
            return call_next

        async def identify(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = dict(context.invocation_metadata() or ())
            self.seen.append((method.full_name, method.server_streaming, context.peer()))
            caller.set(str(metadata.get("caller", "")))
            return await call_next(request, context)

        return identify

    def stream(self, method: Method, call_next: Streaming) -> Streaming:
        if method.infrastructure:
            return call_next

        async def identify(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            self.seen.append((method.full_name, method.server_streaming, context.peer()))
            caller.set(str(dict(context.invocation_metadata() or ()).get("caller", "")))
            async for item in call_next(request, context):
                yield item

        return identify


async def test_a_stage_sees_the_context_and_sets_per_request_context() -> None:
    identify = Identify()
    host = GrpcHost(service_names=["test.Echo"], middleware=[identify])

    async def who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.sleep(0.01)  # let the other calls set their own caller meanwhile
        return caller.get().encode()

    async def who_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        yield caller.get().encode()
        yield b"again " + caller.get().encode()

    host.add_method_handlers("test.Echo", {
        "Who": grpc.unary_unary_rpc_method_handler(who),
        "WhoStream": grpc.unary_stream_rpc_method_handler(who_stream),
    })
    await host.start()
    await host.set_serving()
    try:
        async with grpc.aio.insecure_channel(host.address) as channel:
            who_call = channel.unary_unary("/test.Echo/Who")
            answers = await asyncio.gather(*(
                who_call(b"", metadata=(("caller", f"c{i}"),), timeout=10) for i in range(4)
            ))
            assert answers == [b"c0", b"c1", b"c2", b"c3"]
            stream = channel.unary_stream("/test.Echo/WhoStream")(b"", metadata=(("caller", "s"),), timeout=10)
            assert [item async for item in stream] == [b"s", b"again s"]
            health = health_pb2_grpc.HealthStub(channel)
            await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    finally:
        await host.stop(timedelta(0))
    assert sorted(m for m, _, _ in identify.seen) == ["/test.Echo/Who"] * 4 + ["/test.Echo/WhoStream"]
    assert all(peer.startswith("ipv4:127.0.0.1:") for _, _, peer in identify.seen)
    assert [s for m, s, _ in identify.seen if m == "/test.Echo/WhoStream"] == [True]
