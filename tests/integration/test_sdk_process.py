"""Agents as real child processes: the serve entry points, signals and exit codes."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from sutradhar import AgentClient
from sutradhar.testing import spawn_agent

ROOT = Path(__file__).resolve().parents[2]


async def test_module_entry_serves_until_sigterm_and_drains() -> None:
    with spawn_agent(
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--grace", "5"], cwd=str(ROOT)
    ) as agent:
        assert agent.output == [f"agent echo listening on {agent.address}"]
        async with AgentClient(agent.address) as client:
            slow = asyncio.create_task(client.execute({"sleep": 0.6}))
            await asyncio.sleep(0.2)
            agent.signal(signal.SIGTERM)
            result = await slow
            assert result.success
        code = await asyncio.to_thread(agent.wait)
        assert code == 0


def test_env_port_and_script_entry(tmp_path: Path) -> None:
    from sutradhar.services.common.etcd_server import free_port

    port = free_port()
    with spawn_agent(
        [sys.executable, str(ROOT / "examples" / "echo_agent.py")],
        cwd=str(tmp_path),
        env={"SUTRADHAR_PORT": str(port), "SUTRADHAR_INSTANCE_ID": "echo-fixed"},
    ) as agent:
        assert agent.address == f"127.0.0.1:{port}"

        async def describe() -> str:
            async with AgentClient(agent.address) as client:
                return (await client.execute("x")).metadata.instance_id

        assert asyncio.run(describe()) == "echo-fixed"
        assert agent.stop() == 0


def test_bad_class_exits_nonzero_with_one_line() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:NoSuchAgent"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error:")
    assert "NoSuchAgent" in out.stderr
