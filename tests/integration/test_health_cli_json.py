"""`sutradhar health -o json` against a real registry and health service: for an
agent without instances the aggregate `status` is always printed (protobuf
JSON would drop it, the enum's zero), and the table calls it NO INSTANCES, as
docs/health.md does; `health --watch -o json` is JSON Lines, one object per line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from examples.echo_agent import EchoAgent
from sutradhar import AgentServer, RegistryClient
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.v1 import registry_pb2

ROOT = Path(__file__).resolve().parents[2]
NO_INSTANCES = "AGENT_HEALTH_STATUS_UNSPECIFIED"


@pytest.fixture
async def services(etcd: str) -> AsyncIterator[dict[str, Any]]:
    registry = RegistryServer(RegistryConfig(insecure=True, port=0, etcd=etcd))
    await registry.start()
    health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd, member_ttl=timedelta(seconds=2),
                                       flush_interval=timedelta(seconds=1)))
    await health.start()
    reg = RegistryClient(registry.address)
    try:
        yield {"health": health, "reg": reg, "registry": registry.address}
    finally:
        await reg.close()
        await health.stop()
        await registry.stop()


def _cli(services: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sutradhar.cli.main", "--health", services["health"].address, *args],
        capture_output=True, text=True, timeout=30,
    )


async def _register_lonely_agent(services: dict[str, Any], ns: str) -> None:
    agent = registry_pb2.Agent(id="lonely", namespace=ns, type="echo", version="1.0.0", runtime="process")
    await services["reg"].register_agent(agent)


async def test_health_json_lists_the_status_of_an_agent_without_instances(services, unique):
    await _register_lonely_agent(services, unique)

    out = await asyncio.to_thread(_cli, services, "health", "-n", unique, "-o", "json")
    assert out.returncode == 0, out.stderr
    [agent] = json.loads(out.stdout)
    assert agent["agent_id"] == "lonely"
    assert agent["status"] == NO_INSTANCES
    assert agent["total"] == 0 and agent["serving"] == 0 and agent["restart_requested"] == 0

    out = await asyncio.to_thread(_cli, services, "health", "lonely", "-n", unique, "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == NO_INSTANCES


async def test_health_table_and_docs_agree_on_no_instances(services, unique):
    await _register_lonely_agent(services, unique)
    out = await asyncio.to_thread(_cli, services, "health", "-n", unique)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split()[:3] == ["NAMESPACE", "AGENT", "STATUS"]
    assert row.split()[:4] == [unique, "lonely", "NO", "INSTANCES"]
    # docs/health.md's aggregate statuses use the table's name (and the JSON one)
    docs = (ROOT / "docs" / "health.md").read_text()
    statuses = docs[docs.index("Aggregate status:"):docs.index("Health events:")]
    assert "**NO INSTANCES**" in statuses and NO_INSTANCES in statuses


async def test_health_watch_json_lines_carry_the_status(services, unique):
    await _register_lonely_agent(services, unique)
    watch = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "sutradhar.cli.main", "--health", services["health"].address,
         "health", "lonely", "-n", unique, "--watch", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert watch.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(watch.stdout.readline), 20)
        assert json.loads(first)["status"] == NO_INSTANCES
    finally:
        watch.kill()
        watch.wait(5)


async def test_health_watch_json_is_one_object_per_line(services, unique):
    async with AgentServer(EchoAgent(), insecure=True, registry=services["registry"], namespace=unique,
                           ttl=timedelta(seconds=2)) as agent:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sutradhar.cli.main", "--health", services["health"].address,
            "health", "--watch", "-o", "json", "-n", unique,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            first = await asyncio.wait_for(proc.stdout.readline(), 30)
            snapshot = json.loads(first)
            assert isinstance(snapshot, dict) and snapshot["agent_id"] == "echo"
            # an event follows the snapshot, on its own line
            drained = await asyncio.to_thread(_cli, services, "drain", agent.instance_id, "-n", unique)
            assert drained.returncode == 0, drained.stderr
            lines = []
            while not any(line.get("instance_id") == agent.instance_id for line in lines):
                raw = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert raw, "the watch ended"
                lines.append(json.loads(raw))
            assert all(isinstance(line, dict) for line in lines)
        finally:
            proc.terminate()
            await proc.wait()
