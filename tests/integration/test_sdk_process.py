"""Agents as real child processes: the serve entry points, signals and exit codes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from sutradhar import AgentClient
from sutradhar.testing import AgentProcess, spawn_agent

ROOT = Path(__file__).resolve().parents[2]


def served(agent: AgentProcess) -> list[str]:
    """The agent's stderr lines but the warning an insecure agent logs on every start."""
    return [line for line in agent.output if "runs INSECURE" not in line]


async def test_module_entry_serves_until_sigterm_and_drains() -> None:
    with spawn_agent(
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure", "--grace",
            "5"], cwd=str(ROOT)
    ) as agent:
        assert served(agent) == [f"agent echo listening on {agent.address}"]
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
        env={"SUTRADHAR_PORT": str(port), "SUTRADHAR_INSTANCE_ID": "echo-fixed", "SUTRADHAR_INSECURE": "1"},
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
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:NoSuchAgent", "--insecure"],
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
    command = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure"]
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
    env = {"SUTRADHAR_AGENT_ID": "echo-deployed", "SUTRADHAR_AGENT_VERSION": "1.4.0", "SUTRADHAR_INSECURE": "1"}
    with spawn_agent([sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure"],
                     cwd=str(ROOT), env=env) as agent:
        assert served(agent) == [f"agent echo-deployed listening on {agent.address}"]
        async with AgentClient(agent.address) as client:
            result = await client.execute({"x": 1})
            described = await client.describe()
        assert (result.metadata.agent_id, result.metadata.agent_version) == ("echo-deployed", "1.4.0")
        assert (described.id, described.version, described.type) == ("echo-deployed", "1.4.0", "echo")


def test_a_bad_deployed_version_is_refused_naming_it() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
            "--agent-version", "banana"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 1 and "banana" in out.stderr and "semantic version" in out.stderr, out.stderr


GREETER_SCRIPT = '''
import json
import sys
from typing import Any

from sutradhar import Agent, Task, serve


class Greeter(Agent):
    id = "greeter"
    type = "greeter"
    version = "1.0.0"

    async def execute(self, task: Task) -> Any:
        return {"greeting": f"hello {task.payload}"}


if __name__ == "__main__":
    serve(Greeter(), **(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
'''


def _greeter_script(tmp_path: Path) -> Path:
    script = tmp_path / "greeter.py"
    script.write_text(GREETER_SCRIPT)
    return script


async def test_a_script_calling_serve_takes_the_scheduler_env(tmp_path: Path) -> None:
    """`python greeter.py` (serve(agent) from a script) reads the same SUTRADHAR_*
    variables the scheduler sets as `python -m sutradhar.serve`."""
    from sutradhar.services.common.etcd_server import free_port

    port = free_port()
    env = {
        "SUTRADHAR_INSECURE": "1",
        "SUTRADHAR_PORT": str(port),
        "SUTRADHAR_INSTANCE_ID": "greeter-r1",
        "SUTRADHAR_AGENT_ID": "greeter-deployed",
        "SUTRADHAR_AGENT_VERSION": "2.1.0",
    }
    with spawn_agent([sys.executable, str(_greeter_script(tmp_path))], cwd=str(tmp_path), env=env) as agent:
        assert agent.address == f"127.0.0.1:{port}"
        assert served(agent) == [f"agent greeter-deployed listening on 127.0.0.1:{port}"]
        async with AgentClient(agent.address) as client:
            result = await client.execute("Ada")
            described = await client.describe()
        assert result.data == {"greeting": "hello Ada"}
        meta = result.metadata
        assert (meta.instance_id, meta.agent_id, meta.agent_version) == ("greeter-r1", "greeter-deployed", "2.1.0")
        assert (described.id, described.version, described.type) == ("greeter-deployed", "2.1.0", "greeter")
        assert await asyncio.to_thread(agent.stop) == 0


async def test_explicit_serve_arguments_win_over_the_env(tmp_path: Path) -> None:
    import json

    from sutradhar.services.common.etcd_server import free_port

    env_port, own_port = free_port(), free_port()
    command = [sys.executable, str(_greeter_script(tmp_path)), json.dumps({"port": own_port, "instance_id": "mine"})]
    env = {"SUTRADHAR_PORT": str(env_port), "SUTRADHAR_INSTANCE_ID": "from-env", "SUTRADHAR_INSECURE": "1"}
    with spawn_agent(command, cwd=str(tmp_path), env=env) as agent:
        assert agent.address == f"127.0.0.1:{own_port}"
        async with AgentClient(agent.address) as client:
            assert (await client.execute("x")).metadata.instance_id == "mine"


def test_a_bad_env_port_is_one_error_line() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "SUTRADHAR_PORT": "http"},
    )
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "error: SUTRADHAR_PORT='http' is not a port number (0-65535); set --port or SUTRADHAR_PORT"
    ), out.stderr


def test_a_synchronous_execute_is_refused_before_serving(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "syncagent.py").write_text(
        "from sutradhar import Agent\n\n"
        "class Sync(Agent):\n"
        "    id = 'sync'\n    type = 'sync'\n    version = '1.0.0'\n\n"
        "    def execute(self, task):\n        return {'ok': True}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "sutradhar.serve", "syncagent:Sync", "--insecure"],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: Sync.execute must be a coroutine function"), out.stderr
    assert "async def execute" in out.stderr


_LOOP_AGENT = '''
import asyncio

from sutradhar import Agent


class LoopAgent(Agent):
    id = "loop"
    type = "loop"
    version = "1.0.0"

    async def execute(self, task):
        return type(asyncio.get_running_loop()).__module__.split(".")[0]
'''


def test_an_agent_runs_on_uvloop_unless_told_asyncio(tmp_path: Path) -> None:
    """`--event-loop` / SUTRADHAR_EVENT_LOOP: auto (the default) is uvloop when installed (the dev install has
    it, as the mesh and uvloop extras do), asyncio forces the standard loop, and the agent's tasks run on it."""
    (tmp_path / "loop_agent.py").write_text(_LOOP_AGENT)

    def loop_of(flags: list[str], env: dict[str, str] | None = None) -> str:
        with spawn_agent([sys.executable, "-m", "sutradhar.serve", "loop_agent:LoopAgent", "--insecure", *flags],
                         cwd=str(tmp_path), env=env) as agent:
            async def ask() -> str:
                async with AgentClient(agent.address) as client:
                    return str((await client.execute(None, timeout=5)).data)

            return asyncio.run(ask())

    assert loop_of([]) == "uvloop"
    assert loop_of(["--event-loop", "asyncio"]) == "asyncio"
    assert loop_of([], env={"SUTRADHAR_EVENT_LOOP": "asyncio"}) == "asyncio"
    assert loop_of(["--event-loop", "uvloop"], env={"SUTRADHAR_EVENT_LOOP": "asyncio"}) == "uvloop"


def test_an_unknown_event_loop_exits_naming_the_choices() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
         "--event-loop", "trio"],
        cwd=str(ROOT), capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode != 0
    assert "auto" in out.stderr and "uvloop" in out.stderr and "asyncio" in out.stderr, out.stderr
