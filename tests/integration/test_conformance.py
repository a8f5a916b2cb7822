"""The Agent conformance suite against the echo agent, in-process and as a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from examples.echo_agent import EchoAgent
from sutradhar._hosting import GrpcHost
from sutradhar.conformance import CHECKS, run_conformance
from sutradhar.testing import run_agent, spawn_agent

ROOT = Path(__file__).resolve().parents[2]


async def test_echo_agent_in_process_passes_every_check() -> None:
    async with run_agent(EchoAgent()) as address:
        results = await run_conformance(address)
    assert [r.name for r in results] == [name for name, _ in CHECKS]
    failed = [r for r in results if not r.passed]
    assert failed == []
    by_name = {r.name: r for r in results}
    assert "INVALID_ARGUMENT" in by_name["malformed-input"].detail
    assert "DEADLINE_EXCEEDED" in by_name["deadline"].detail


def test_echo_agent_process_passes_the_cli_suite() -> None:
    command = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure"]
    with spawn_agent(command, cwd=str(ROOT)) as agent:
        out = subprocess.run(
            [sys.executable, "-m", "sutradhar.conformance", agent.address, "-o", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["passed"] is True
        assert len(report["checks"]) == len(CHECKS)
        table = subprocess.run(
            [sys.executable, "-m", "sutradhar.conformance", agent.address],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert table.returncode == 0
        assert f"{len(CHECKS)}/{len(CHECKS)} checks passed" in table.stdout
        assert agent.stop() == 0


async def test_a_server_without_the_agent_service_fails() -> None:
    host = GrpcHost(service_names=[])
    await host.start()
    await host.set_serving()
    try:
        results = await run_conformance(host.address)
    finally:
        await host.stop()
    by_name = {r.name: r for r in results}
    assert by_name["health"].passed
    assert not by_name["describe"].passed
    assert "UNIMPLEMENTED" in by_name["describe"].detail
    assert not by_name["reflection"].passed
    assert not by_name["execute"].passed
