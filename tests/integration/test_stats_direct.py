"""`sutradhar stats` and `top` count the calls that bypass the router (issue 12, item 3):
real etcd, registry and router, two echo agent processes, and a `DirectClient` sending
all the traffic itself. Its load reports reach the router's `GetStats` (read from etcd
at most once per load period), the CLI shows them as the mesh-wide and direct load, and
they disappear once the client has closed and its lease lapsed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from sutradhar import DirectClient, RegistryClient
from sutradhar._errors import InvalidArgument
from sutradhar.services.common.etcd_server import free_port
from sutradhar.services.registry.load_reports import LEASE_TTL
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.testing import AgentProcess, spawn_agent
from sutradhar.v1 import registry_pb2
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "sutradhar.cli.main"]
AGENTS = ("echo-0", "echo-1")


@contextlib.asynccontextmanager
async def direct_mesh(etcd: str, namespace: str,
                      ) -> AsyncIterator[tuple[RegistryServer, RouterServer, list[AgentProcess]]]:
    """A registry and a router (publishing and reading load every 0.2 s) on etcd, and two echo agents
    (`AGENTS`, in that order)."""
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    router = RouterServer(RouterConfig(insecure=True, port=0, registry=registry.address, etcd=etcd,
                                       load_period=timedelta(milliseconds=200)))
    agents: list[AgentProcess] = []
    try:
        await router.start()
        assert await router.wait_synced(timedelta(seconds=10))
        agents.extend(await asyncio.gather(*[asyncio.to_thread(
            spawn_agent, [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
                          "--registry", registry.address, "--namespace", namespace, "--instance-id", iid],
            cwd=str(ROOT)) for iid in AGENTS]))
        yield registry, router, agents
    finally:
        for agent in agents:
            agent.signal(signal.SIGTERM)
        for agent in agents:
            await asyncio.to_thread(agent.stop, timedelta(seconds=5))
        await router.stop(timedelta(seconds=1))
        await registry.stop()


async def cli(router: RouterServer, *args: str) -> dict[str, Any]:
    """`sutradhar ARGS -o json` against `router` (no scheduler: top says so and goes on)."""
    env = {**os.environ, "SUTRADHAR_ROUTER": router.address, "SUTRADHAR_SCHEDULER": f"127.0.0.1:{free_port()}"}
    proc = await asyncio.create_subprocess_exec(*CLI, *args, "-o", "json", env=env, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_calls_only_a_direct_client_sent_show_in_stats_and_top_until_its_lease_lapses(etcd, unique):
    async with direct_mesh(etcd, unique) as (registry, router, _):
        client = DirectClient(router.address, registry=registry.address)
        sent = 0
        stop = asyncio.Event()

        async def worker() -> None:
            nonlocal sent
            while not stop.is_set():
                result = await client.execute("echo", {"n": sent}, namespace=unique, timeout=timedelta(seconds=5))
                assert result.success, result
                sent += 1
                await asyncio.sleep(0.01)

        try:
            assert await client.wait_synced(timeout=10)
            await eventually(lambda: {s.instance_id for s in client.stats(namespace=unique).instances} ==
                             set(AGENTS), within=15, what="the direct client sees both agents")
            workers = [asyncio.create_task(worker()) for _ in range(4)]
            try:
                await asyncio.sleep(2.5)  # a few report windows
                started, before = time.monotonic(), sent
                stats = await cli(router, "stats", "-n", unique)
                snap = await cli(router, "top", "-n", unique, "--interval", "1s")
                rate = (sent - before) / (time.monotonic() - started)
            finally:
                stop.set()
                await asyncio.gather(*workers)
            assert client.stats().fallbacks == {} and client.stats().direct == sent  # none went through the router

            assert stats["reported_load_error"] == ""
            rows = {row["instance_id"]: row for row in stats["instances"]}
            assert set(rows) == set(AGENTS)
            for row in rows.values():
                assert row["requests"] == 0 and row["rps"] == 0 and row["in_flight"] == 0, row  # router saw none
                assert row["direct_reporters"] == 1 and row["routers_reporters"] == 0, row
                assert row["direct_rps"] > 0 and row["direct_in_flight"] > 0, row
                assert row["mesh_rps"] == row["direct_rps"], row
                assert 0 < row["direct_p50_ms"] <= row["direct_p99_ms"] and row["mesh_p99_ms"] == row["direct_p99_ms"]
            total = sum(row["direct_rps"] for row in rows.values())
            assert 0.5 * rate <= total <= 1.5 * rate, (total, rate)  # the client's windows, about its real rate

            (agent,) = snap["agents"]
            assert agent["agent_id"] == "echo" and agent["rps"] == 0 and agent["requests"] == 0, agent
            assert agent["mesh_rps"] > 0 and agent["direct_rps"] == agent["mesh_rps"], agent
            assert 0.5 * rate <= agent["mesh_rps"] <= 1.5 * rate, (agent, rate)
            assert snap["reported_load_error"] == ""
            assert {i["instance_id"] for i in snap["instances"] if i["direct_rps"] > 0} == set(AGENTS)
        finally:
            await client.close()

        # Stats are read from etcd at most once per load period however often they are asked for.
        reads = router.load_reader.reads if router.load_reader is not None else 0
        await asyncio.gather(*[router.mesh_stats(unique) for _ in range(50)])
        assert router.load_reader is not None and router.load_reader.reads - reads <= 1

        async def direct_gone() -> bool:
            found = (await router.mesh_stats(unique)).instances
            return len(found) == 2 and all(s.direct.reporters == 0 for s in found)

        await eventually(direct_gone, within=LEASE_TTL.total_seconds() + 5,
                         what="the closed direct client's load records lapsed with its lease")
        gone = await cli(router, "stats", "-n", unique)
        assert all(r["direct_reporters"] == 0 and r["mesh_rps"] == 0 for r in gone["instances"]), gone


async def test_an_instance_a_direct_client_ejects_shows_in_stats_while_no_call_goes_to_it(etcd, unique):
    """The direct client's ejection (and breaker) of an instance reaches `sutradhar stats` as `others_ejecting`,
    and keeps being reported while the instance gets no calls, which is when it matters."""
    async with direct_mesh(etcd, unique) as (registry, router, agents):
        client = DirectClient(router.address, registry=registry.address)
        try:
            assert await client.wait_synced(timeout=10)
            await eventually(lambda: {s.instance_id for s in client.stats(namespace=unique).instances} ==
                             set(AGENTS), within=15, what="the direct client sees both agents")
            agents[1].signal(signal.SIGKILL)
            await asyncio.to_thread(agents[1].wait)
            for n in range(20):  # every call succeeds, retried on echo-0, until echo-1 is ejected
                assert (await client.execute("echo", {"n": n}, namespace=unique, timeout=5)).success
            mine = {s.instance_id: s for s in client.stats(namespace=unique).instances}
            assert mine[AGENTS[1]].ejected and not mine[AGENTS[0]].ejected, mine

            await asyncio.sleep(2.5)  # report windows with no call at all to echo-1
            rows = {row["instance_id"]: row for row in (await cli(router, "stats", "-n", unique))["instances"]}
            assert rows[AGENTS[1]]["others_ejecting"] == 1 and rows[AGENTS[1]]["direct_ejecting"] == 1, rows
            assert rows[AGENTS[1]]["direct_rps"] == 0 and not rows[AGENTS[1]]["ejected"], rows  # the router's own: no
            assert rows[AGENTS[0]]["others_ejecting"] == 0 and rows[AGENTS[0]]["others_breakers_open"] == 0, rows
            snap = await cli(router, "top", "-n", unique, "--interval", "0.5s")
            held = {i["instance_id"]: i["others_ejecting"] for i in snap["instances"]}
            assert held == {AGENTS[0]: 0, AGENTS[1]: 1} and snap["agents"][0]["held_elsewhere"] == 1, snap
        finally:
            await client.close()


@contextlib.asynccontextmanager
async def bare_router(etcd: str | None) -> AsyncIterator[RouterServer]:
    """A router with no registry (it knows no instance), on etcd when given."""
    router = RouterServer(RouterConfig(insecure=True, port=0, etcd=etcd))
    await router.start()
    try:
        yield router
    finally:
        await router.stop(timedelta(seconds=1))


async def test_a_router_without_etcd_says_the_mesh_load_is_missing() -> None:
    async with bare_router(None) as router:
        answer = await router.mesh_stats()
    assert answer.reported_load_error.startswith("this router runs without etcd (--etcd)")


async def test_a_malformed_namespace_is_refused_before_etcd_is_read(etcd) -> None:
    async with bare_router(etcd) as router:
        with pytest.raises(InvalidArgument, match="namespace"):
            await router.mesh_stats("Bad_NS")
        assert router.load_reader is not None and router.load_reader.reads == 0
        assert (await router.mesh_stats("*")).reported_load_error == "" and router.load_reader.reads == 1


async def test_reported_latency_reaches_the_routers_stats_and_a_negative_one_is_refused(etcd, unique) -> None:
    """Another router's and a direct caller's records are summed apart; latency travels in ReportLoad."""
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    try:
        async with bare_router(etcd) as router, RegistryClient(registry.address) as reg:
            ms = Duration(nanos=2_000_000)
            load = registry_pb2.InstanceLoad(instance_id="echo-0", agent_id="echo", in_flight=1.5, rps=40,
                                             latency_p50=ms, latency_p99=Duration(nanos=9_000_000))
            await reg.report_load("caller-a", [load], namespace=unique)
            await reg.report_load("caller-b", [registry_pb2.InstanceLoad(
                instance_id="echo-0", agent_id="echo", in_flight=0.5, rps=10)], namespace=unique)
            assert router.load_reader is not None
            loads = await router.load_reader.read(unique)
            direct = loads.by_instance[(unique, "echo-0")].direct
            assert (direct.reporters, direct.in_flight, direct.rps) == (2, 2.0, 50.0)
            assert direct.p50 == pytest.approx(0.002) and direct.p99 == pytest.approx(0.009)
            assert loads.by_instance[(unique, "echo-0")].routers.reporters == 0
            bad = registry_pb2.InstanceLoad(instance_id="echo-0", agent_id="echo", latency_p99=Duration(seconds=-1))
            with pytest.raises(InvalidArgument, match=r"loads\[0\]\.latency_p99: must be a duration >= 0"):
                await reg.report_load("caller-c", [bad], namespace=unique)
    finally:
        await registry.stop()


async def test_an_unreachable_etcd_leaves_the_routers_own_stats_and_says_why() -> None:
    async with bare_router(f"127.0.0.1:{free_port()}") as router:
        started = time.monotonic()
        answer = await router.mesh_stats()
        assert time.monotonic() - started < 3  # READ_TIMEOUT bounds the wait, not the store's 5 s deadline
        assert answer.reported_load_error.startswith(("cannot read the load records from etcd",
                                                      "etcd did not return the load records")), answer
        assert router.load_reader is not None and router.load_reader.reads == 1
        assert (await router.mesh_stats()).reported_load_error == answer.reported_load_error
        assert router.load_reader.reads == 1  # the failure is kept for a load period: etcd is not hammered
