"""A server whose answers do not decode as the method's response: every SDK client raises
INTERNAL (gRPC's code for a response that does not parse, which grpc-js, grpc-go and grpc-java
raise themselves) naming the address and the service, never an AttributeError on the None that
grpc.aio hands back for such a message (it logs the decoding error instead of raising it).
Real grpc.aio servers on loopback, answering corrupt bytes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sutradhar import AgentClient, RouterClient
from sutradhar._errors import Internal

#: An ExecuteResponse whose result data is a Struct cut short: it does not parse.
CORRUPT = b"\x0a\x09\x08\x01\x12\x05\x2a\x03\x0a\x64\x01"
#: An ExecuteStreamResponse whose partial value is a Struct cut short.
CORRUPT_EVENT = b"\x12\x05\x2a\x03\x0a\x64\x01"


@pytest.fixture
async def garbage_server() -> AsyncIterator[str]:
    """Agent and router services on one loopback port, answering CORRUPT to Execute and CORRUPT_EVENT
    to ExecuteStream."""
    async def unary(request: bytes, context: Any) -> bytes:
        return CORRUPT

    async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield CORRUPT_EVENT

    methods = {"Execute": grpc.unary_unary_rpc_method_handler(unary),
               "ExecuteStream": grpc.unary_stream_rpc_method_handler(stream)}
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(f"sutradhar.v1.{name}", methods)
                                     for name in ("AgentService", "RouterService")])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def _says(service: str, address: str) -> str:
    return re.escape(f"{address} answered a message that is not a valid response of sutradhar.v1.{service}")


async def test_agent_client_calls_and_streams_are_internal(garbage_server: str) -> None:
    async with AgentClient(garbage_server) as client:
        with pytest.raises(Internal, match=_says("AgentService", garbage_server)) as caught:
            await client.execute({"a": 1}, timeout=5)
        assert caught.value.code == grpc.StatusCode.INTERNAL
        with pytest.raises(Internal, match=_says("AgentService", garbage_server)):
            async for _ in client.execute_stream({"a": 1}, timeout=5):
                pass


async def test_router_client_calls_and_streams_are_internal(garbage_server: str) -> None:
    async with RouterClient(garbage_server) as client:
        with pytest.raises(Internal, match=_says("RouterService", garbage_server)):
            await client.execute("echo", {"a": 1}, timeout=5)
        with pytest.raises(Internal, match=_says("RouterService", garbage_server)):
            async for _ in client.execute_stream("echo", {"a": 1}, timeout=5):
                pass
