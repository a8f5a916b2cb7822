"""Rate limits end to end: a real registry on the session etcd, a real router fed by its Watch,
and real SDK echo agents. RateLimits are written through the registry's RateLimitService.

Buckets that must not refill during a test fill once a minute; the one refill test waits
for the bucket's own interval (polled, never a sleep that asserts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from examples.echo_agent import EchoAgent
from sutradhar import RegistryClient, RouterClient
from sutradhar._clients import RateLimitClient
from sutradhar._errors import InvalidArgument, NotFound
from sutradhar._token_bucket import PUSHBACK_TRAILER
from sutradhar._values import to_value
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.testing import run_agent
from sutradhar.v1 import agent_pb2, ratelimit_pb2, registry_pb2, router_pb2, router_pb2_grpc, routing_pb2
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
SERVING = registry_pb2.INSTANCE_STATE_SERVING
LEVEL = ratelimit_pb2.RateLimitLevel


def bucket(max_tokens: int, per_fill: int = 1, interval: timedelta = timedelta(minutes=1)) -> ratelimit_pb2.TokenBucket:
    out = ratelimit_pb2.TokenBucket(max_tokens=max_tokens, tokens_per_fill=per_fill)
    out.fill_interval.FromTimedelta(interval)
    return out


@pytest.fixture(scope="module")
async def mesh(etcd: str) -> AsyncIterator[dict[str, Any]]:
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    router = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address, etcd=etcd))
    await router.start()
    assert await router.wait_synced(timedelta(seconds=10))
    async with contextlib.AsyncExitStack() as stack:
        endpoints = [await stack.enter_async_context(run_agent(EchoAgent())) for _ in range(2)]
        reg = RegistryClient(registry.address)
        limits = RateLimitClient(registry.address)
        yield {"registry": registry, "router": router, "endpoints": endpoints, "reg": reg, "limits": limits}
        await reg.close()
        await limits.close()
    await router.stop(timedelta(seconds=1))
    await registry.stop()


async def register(mesh: dict[str, Any], ns: str, agent_id: str, *, type_: str = "echo",
                   rate_limit: ratelimit_pb2.TokenBucket | None = None) -> list[str]:
    reg: RegistryClient = mesh["reg"]
    agent = registry_pb2.Agent(id=agent_id, namespace=ns, type=type_, version="1.0.0", runtime="process")
    if rate_limit is not None:
        agent.routing.CopyFrom(routing_pb2.RoutingPolicy(rate_limit=rate_limit))
    await reg.register_agent(agent)
    ids = []
    for i, endpoint in enumerate(mesh["endpoints"]):
        iid = f"{agent_id}-{i}"
        await reg.register_instance(registry_pb2.Instance(id=iid, namespace=ns, agent_id=agent_id, endpoint=endpoint,
                                                          runtime="process", state=SERVING), ttl=timedelta(seconds=120))
        ids.append(iid)
    router: RouterServer = mesh["router"]
    await eventually(lambda: all(router.view.routable(b) for k, b in router.view.backends.items()
                                 if k[0] == ns) and len([k for k in router.view.backends if k[0] == ns]) >= len(ids),
                     within=10, period=0.02, what=f"router never saw {ids} in {ns}")
    return ids


async def apply_limit(mesh: dict[str, Any], limit: ratelimit_pb2.RateLimit) -> None:
    await mesh["limits"].apply_rate_limit(limit)
    router: RouterServer = mesh["router"]
    ns = limit.namespace

    await eventually(lambda: router.limiter.knows(ns, limit.name), within=10, period=0.02,
                     what=f"router never learned RateLimit {ns}/{limit.name}")


def request(ns: str, agent_type: str = "echo") -> router_pb2.RouterServiceExecuteRequest:
    return router_pb2.RouterServiceExecuteRequest(
        task=agent_pb2.Task(type="answer", payload=to_value({"q": 1})),
        selector=router_pb2.Selector(namespace=ns, agent_type=agent_type),
    )


class Caller:
    """One client connection to the router (in an insecure mesh: one caller)."""

    def __init__(self, address: str) -> None:
        # its own connection (channels otherwise share one per target): its own peer address
        self.channel = grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        self.stub = router_pb2_grpc.RouterServiceStub(self.channel)

    async def call(self, ns: str, agent_type: str = "echo") -> grpc.aio.AioRpcError | None:
        try:
            response = await self.stub.Execute(request(ns, agent_type), timeout=10)
        except grpc.aio.AioRpcError as err:
            return err
        assert response.result.success, response
        return None

    async def close(self) -> None:
        await self.channel.close()


def pushback(err: grpc.aio.AioRpcError) -> int:
    trailers = dict(err.trailing_metadata() or ())
    return int(trailers[PUSHBACK_TRAILER])


def requests_of(mesh: dict[str, Any], ns: str) -> int:
    return sum(s.requests for s in mesh["router"].stats(namespace=ns).instances)


def buckets(mesh: dict[str, Any], ns: str) -> dict[tuple[int, str, str], router_pb2.BucketStats]:
    return {(b.level, b.name, b.caller): b for b in mesh["router"].stats(namespace=ns).buckets}


@pytest.fixture
async def caller(mesh: dict[str, Any]) -> AsyncIterator[Caller]:
    c = Caller(mesh["router"].address)
    yield c
    await c.close()


async def test_agent_limit_refuses_the_call_past_it_with_the_trailer_and_touches_no_instance(
        mesh: dict[str, Any], caller: Caller, unique: str) -> None:
    other_ns = f"{unique}-b"
    await register(mesh, unique, "limited", rate_limit=bucket(3))
    await register(mesh, unique, "free", type_="free")
    await register(mesh, other_ns, "limited", rate_limit=bucket(3))
    assert [await caller.call(unique) for _ in range(3)] == [None] * 3
    err = await caller.call(unique)
    assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = err.details() or ""
    assert f"agent 'limited' in namespace '{unique}'" in details and "1 per 1m (burst 3)" in details
    assert 0 < pushback(err) <= 60_000 and "retry in" in details
    assert requests_of(mesh, unique) == 3                     # the refused call reached no instance
    # another agent of the namespace, and the same agent in another namespace: unaffected
    assert [await caller.call(unique, "free") for _ in range(5)] == [None] * 5
    assert [await caller.call(other_ns) for _ in range(3)] == [None] * 3
    stats = buckets(mesh, unique)[(LEVEL.RATE_LIMIT_LEVEL_AGENT, "limited", "")]
    assert (stats.tokens, stats.allowed, stats.refused, stats.bucket.max_tokens) == (0, 3, 1, 3)


async def test_namespace_limit_covers_every_agent_of_the_namespace_only(
        mesh: dict[str, Any], caller: Caller, unique: str) -> None:
    other_ns = f"{unique}-b"
    await register(mesh, unique, "one")
    await register(mesh, unique, "two", type_="two")
    await register(mesh, other_ns, "one")
    await apply_limit(mesh, ratelimit_pb2.RateLimit(namespace=unique, name="team", namespace_limit=bucket(4)))
    results = [await caller.call(unique) for _ in range(2)] + [await caller.call(unique, "two") for _ in range(3)]
    assert results[:4] == [None] * 4
    last = results[4]
    assert last is not None and last.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"RateLimit {unique}/team" in (last.details() or "") and pushback(last) > 0
    assert [await caller.call(other_ns) for _ in range(6)] == [None] * 6
    # Deleting the RateLimit lifts the limit once the router has seen the delete.
    await mesh["limits"].delete_rate_limit("team", namespace=unique)
    await eventually(lambda: not mesh["router"].limiter.knows(unique, "team"), within=10, period=0.02)
    assert await caller.call(unique) is None


async def test_per_caller_limit_hits_only_that_caller(mesh: dict[str, Any], caller: Caller, unique: str) -> None:
    await register(mesh, unique, "echo")
    await apply_limit(mesh, ratelimit_pb2.RateLimit(namespace=unique, name="each", per_caller=bucket(2)))
    other = Caller(mesh["router"].address)  # an insecure mesh keys callers by peer address
    try:
        assert [await caller.call(unique) for _ in range(2)] == [None, None]
        err = await caller.call(unique)
        assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "per caller" in (err.details() or "") and "ipv4:127.0.0.1:" in (err.details() or "")
        assert [await other.call(unique) for _ in range(2)] == [None, None]
    finally:
        await other.close()
    callers = [b for b in buckets(mesh, unique).values() if b.level == LEVEL.RATE_LIMIT_LEVEL_CALLER]
    assert sorted((b.allowed, b.refused) for b in callers) == [(2, 0), (2, 1)]


async def test_the_bucket_refills_end_to_end(mesh: dict[str, Any], caller: Caller, unique: str) -> None:
    await register(mesh, unique, "echo", rate_limit=bucket(1, interval=timedelta(milliseconds=300)))
    assert await caller.call(unique) is None
    err = await caller.call(unique)
    assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 0 < pushback(err) <= 300

    async def admitted() -> bool:
        return await caller.call(unique) is None

    await eventually(admitted, within=10, period=0.05, what="the bucket never refilled")


async def test_the_sdk_client_raises_resource_exhausted(mesh: dict[str, Any], unique: str) -> None:
    from sutradhar._errors import ResourceExhausted

    await register(mesh, unique, "echo", rate_limit=bucket(1))
    async with RouterClient(mesh["router"].address) as client:
        assert (await client.execute("echo", 1, namespace=unique)).success
        with pytest.raises(ResourceExhausted, match="rate limit exceeded"):
            await client.execute("echo", 1, namespace=unique)


async def test_rate_limit_service_validates_and_reports(mesh: dict[str, Any], unique: str) -> None:
    limits: RateLimitClient = mesh["limits"]
    with pytest.raises(InvalidArgument) as err:
        await limits.apply_rate_limit(ratelimit_pb2.RateLimit(namespace=unique, name="bad",
                                                              namespace_limit=bucket(0)))
    assert "rate_limit.namespace_limit.max_tokens" in err.value.message
    first = await limits.apply_rate_limit(ratelimit_pb2.RateLimit(namespace=unique, name="ok",
                                                                  namespace_limit=bucket(5), shared=True))
    assert first.created and first.rate_limit.created_by and first.rate_limit.resource_version
    again = await limits.apply_rate_limit(ratelimit_pb2.RateLimit(namespace=unique, name="ok",
                                                                  namespace_limit=bucket(6)))
    assert not again.created and again.rate_limit.create_time == first.rate_limit.create_time
    listed = await limits.list_rate_limits(namespace=unique)
    assert [(r.name, r.namespace_limit.max_tokens) for r in listed.rate_limits] == [("ok", 6)]
    assert (await limits.get_rate_limit("ok", namespace=unique)).namespace_limit.max_tokens == 6
    await limits.delete_rate_limit("ok", namespace=unique)
    with pytest.raises(NotFound, match="sutradhar ratelimits"):
        await limits.get_rate_limit("ok", namespace=unique)


async def test_streams_are_limited_too(mesh: dict[str, Any], caller: Caller, unique: str) -> None:
    await register(mesh, unique, "echo", rate_limit=bucket(1))
    stream_request = router_pb2.RouterServiceExecuteStreamRequest(
        task=agent_pb2.Task(type="answer", payload=to_value({"text": "abcdefgh"})),
        selector=router_pb2.Selector(namespace=unique, agent_type="echo"),
    )
    events = [e async for e in caller.stub.ExecuteStream(stream_request, timeout=10)]
    assert events and events[-1].HasField("result")
    call = caller.stub.ExecuteStream(stream_request, timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and pushback(err.value) > 0


async def cli(mesh: dict[str, Any], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sutradhar.cli.main", "--registry", mesh["registry"].address,
        "--router", mesh["router"].address, "--scheduler", "127.0.0.1:9", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_cli_applies_lists_shows_and_deletes_rate_limits(
        mesh: dict[str, Any], caller: Caller, unique: str, tmp_path: Path) -> None:
    manifest = tmp_path / "limits.yaml"
    manifest.write_text(f"""
