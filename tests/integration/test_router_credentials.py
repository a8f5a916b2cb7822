"""A caller's credentials stop at the router: an agent behind it never sees the
caller's authorization header (nor any other invocation metadata the caller sent).

The router hands its engine the task bytes and the deadline only
(services/router/server.py `_execute`, `_execute_stream`), and its transports
call agents with the task alone (sdk/sutradhar/_route_transports.py); this test
holds that over real gRPC with an insecure mesh as the other router tests use.
"""

from __future__ import annotations

from datetime import timedelta

import grpc

from sutradhar import RegistryClient
from sutradhar._values import to_value
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.v1 import agent_pb2, registry_pb2, router_pb2, router_pb2_grpc
from tests.support import eventually

SECRET = "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2VjcmV0LXNpZ25hdHVyZQ"


class RecordingAgent:
    """An AgentService that keeps the metadata of every call it gets."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.server = grpc.aio.server()
        handlers = {
            "Execute": grpc.unary_unary_rpc_method_handler(self._execute),
            "ExecuteStream": grpc.unary_stream_rpc_method_handler(self._stream),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("sutradhar.v1.AgentService", handlers),))
        self.endpoint = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def _keep(self, context: grpc.aio.ServicerContext) -> None:
        self.seen.append({k: v if isinstance(v, str) else "<bytes>" for k, v in context.invocation_metadata() or ()})

    async def _execute(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self._keep(context)
        return agent_pb2.ExecuteResponse(result=agent_pb2.Result(success=True, data=to_value("ok"))).SerializeToString()

    async def _stream(self, request: bytes, context: grpc.aio.ServicerContext):
        self._keep(context)
        yield agent_pb2.ExecuteStreamResponse(result=agent_pb2.Result(success=True)).SerializeToString()


async def test_an_agent_behind_the_router_never_sees_the_callers_authorization(etcd, unique):
    registry = RegistryServer(RegistryConfig(port=0, etcd=etcd, insecure=True))
    await registry.start()
    router = RouterServer(RouterConfig(port=0, registry=registry.address, insecure=True))
    await router.start()
    agent = RecordingAgent()
    await agent.server.start()
    try:
        async with RegistryClient(registry.address) as reg:
            await reg.register_agent(registry_pb2.Agent(id="echo", namespace=unique, type="echo", version="1.0.0",
                                                        runtime="process"))
            await reg.register_instance(registry_pb2.Instance(
                id="echo-0", namespace=unique, agent_id="echo", endpoint=agent.endpoint, runtime="process",
                state=registry_pb2.INSTANCE_STATE_SERVING), ttl=timedelta(seconds=60))
        await eventually(lambda: any(n == unique for (n, _), b in router.view.backends.items()
                                     if router.view.routable(b)), within=10, what="router never saw the instance")
        metadata = [("authorization", SECRET), ("x-caller-secret", "do-not-forward")]
        selector = router_pb2.Selector(namespace=unique, agent_type="echo")
        task = agent_pb2.Task(id="t1")
        async with grpc.aio.insecure_channel(router.address) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            response = await stub.Execute(router_pb2.RouterServiceExecuteRequest(task=task, selector=selector),
                                          metadata=metadata, timeout=5)
            assert response.result.success
            stream = stub.ExecuteStream(router_pb2.RouterServiceExecuteStreamRequest(task=task, selector=selector),
                                        metadata=metadata, timeout=5)
            assert [m async for m in stream][-1].result.success
        assert len(agent.seen) == 2
        for seen in agent.seen:
            assert "user-agent" in seen  # metadata is recorded: what arrives is the router's own
            assert "authorization" not in seen and "x-caller-secret" not in seen, seen
            assert not any(SECRET.split()[1] in v for v in seen.values())
    finally:
        await agent.server.stop(0)
        await router.stop(timedelta(seconds=1))
        await registry.stop()
