"""RouterClient against a real router fed by a real registry, routing to an SDK agent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from examples.echo_agent import EchoAgent
from sutradhar import AgentServer, Partial, Result, RouterClient, SutradharError
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from tests.support import eventually


@pytest.fixture
async def mesh(etcd: str) -> AsyncIterator[tuple[str, str]]:
    registry = RegistryServer(RegistryConfig(insecure=True, host="127.0.0.1", port=0, etcd=etcd))
    await registry.start()
    router = RouterServer(RouterConfig(insecure=True, host="127.0.0.1", port=0, registry=registry.address))
    await router.start()
    try:
        yield registry.address, router.address
    finally:
        await router.stop(timedelta(seconds=1))
        await registry.stop(timedelta(seconds=1))


async def first_routed(router: RouterClient, payload: object, **options: Any) -> Result:
    """`router.execute("echo", payload, ...)`, retried for up to 5 s while the
    router learns of the instance through the registry's watch."""
    return await eventually(lambda: router.execute("echo", payload, **options), within=5, ignoring=(SutradharError,))


async def test_router_client_executes_and_streams(mesh: tuple[str, str], unique: str) -> None:
    registry, router_address = mesh
    async with (
        AgentServer(EchoAgent(), insecure=True, registry=registry, namespace=unique, ttl=timedelta(seconds=2)) as agent,
        RouterClient(router_address) as router,
    ):
        result = await first_routed(
            router, {"text": "via router"}, namespace=unique, task_type="say", timeout=timedelta(seconds=2)
        )
        assert result.success
        assert result.data["echo"] == {"text": "via router"}
        assert result.metadata.instance_id == agent.instance_id

        failed = await router.execute("echo", {"fail": "NOPE"}, namespace=unique, max_attempts=1)
        assert failed.error is not None and failed.error.code == "NOPE"

        events = [e async for e in router.execute_stream("echo", {"text": "abcdef", "chunk": 3}, namespace=unique)]
        assert [e.data for e in events if isinstance(e, Partial)] == ["abc", "def"]
        assert isinstance(events[-1], Result) and events[-1].success

        with pytest.raises(SutradharError) as err:
            await router.execute("no-such-type", {}, namespace=unique, timeout=timedelta(seconds=2))
        assert err.value.code.name in ("UNAVAILABLE", "FAILED_PRECONDITION", "NOT_FOUND")


async def test_router_client_timeout_brings_the_routers_message(mesh: tuple[str, str], unique: str) -> None:
    """The client's gRPC deadline trails the task's, so the router's
    DEADLINE_EXCEEDED naming the instance arrives, not a bare one."""
    from sutradhar import DeadlineExceeded

    registry, router_address = mesh
    async with (
        AgentServer(EchoAgent(), insecure=True, registry=registry, namespace=unique, ttl=timedelta(seconds=2)) as agent,
        RouterClient(router_address) as router,
    ):
        await first_routed(router, 1, namespace=unique, timeout=timedelta(seconds=2))
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded) as err:
                await router.execute("echo", {"sleep": 2}, namespace=unique, timeout=timedelta(milliseconds=300))
            assert time.monotonic() - started < 1.0  # the task's deadline holds: no margin added to it
            assert agent.instance_id in err.value.message, err.value.message


async def test_router_client_timeouts_take_seconds_as_numbers(mesh: tuple[str, str], unique: str) -> None:
    from sutradhar import DeadlineExceeded

    registry, router_address = mesh
    async with (
        AgentServer(EchoAgent(), insecure=True, registry=registry, namespace=unique, ttl=timedelta(seconds=2)),
        RouterClient(router_address) as router,
    ):
        result = await first_routed(router, {"x": 1}, namespace=unique, timeout=5)
        assert result.success
        events = [e async for e in router.execute_stream("echo", {"text": "abcd"}, namespace=unique, timeout=5.0)]
        assert isinstance(events[-1], Result) and events[-1].success
        assert (await router.get_stats(namespace=unique, timeout=2)).instances
        with pytest.raises(DeadlineExceeded):
            await router.execute("echo", {"sleep": 2}, namespace=unique, timeout=0.3)
        with pytest.raises(TypeError, match="timeout must be a timedelta or seconds"):
            await router.execute("echo", {}, namespace=unique, timeout="5")  # type: ignore[arg-type]
