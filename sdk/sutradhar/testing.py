"""Helpers for testing agents: serve one on a free port without a registry.

::

    async def test_greeter() -> None:
        async with run_agent(Greeter()) as address, AgentClient(address) as client:
            result = await client.execute({"name": "Ada"})
            assert result.data == {"greeting": "hello Ada"}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sutradhar._agent import Agent
from sutradhar._serve import AgentServer

__all__ = ["run_agent"]


@asynccontextmanager
async def run_agent(
    agent: Agent, *, grace: timedelta = timedelta(seconds=1), health_period: timedelta = timedelta(seconds=1)
) -> AsyncIterator[str]:
    """Serve `agent` on 127.0.0.1 on a free port; yields "127.0.0.1:PORT".
    The server drains and stops when the block exits."""
    server = AgentServer(agent, host="127.0.0.1", port=0, grace=grace, health_period=health_period)
    await server.start()
    try:
        yield server.address
    finally:
        await server.stop()
