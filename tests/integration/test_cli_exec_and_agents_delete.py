"""`sutradhar exec` and `sutradhar agents delete` against real services
(registry, router, health on the session etcd, an SDK echo agent), the CLI run
as the user runs it, a child process: hints fitting the failure, payloads from
a file or stdin, the router's deadline message, `--force` and its warning."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from examples.echo_agent import EchoAgent
from sutradhar import AgentServer, RouterClient, SutradharError
from sutradhar.cli._launcher import REPO_ROOT
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from tests.support import eventually

CLI = str(Path(sys.executable).parent / "sutradhar")


@dataclass
class Mesh:
    registry: str
    router: str
    health: str


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
async def mesh(etcd: str) -> AsyncIterator[Mesh]:
    registry = RegistryServer(RegistryConfig(insecure=True, host="127.0.0.1", port=0, etcd=etcd))
    await registry.start()
    router = RouterServer(RouterConfig(insecure=True, host="127.0.0.1", port=0, registry=registry.address))
    await router.start()
    health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd))
    await health.start()
    try:
        yield Mesh(registry.address, router.address, health.address)
    finally:
        await health.stop(timedelta(seconds=1))
        await router.stop(timedelta(seconds=1))
        await registry.stop(timedelta(seconds=1))


def _env(mesh: Mesh) -> dict[str, str]:
    return {**os.environ, "SUTRADHAR_REGISTRY": mesh.registry, "SUTRADHAR_ROUTER": mesh.router,
            "SUTRADHAR_HEALTH": mesh.health}


async def cli(mesh: Mesh, *args: str, stdin: bytes | None = None) -> Run:
    """Run the CLI as a child process; the services keep serving on this loop meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        CLI, *args, env=_env(mesh), cwd=REPO_ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def _routed(router: str, namespace: str) -> None:
    """Wait until the router routes to the namespace's echo agent."""
    async with RouterClient(router) as client:
        await eventually(lambda: client.execute("echo", {}, namespace=namespace, timeout=timedelta(seconds=2)),
                         within=10, ignoring=(SutradharError,))


async def test_router_unavailable_gets_no_mesh_hint_and_wrong_port_gets_a_flag_hint(mesh: Mesh, unique: str) -> None:
    async with AgentServer(EchoAgent(), insecure=True, registry=mesh.registry, namespace=unique,
        ttl=timedelta(seconds=2)):
        pass  # the definition stays, the instance is gone
    async def no_live_instance() -> Run | None:  # once the router's view holds the definition
        run = await cli(mesh, "exec", "echo", "-n", unique, "--timeout", "5s")
        return run if "has no live instance" in run.err else None

    run = await eventually(no_live_instance, within=10, period=0.1)
    assert run.code == 1
    assert "has no live instance" in run.err and "(UNAVAILABLE)" in run.err
    assert "is the mesh running" not in run.err

    wrong = await cli(mesh, "--router", mesh.registry, "exec", "echo", "-n", unique)
    assert wrong.code == 1
    assert "(UNIMPLEMENTED)" in wrong.err
    assert "another Sutradhar service" in wrong.err and "--router (env SUTRADHAR_ROUTER)" in wrong.err
    assert mesh.registry in wrong.err


async def test_exec_payload_from_a_file_over_the_argv_limit_and_from_stdin(
    mesh: Mesh, unique: str, tmp_path: Path
) -> None:
    async with AgentServer(EchoAgent(), insecure=True, registry=mesh.registry, namespace=unique,
        ttl=timedelta(seconds=2)):
        await _routed(mesh.router, unique)
        big = {"text": "x" * 200_000}  # one argv string holds at most 128 KiB on Linux
        path = tmp_path / "task.json"
        path.write_text(json.dumps(big), encoding="utf-8")
        run = await cli(mesh, "exec", "echo", "-n", unique, "--payload", f"@{path}", "-o", "json")
        assert run.code == 0, run.err
        assert json.loads(run.out)["data"]["echo"] == big

        run = await cli(mesh, "exec", "echo", "-n", unique, "--payload", "-", "-o", "json",
                        stdin=b'{"via": "stdin"}')
        assert run.code == 0, run.err
        assert json.loads(run.out)["data"]["echo"] == {"via": "stdin"}

        run = await cli(mesh, "exec", "echo", "-n", unique, "--payload", "1e999", "-o", "json")
        assert run.code == 1 and run.out == "" and "(INVALID_ARGUMENT)" in run.err


async def test_exec_timeout_reports_the_routers_deadline_message(mesh: Mesh, unique: str) -> None:
    async with AgentServer(EchoAgent(), insecure=True, registry=mesh.registry, namespace=unique,
        ttl=timedelta(seconds=2)) as agent:
        await _routed(mesh.router, unique)
        for stream in ((), ("--stream",)):
            run = await cli(mesh, "exec", "echo", "-n", unique, "--payload", '{"sleep": 5}', "--timeout", "1s",
                            "--max-attempts", "1", *stream)
            assert run.code == 1
            assert "(DEADLINE_EXCEEDED)" in run.err
            # the router's words (the instance, the attempts), not the client's bare "Deadline Exceeded"
            assert not run.err.startswith("error: Deadline Exceeded"), run.err
            assert agent.instance_id in run.err and "attempt" in run.err, run.err


async def test_agents_delete_names_the_force_flag_and_warns_about_sdk_agents(mesh: Mesh, unique: str) -> None:
    async with AgentServer(EchoAgent(), insecure=True, registry=mesh.registry, namespace=unique,
        ttl=timedelta(seconds=2)) as agent:
        run = await cli(mesh, "agents", "delete", "echo", "-n", unique)
        assert run.code == 1 and "(FAILED_PRECONDITION)" in run.err
        assert "--force" in run.err and "deregister with force" not in run.err

        run = await cli(mesh, "agents", "delete", "echo", "-n", unique, "--force")
        assert run.code == 0, run.err
        assert f"agent/echo deleted from namespace {unique}" in run.out
        warning = [line for line in run.err.splitlines() if line.startswith("warning: ")]
        assert len(warning) == 1 and agent.instance_id in warning[0] and "re-create agent/echo" in warning[0]


async def test_agents_delete_force_without_live_instances_prints_no_warning(mesh: Mesh, unique: str) -> None:
    async with AgentServer(EchoAgent(), insecure=True, registry=mesh.registry, namespace=unique,
        ttl=timedelta(seconds=2)):
        pass  # leaves the definition behind, the instance deregistered
    run = await cli(mesh, "agents", "delete", "echo", "-n", unique, "--force")
    assert run.code == 0, run.err
    assert "warning" not in run.err