apiVersion: sutradhar/v1
kind: RateLimit
metadata: {{name: team, namespace: {unique}}}
spec:
  namespaceLimit: {{maxTokens: 5, tokensPerFill: 5, fillInterval: 1m}}
  perCaller: {{maxTokens: 1, fillInterval: 1m}}
""")
    code, out = await cli(mesh, "deploy", "-f", str(manifest))
    assert code == 0, out
    assert f"ratelimit/team created in namespace {unique} (namespace 5 per 1m (burst 5); per caller 1 per 1m" in out
    code, out = await cli(mesh, "ratelimits", "-n", unique)
    assert code == 0 and "team" in out and "5 per 1m (burst 5)" in out and "no (per router)" in out, out
    code, out = await cli(mesh, "ratelimits", "-n", unique, "-o", "json")
    assert json.loads(out)[0]["per_caller"]["max_tokens"] == 1
    await register(mesh, unique, "echo")
    await eventually(lambda: mesh["router"].limiter.knows(unique, "team"), within=10, period=0.02)
    assert await caller.call(unique) is None
    assert await caller.call(unique) is not None  # the caller's one token is used
    code, out = await cli(mesh, "stats", "-n", unique, "-o", "json")
    rows = {(b["level"], b["name"]): b for b in json.loads(out)["buckets"]}
    assert rows[("namespace", "team")]["tokens"] == 4
    assert rows[("caller", "team")]["refused"] == 1 and rows[("caller", "team")]["allowed"] == 1
    code, out = await cli(mesh, "stats", "-n", unique)
    assert code == 0 and "4/5" in out and "caller" in out, out
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"""
apiVersion: sutradhar/v1
kind: RateLimit
metadata: {{name: bad, namespace: {unique}}}
spec:
  perCaller: {{maxTokens: 1, fillInterval: 10ms}}
""")
    code, out = await cli(mesh, "deploy", "-f", str(bad))
    assert code != 0 and "ratelimit/bad: spec.per_caller.fill_interval: must be at least 50ms" in out, out
    code, out = await cli(mesh, "ratelimits", "delete", "team", "-n", unique)
    assert code == 0 and f"ratelimit/team deleted from namespace {unique}" in out, out
