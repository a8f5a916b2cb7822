"""Registry Watch against a real etcd: initial sync, live changes, resume, lease lapse, namespaces."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from google.protobuf import duration_pb2
from test_registry_support import expect_code, make_agent, make_instance, next_events, registry, stub

from sutradhar.services.registry import RegistryConfig, RegistryServer
from sutradhar.v1 import registry_pb2 as pb
from sutradhar.v1 import registry_pb2_grpc

__all__ = ["registry", "stub"]  # fixtures imported for pytest

PUT, DELETE, SYNCED = pb.WATCH_EVENT_TYPE_PUT, pb.WATCH_EVENT_TYPE_DELETE, pb.WATCH_EVENT_TYPE_SYNCED
AGENT, INSTANCE = pb.RESOURCE_KIND_AGENT, pb.RESOURCE_KIND_INSTANCE


async def _collect(stream, count: int, *, wait: float = 5.0) -> list[pb.WatchEvent]:
    events: list[pb.WatchEvent] = []
    while len(events) < count:
        events += await next_events(stream, wait=wait)
    return events


async def _initial(stream) -> tuple[list[pb.WatchEvent], int]:
    """Events up to and including SYNCED; returns (PUT events, synced revision)."""
    events: list[pb.WatchEvent] = []
    while True:
        batch = await next_events(stream)
        for ev in batch:
            if ev.type == SYNCED:
                return events, ev.revision
            events.append(ev)


async def test_include_initial_then_synced_then_live(stub, unique):
    ns = unique
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("w", ns)))
    inst = (await stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("w", ns, id="w-1")))).instance

    stream = stub.Watch(pb.WatchRequest(namespace=ns, include_initial=True))
    try:
        initial, synced = await _initial(stream)
        assert [(e.type, e.kind, e.id) for e in initial] == [(PUT, AGENT, "w"), (PUT, INSTANCE, "w-1")]
        assert initial[0].agent.id == "w" and initial[0].agent.resource_version > 0
        assert initial[1].instance == inst
        assert synced >= inst.resource_version

        up = (await stub.UpdateInstanceState(pb.UpdateInstanceStateRequest(
            namespace=ns, id="w-1", state=pb.INSTANCE_STATE_DRAINING))).instance
        [ev] = await _collect(stream, 1)
        assert (ev.type, ev.kind, ev.id, ev.namespace) == (PUT, INSTANCE, "w-1", ns)
        assert ev.instance.state == pb.INSTANCE_STATE_DRAINING and ev.revision == up.resource_version

        await stub.DeregisterAgent(pb.DeregisterAgentRequest(namespace=ns, id="w", force=True))
        events = await _collect(stream, 2)
        assert sorted((e.type, e.kind, e.id) for e in events) == [(DELETE, AGENT, "w"), (DELETE, INSTANCE, "w-1")]
        # DELETE carries the last known object; one transaction means one revision
        gone = next(e for e in events if e.kind == INSTANCE)
        assert gone.instance.state == pb.INSTANCE_STATE_DRAINING and gone.instance.endpoint == inst.endpoint
        assert len({e.revision for e in events}) == 1
    finally:
        stream.cancel()


async def test_initial_batches(registry, stub, unique):
    ns = unique
    for i in range(7):
        await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent(f"b{i}", ns)))
    watcher = registry.watcher
    old = watcher._batch_size
    watcher._batch_size = 3
    stream = stub.Watch(pb.WatchRequest(namespace=ns, include_initial=True, kinds=[AGENT]))
    try:
        sizes = []
        while True:
            events = await next_events(stream)
            sizes.append(len(events))
            if events[-1].type == SYNCED:
                break
        assert sizes == [3, 3, 1, 1]
    finally:
        stream.cancel()
        watcher._batch_size = old


async def test_resume_after_disconnect_gets_exactly_the_missed_events(stub, unique):
    ns = unique
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("r", ns)))
    stream = stub.Watch(pb.WatchRequest(namespace=ns, include_initial=True))
    _, last = await _initial(stream)
    await stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("r", ns, id="r-1")))
    [seen] = await _collect(stream, 1)
    last = seen.revision
    stream.cancel()

    # changes while disconnected
    missed = [
        (await stub.RegisterInstance(pb.RegisterInstanceRequest(instance=make_instance("r", ns, id="r-2")))).instance,
        (await stub.UpdateInstanceState(pb.UpdateInstanceStateRequest(
            namespace=ns, id="r-1", state=pb.INSTANCE_STATE_NOT_SERVING))).instance,
    ]
    await stub.DeregisterInstance(pb.DeregisterInstanceRequest(namespace=ns, id="r-2"))
    await stub.UpdateAgent(pb.UpdateAgentRequest(agent=make_agent("r", ns, version="1.0.1")))

    resumed = stub.Watch(pb.WatchRequest(namespace=ns, start_revision=last + 1))
    try:
        events = await _collect(resumed, 4)
        assert [(e.type, e.kind, e.id) for e in events] == [
            (PUT, INSTANCE, "r-2"), (PUT, INSTANCE, "r-1"), (DELETE, INSTANCE, "r-2"), (PUT, AGENT, "r"),
        ]
        assert [e.revision for e in events[:2]] == [m.resource_version for m in missed]
        assert events == sorted(events, key=lambda e: e.revision)
        assert events[3].agent.version == "1.0.1"
        # nothing else arrives
        extra = asyncio.ensure_future(resumed.read())
        await asyncio.sleep(0.3)
        assert not extra.done()
        extra.cancel()
    finally:
        resumed.cancel()


async def test_lease_lapse_is_a_delete_event(stub, unique):
    ns = unique
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("l", ns)))
    stream = stub.Watch(pb.WatchRequest(namespace=ns, kinds=[INSTANCE], include_initial=True))
    try:
        await _initial(stream)
        await stub.RegisterInstance(pb.RegisterInstanceRequest(
            instance=make_instance("l", ns, id="l-1"), ttl=duration_pb2.Duration(seconds=2)))
        [put] = await _collect(stream, 1)
        assert put.type == PUT
        loop = asyncio.get_running_loop()
        start = loop.time()
        [gone] = await _collect(stream, 1, wait=6)
        assert (gone.type, gone.id, gone.instance.agent_id) == (DELETE, "l-1", "l")
        assert loop.time() - start < 4.0
    finally:
        stream.cancel()


async def test_namespace_filter_and_all_namespaces(stub, unique):
    ns_a, ns_b = f"{unique}-a", f"{unique}-b"
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("pre", ns_a)))
    await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("pre", ns_b)))
    only_b = stub.Watch(pb.WatchRequest(namespace=ns_b, include_initial=True))
    every = stub.Watch(pb.WatchRequest(namespace="*", kinds=[AGENT]))
    try:
        initial, _ = await _initial(only_b)
        assert [(e.namespace, e.id) for e in initial] == [(ns_b, "pre")]
        await asyncio.sleep(0.2)  # let the all-namespaces watch start
        await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("x", ns_a)))
        await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("y", ns_b)))
        [ev] = await _collect(only_b, 1)
        assert (ev.namespace, ev.id) == (ns_b, "y")
        seen = []
        while len(seen) < 2:
            seen += [(e.namespace, e.id) for e in await next_events(every) if e.namespace.startswith(unique)]
        assert seen == [(ns_a, "x"), (ns_b, "y")]
    finally:
        only_b.cancel()
        every.cancel()


async def test_two_replicas_share_state(etcd, stub, unique):
    """A change made through one registry replica is seen by a watch on another."""
    other = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await other.start()
    try:
        async with grpc.aio.insecure_channel(other.address) as channel:
            stub_b = registry_pb2_grpc.RegistryServiceStub(channel)
            stream = stub_b.Watch(pb.WatchRequest(namespace=unique, include_initial=True))
            await _initial(stream)
            await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("shared", unique)))
            [ev] = await _collect(stream, 1)
            assert (ev.type, ev.id) == (PUT, "shared")
            got = (await stub_b.GetAgent(pb.GetAgentRequest(namespace=unique, id="shared"))).agent
            assert got.resource_version == ev.revision
            stream.cancel()
    finally:
        await other.stop()


async def test_progress_and_shutdown(etcd, stub, unique):
    """Filtered-out changes move the revision of a quiet stream; stopping the
    registry ends its watches with UNAVAILABLE."""
    server = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd,
        watch_progress_interval=timedelta(milliseconds=200)))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stream = registry_pb2_grpc.RegistryServiceStub(channel).Watch(
                pb.WatchRequest(namespace=unique, include_initial=True)
            )
            _, synced = await _initial(stream)
            other = (await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("p", f"{unique}-x")))).agent
            response = await asyncio.wait_for(stream.read(), 5)
            assert list(response.events) == [] and response.revision >= other.resource_version > synced
            await server.stop(timedelta(seconds=5))
            err = await expect_code(asyncio.wait_for(stream.read(), 5), grpc.StatusCode.UNAVAILABLE)
            assert "shutting down" in err.details()
    finally:
        await server.stop(timedelta(seconds=1))


async def test_bad_watch_requests(stub, unique):
    for request in (
        pb.WatchRequest(namespace="Bad"),
        pb.WatchRequest(namespace=unique, kinds=[7]),
        pb.WatchRequest(namespace=unique, start_revision=-1),
        pb.WatchRequest(namespace=unique, start_revision=5, include_initial=True),
    ):
        stream = stub.Watch(request)
        err = await expect_code(stream.read(), grpc.StatusCode.INVALID_ARGUMENT)
        assert err.details()
