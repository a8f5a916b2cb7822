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


def _http(method: str, url: str, body: object = None) -> tuple[int, dict[str, object]]:
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_http_echo_agent_speaks_the_json_form() -> None:
    with spawn_agent([sys.executable, str(ROOT / "examples" / "http_echo_agent.py"), "--port", "0"]) as agent:
        assert agent.output == [f"http agent listening on {agent.address}"]
        base = f"http://{agent.address}"
        assert _http("GET", f"{base}/health") == (200, {"status": "SERVING"})

        status, out = _http("POST", f"{base}/execute", {"type": "say", "payload": {"x": 1}, "context": {}})
        assert status == 200
        assert out["success"] is True
        assert out["data"] == {"echo": {"x": 1}, "task_type": "say", "pid": agent.pid}
        assert out["metadata"]["agent_id"] == "http-echo"  # type: ignore[index]

        status, out = _http("POST", f"{base}/execute", {"payload": {"fail": "NOPE"}})
        assert (status, out["success"], out["error"]["code"]) == (200, False, "NOPE")  # type: ignore[index]
        status, out = _http("POST", f"{base}/execute", b"not json")
        assert (status, out["error"]["code"]) == (400, "INVALID_INPUT")  # type: ignore[index]

        assert _http("POST", f"{base}/admin/health", {"healthy": False})[0] == 200
        assert _http("GET", f"{base}/health") == (503, {"status": "NOT_SERVING"})
        assert agent.stop() == 0


def test_grpcurl_lists_and_calls_the_agent() -> None:
    import json
    import shutil
    import subprocess

    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    command = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]
    with spawn_agent(command, cwd=str(ROOT)) as agent:
        listed = subprocess.run(
            [grpcurl, "-plaintext", agent.address, "list"], capture_output=True, text=True, timeout=30, check=True
        )
        assert set(listed.stdout.split()) >= {
            "sutradhar.v1.AgentService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"
        }
        called = subprocess.run(
            [grpcurl, "-plaintext", "-d", '{"task": {"type": "say", "payload": {"text": "hi"}}}',
             agent.address, "sutradhar.v1.AgentService/Execute"],
            capture_output=True, text=True, timeout=30, check=True,
        )
        result = json.loads(called.stdout)["result"]
        assert result["success"] is True
        assert result["data"]["echo"] == {"text": "hi"}
        assert "echo" in (result["metadata"].get("agentId"), result["metadata"].get("agent_id"))
        assert agent.stop() == 0


async def test_deployed_identity_from_env_is_what_the_replica_reports() -> None:
    """The scheduler sets SUTRADHAR_AGENT_ID/VERSION: a replica of `echo-deployed`
    1.4.0 running the EchoAgent class (echo 1.0.0) must report the former."""
    env = {"SUTRADHAR_AGENT_ID": "echo-deployed", "SUTRADHAR_AGENT_VERSION": "1.4.0"}
    with spawn_agent([sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"],
                     cwd=str(ROOT), env=env) as agent:
        assert agent.output == [f"agent echo-deployed listening on {agent.address}"]
        async with AgentClient(agent.address) as client:
            result = await client.execute({"x": 1})
            described = await client.describe()
        assert (result.metadata.agent_id, result.metadata.agent_version) == ("echo-deployed", "1.4.0")
        assert (described.id, described.version, described.type) == ("echo-deployed", "1.4.0", "echo")


def test_a_bad_deployed_version_is_refused_naming_it() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--agent-version", "banana"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 1 and "banana" in out.stderr and "semantic version" in out.stderr, out.stderr
