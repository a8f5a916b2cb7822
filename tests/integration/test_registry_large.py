"""More agent data than one gRPC message holds (> 4 MiB): Watch sends it in
size-bounded batches, List answers a clear RESOURCE_EXHAUSTED.

80 valid agents of ~65 KB (60 env vars of 1000 characters, a 4000-byte
description) once made every router's Watch("*", include_initial) fail with
"Sent message larger than max", so routing stopped in every namespace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from test_registry_support import expect_code, make_agent, registry, stub

from sutradhar.services.registry.watch import DEFAULT_BATCH_BYTES
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.v1 import registry_pb2 as pb

__all__ = ["registry", "stub"]  # fixtures imported for pytest

PUT, SYNCED = pb.WATCH_EVENT_TYPE_PUT, pb.WATCH_EVENT_TYPE_SYNCED
COUNT = 80
LIMIT = 4 * 1024 * 1024  # the registry's (and gRPC's) default max message size
#: A response may exceed the byte budget only by its framing, never by an event.
SLACK = 64


def _fat_agent(i: int, namespace: str) -> pb.Agent:
    env = {f"VAR_{n}": "x" * 1000 for n in range(60)}
    return make_agent(
        f"fat-{i:03d}",
        namespace,
        type="fat-a" if i % 2 else "fat-b",
        config={"command": ["python", "-m", "echo"], "env": env},
        description="d" * 4000,
    )


@pytest.fixture(scope="module")
async def fat(stub, unique_module) -> AsyncIterator[tuple[str, int]]:
    """(namespace, revision before) with COUNT ~65 KB agents, > 4 MiB in all;
    deleted afterwards: the etcd is shared, and later tests list namespace "*"."""
    ns = unique_module
    before = (await stub.ListAgents(pb.ListAgentsRequest(namespace=ns))).revision
    agents = [_fat_agent(i, ns) for i in range(COUNT)]
    await asyncio.gather(*(stub.RegisterAgent(pb.RegisterAgentRequest(agent=a)) for a in agents))
    yield ns, before
    await asyncio.gather(*(stub.DeregisterAgent(pb.DeregisterAgentRequest(namespace=ns, id=a.id, force=True))
                           for a in agents))


@pytest.fixture(scope="module")
def unique_module() -> str:
    return f"fat-{uuid.uuid4().hex[:8]}"


async def _until_synced(stream) -> tuple[list[pb.WatchEvent], list[int]]:
    events: list[pb.WatchEvent] = []
    sizes: list[int] = []
    while True:
        response = await asyncio.wait_for(stream.read(), 10)
        assert response is not grpc.aio.EOF, "the watch stream ended"
        sizes.append(response.ByteSize())
        if response.events and response.events[-1].type == SYNCED:
            return events, sizes
        events += response.events


@pytest.mark.parametrize("namespace", ["own", "*"])
async def test_watch_include_initial_delivers_more_than_4mib_in_bounded_batches(stub, fat, namespace):
    ns, _ = fat
    stream = stub.Watch(pb.WatchRequest(namespace=ns if namespace == "own" else "*", include_initial=True))
    try:
        events, sizes = await _until_synced(stream)
    finally:
        stream.cancel()
    ours = sorted(e.agent.id for e in events if e.namespace == ns)
    assert ours == [f"fat-{i:03d}" for i in range(COUNT)]
    assert all(e.type == PUT and len(e.agent.config.fields["env"].struct_value.fields) == 60 for e in events
               if e.namespace == ns)
    assert sum(sizes) > LIMIT  # more than one message could hold
    assert max(sizes) <= DEFAULT_BATCH_BYTES + SLACK, sizes


async def test_live_watch_burst_over_4mib_is_batched_by_size(stub, fat):
    """A resumed watch replays all COUNT writes at once; the live path batches by size too."""
    ns, before = fat
    stream = stub.Watch(pb.WatchRequest(namespace=ns, start_revision=before + 1))
    try:
        events: list[pb.WatchEvent] = []
        sizes: list[int] = []
        revisions: list[int] = []
        while len(events) < COUNT:
            response = await asyncio.wait_for(stream.read(), 10)
            assert response is not grpc.aio.EOF, "the watch stream ended"
            sizes.append(response.ByteSize())
            revisions.append(response.revision)
            events += response.events
    finally:
        stream.cancel()
    assert sorted(e.agent.id for e in events) == [f"fat-{i:03d}" for i in range(COUNT)]
    assert len(sizes) > 4 and max(sizes) <= DEFAULT_BATCH_BYTES + SLACK, sizes
    assert revisions == sorted(revisions)


async def test_list_over_the_message_limit_is_resource_exhausted_naming_size_limit_and_filter(stub, fat):
    ns, _ = fat
    for namespace in (ns, "*"):
        err = await expect_code(
            stub.ListAgents(pb.ListAgentsRequest(namespace=namespace)), grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        details = err.details()
        assert "ListAgents" in details and "bytes" in details and "4194304" in details, details
        assert "narrow the filter" in details and "type" in details and "Watch with include_initial" in details
        assert "Sent message larger than max" not in details
    # a narrower filter fits: half the agents, ~2.6 MiB
    half = await stub.ListAgents(pb.ListAgentsRequest(namespace=ns, type="fat-a"))
    assert len(half.agents) == COUNT // 2 and half.ByteSize() <= LIMIT
    got = await stub.GetAgent(pb.GetAgentRequest(namespace=ns, id="fat-000"))
    assert got.agent.description == "d" * 4000


async def test_router_watching_all_namespaces_syncs_past_4mib(registry, fat, etcd):
    """The router's Watch("*", include_initial) completes, so it routes again
    (it used to retry the oversized first response forever: UNAVAILABLE everywhere)."""
    router = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address, etcd=etcd))
    await router.start()
    try:
        assert await router.wait_synced(timedelta(seconds=10))
        assert router.watcher is not None and router.watcher.revision > fat[1]
    finally:
        await router.stop(timedelta(seconds=1))
