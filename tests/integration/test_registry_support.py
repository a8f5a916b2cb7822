"""Fixtures and helpers shared by the registry's integration tests (no tests here).

The other test_registry_*.py modules import from this one; pytest puts this
directory on sys.path (rootdir-less test directories, "prepend" import mode).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from sutradhar._values import to_struct
from sutradhar.services.common import keys
from sutradhar.services.common.store import Store
from sutradhar.services.registry import RegistryConfig, RegistryServer
from sutradhar.v1 import registry_pb2 as pb
from sutradhar.v1 import registry_pb2_grpc


@pytest.fixture(scope="module")
async def registry(etcd: str) -> AsyncIterator[RegistryServer]:
    """A RegistryServer on a free port over the session etcd."""
    server = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def stub(registry: RegistryServer) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    """A client stub connected to `registry` over grpc.aio."""
    async with grpc.aio.insecure_channel(registry.address) as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel)


def make_agent(agent_id: str, namespace: str, **fields) -> pb.Agent:
    """A valid process agent; keyword arguments override fields."""
    agent = pb.Agent(
        id=agent_id,
        namespace=namespace,
        type=fields.pop("type", "echo"),
        version=fields.pop("version", "1.0.0"),
        runtime=fields.pop("runtime", "process"),
        capabilities=fields.pop("capabilities", ["answer"]),
        config=to_struct(fields.pop("config", {"command": ["python", "-m", "echo"]})),
        **fields,
    )
    return agent


def make_instance(agent_id: str, namespace: str, **fields) -> pb.Instance:
    """An instance of `agent_id` at a loopback endpoint."""
    fields.setdefault("endpoint", "127.0.0.1:50999")
    return pb.Instance(agent_id=agent_id, namespace=namespace, **fields)


async def snapshot(store: Store, namespace: str) -> list[tuple[str, int]]:
    """(key, mod_revision) of every agent and instance in `namespace`."""
    out: list[tuple[str, int]] = []
    for kind in (keys.AGENTS, keys.INSTANCES):
        kvs, _ = await store.list(keys.kind_prefix(kind, namespace))
        out += [(kv.key, kv.mod_revision) for kv in kvs]
    return out


async def expect_code(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Await `call`; assert it fails with `code`; return the error."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        assert err.code() == code, f"expected {code.name}, got {err.code().name}: {err.details()}"
        return err
    raise AssertionError(f"expected {code.name}, the call succeeded")


async def next_events(stream, *, wait: float = 5.0) -> list[pb.WatchEvent]:
    """The events of the next WatchResponse of `stream` (a grpc.aio call)."""
    response = await asyncio.wait_for(stream.read(), wait)
    assert response is not grpc.aio.EOF, "the watch stream ended"
    return list(response.events)
