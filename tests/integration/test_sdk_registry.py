"""Agents registering themselves with a real registry (over a real etcd):
lease keep-alive, re-registration, drain on SIGTERM, lapse on SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from examples.echo_agent import EchoAgent
from sutradhar import AgentClient, AgentServer, NotFound, RegistryClient, Unavailable
from sutradhar._values import from_struct
from sutradhar.services.common.etcd_server import free_port
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.testing import AgentProcess, spawn_agent
from sutradhar.v1 import registry_pb2
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
TTL = timedelta(seconds=2)


@pytest.fixture
async def registry(etcd: str) -> AsyncIterator[str]:
    server = RegistryServer(RegistryConfig(insecure=True, host="127.0.0.1", port=0, etcd=etcd))
    await server.start()
    try:
        yield server.address
    finally:
        await server.stop(timedelta(seconds=1))


async def instance_or_none(client: RegistryClient, namespace: str, instance_id: str) -> registry_pb2.Instance | None:
    try:
        return await client.get_instance(instance_id, namespace=namespace)
    except NotFound:
        return None


async def test_server_registers_keeps_alive_and_deregisters(registry: str, unique: str) -> None:
    server = AgentServer(
        EchoAgent(), insecure=True, registry=registry, namespace=unique, ttl=TTL, labels={"tier": "gold"},
            instance_id=f"echo-{unique}"
    )
    await server.start()
    async with RegistryClient(registry) as client:
        try:
            agent = await client.get_agent("echo", namespace=unique)
            assert (agent.type, agent.version, agent.runtime) == ("echo", "1.0.0", "process")
            command = from_struct(agent.config)["command"]
            assert command[1:] == ["-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]

            listed = await client.list_instances(namespace=unique, agent_id="echo")
            assert [i.id for i in listed.instances] == [f"echo-{unique}"]
            instance = listed.instances[0]
            assert instance.endpoint == server.address
            assert instance.state == registry_pb2.INSTANCE_STATE_SERVING
            assert dict(instance.labels) == {"tier": "gold"}
            assert instance.version == "1.0.0"

            await asyncio.sleep(TTL.total_seconds() * 1.5)  # outlives one TTL only through keep-alives
            assert await instance_or_none(client, unique, f"echo-{unique}") is not None

            # Removed behind its back (e.g. by an operator): the next keep-alive
            # gets NOT_FOUND and registers again.
            await client.deregister_instance(f"echo-{unique}", namespace=unique)

            async def back() -> bool:
                return await instance_or_none(client, unique, f"echo-{unique}") is not None

            await eventually(back, within=TTL.total_seconds() + 1, what="instance registered again")
        finally:
            await server.stop()
        assert await instance_or_none(client, unique, f"echo-{unique}") is None


async def test_unreachable_registry_is_retried_not_fatal(etcd: str, unique: str) -> None:
    port = free_port()
    server = AgentServer(EchoAgent(), insecure=True, registry=f"127.0.0.1:{port}", namespace=unique, ttl=TTL)
    await server.start()
    registry = RegistryServer(RegistryConfig(insecure=True, host="127.0.0.1", port=port, etcd=etcd))
    try:
        async with AgentClient(server.address) as agent:
            assert (await agent.execute("works without a registry")).success
        await registry.start()
        async with RegistryClient(registry.address) as client:

            async def registered() -> bool:
                try:
                    return await instance_or_none(client, unique, server.instance_id) is not None
                except Unavailable:  # this channel shares the agent's reconnect back-off at first
                    return False

            await eventually(registered, within=5, what="instance registered once the registry came up")
    finally:
        await server.stop()
        await registry.stop(timedelta(seconds=1))


async def _spawn(registry: str, namespace: str, instance_id: str, *extra: str) -> AgentProcess:
    # In a thread: the registry serves on this test's event loop meanwhile.
    return await asyncio.to_thread(
        spawn_agent,
        [
            sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure",
            "--registry", registry, "--namespace", namespace, "--instance-id", instance_id,
            "--ttl", str(TTL.total_seconds()), *extra,
        ],
        cwd=str(ROOT),
    )


async def test_sigterm_drains_in_flight_work_then_deregisters(registry: str, unique: str) -> None:
    instance_id = f"echo-{unique}"
    with await _spawn(registry, unique, instance_id, "--grace", "5") as agent:
        async with RegistryClient(registry) as client, AgentClient(agent.address) as direct:
            listed = await client.list_instances(namespace=unique)
            assert [i.endpoint for i in listed.instances] == [agent.address]

            slow = asyncio.create_task(direct.execute({"sleep": 1}))
            await asyncio.sleep(0.2)
            agent.signal(signal.SIGTERM)

            async def draining() -> bool:
                found = await instance_or_none(client, unique, instance_id)
                return found is not None and found.state == registry_pb2.INSTANCE_STATE_DRAINING

            await eventually(draining, within=1, what="instance DRAINING while the slow task runs")
            result = await slow
            assert result.success
            assert result.data["echo"] == {"sleep": 1}
            assert await asyncio.to_thread(agent.wait) == 0
            assert await instance_or_none(client, unique, instance_id) is None


async def test_sigkill_leaves_the_instance_to_lapse_with_its_ttl(registry: str, unique: str) -> None:
    instance_id = f"echo-{unique}"
    with await _spawn(registry, unique, instance_id) as agent:
        async with RegistryClient(registry) as client:
            assert await instance_or_none(client, unique, instance_id) is not None
            agent.signal(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.to_thread(agent.wait)
            assert await instance_or_none(client, unique, instance_id) is not None  # still leased

            async def gone() -> bool:
                return await instance_or_none(client, unique, instance_id) is None

            await eventually(gone, within=TTL.total_seconds() + 2, what="instance lapsed")
            assert time.monotonic() - killed >= TTL.total_seconds() / 3  # it lapsed; nobody deregistered it


async def test_watch_sees_the_instance_come_and_go(registry: str, unique: str) -> None:
    async with RegistryClient(registry) as client:
        events: list[tuple[int, str]] = []
        synced = asyncio.Event()

        async def watch() -> None:
            async for batch in client.watch(
                namespace=unique, kinds=[registry_pb2.RESOURCE_KIND_INSTANCE], include_initial=True
            ):
                for ev in batch.events:
                    if ev.type == registry_pb2.WATCH_EVENT_TYPE_SYNCED:
                        synced.set()
                    else:
                        events.append((ev.type, ev.id))

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.wait_for(synced.wait(), 5)
            server = AgentServer(EchoAgent(), insecure=True, registry=registry, namespace=unique, ttl=TTL)
            await server.start()
            await server.stop()

            async def came_and_went() -> bool:
                return (registry_pb2.WATCH_EVENT_TYPE_DELETE, server.instance_id) in events

            await eventually(came_and_went, within=3, what="instance PUT then DELETE")
            assert events[0] == (registry_pb2.WATCH_EVENT_TYPE_PUT, server.instance_id)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def test_an_unhealthy_agent_registers_not_serving(registry: str, unique: str) -> None:
    class Sick(EchoAgent):
        async def check_health(self) -> bool:
            return False

    async with (
        AgentServer(Sick(), insecure=True, registry=registry, namespace=unique, ttl=TTL) as server,
        RegistryClient(registry) as client,
    ):
        instance = await client.get_instance(server.instance_id, namespace=unique)
        assert instance.state == registry_pb2.INSTANCE_STATE_NOT_SERVING


async def test_an_identity_override_registers_the_class_command_not_serve_py(registry: str, unique: str) -> None:
    """--agent-id/--agent-version change what the replica reports; the definition
    it registers must still start the original class (`-m sutradhar.serve
    examples.echo_agent:EchoAgent`), not `.../sutradhar/serve.py` with no class."""
    instance_id = f"echo-{unique}"
    with await _spawn(registry, unique, instance_id, "--agent-id", "echo-x", "--agent-version", "2.0.0") as agent:
        async with RegistryClient(registry) as client:
            definition = await client.get_agent("echo-x", namespace=unique, timeout=5)
            instance = await client.get_instance(instance_id, namespace=unique, timeout=5.0)
        assert (definition.version, definition.type) == ("2.0.0", "echo")
        command = from_struct(definition.config)["command"]
        assert command[1:] == ["-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]
        assert (instance.agent_id, instance.version) == ("echo-x", "2.0.0")
        assert await asyncio.to_thread(agent.stop) == 0


async def test_a_script_agent_registers_through_the_registry_env(
    registry: str, unique: str, tmp_path: Path
) -> None:
    """SUTRADHAR_REGISTRY (and _NAMESPACE, _INSTANCE_ID) make `serve(agent)` in
    a script register, with the script as the definition's command."""
    script = tmp_path / "greeter.py"
    script.write_text(
        "from sutradhar import Agent, serve\n\n"
        "class Greeter(Agent):\n"
        "    id = 'greeter'\n    type = 'greeter'\n    version = '1.0.0'\n\n"
        "    async def execute(self, task):\n        return 'hi'\n\n"
        "serve(Greeter(), ttl=__import__('datetime').timedelta(seconds=2))\n"
    )
    env = {"SUTRADHAR_REGISTRY": registry, "SUTRADHAR_NAMESPACE": unique, "SUTRADHAR_INSTANCE_ID": f"g-{unique}",
           "SUTRADHAR_INSECURE": "1"}
    with await asyncio.to_thread(spawn_agent, [sys.executable, str(script)], cwd=str(tmp_path), env=env) as agent:
        async with RegistryClient(registry) as client:
            definition = await client.get_agent("greeter", namespace=unique)
            instance = await client.get_instance(f"g-{unique}", namespace=unique)
            assert from_struct(definition.config)["command"] == [sys.executable, str(script)]
            assert instance.endpoint == agent.address
            assert await asyncio.to_thread(agent.stop) == 0
            assert await instance_or_none(client, unique, f"g-{unique}") is None
