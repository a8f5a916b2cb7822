"""An SDK agent's own /metrics port: the instance label that makes it a scrape target when the agent
registers itself, the registry's discovery document listing it, and `metrics_optional` (what the
scheduler sets): a port that cannot be served is a warning, not a failed start."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from examples.echo_agent import EchoAgent
from sutradhar import AgentServer, RegistryClient
from sutradhar._labels import METRICS_PORT_LABEL
from sutradhar._serve_settings import ServeSettings
from sutradhar.services.registry.scrape_targets import PATH
from sutradhar.services.registry.server import RegistryConfig, RegistryServer
from tests.support import eventually


@pytest.fixture
async def registry(etcd: str) -> AsyncIterator[RegistryServer]:
    server = RegistryServer(RegistryConfig(insecure=True, host="127.0.0.1", port=0, etcd=etcd))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(timedelta(seconds=1))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return bytes(answer.read())


async def test_a_self_registered_agent_with_a_metrics_port_is_a_scrape_target(
        registry: RegistryServer, unique: str) -> None:
    server = AgentServer(EchoAgent(), insecure=True, registry=registry.address, namespace=unique,
                         instance_id=f"echo-{unique}", metrics_port=0)
    await server.start()
    try:
        assert server.metrics_port is not None and server.metrics_url is not None
        async with RegistryClient(registry.address) as client:
            stored = await client.get_instance(f"echo-{unique}", namespace=unique)
        assert stored.labels[METRICS_PORT_LABEL] == str(server.metrics_port)
        assert registry.metrics is not None
        url = registry.metrics.endpoint.url_of(PATH)

        async def listed() -> list[str] | None:
            # from another thread: the registry reads etcd on this test's event loop
            groups = json.loads(await asyncio.to_thread(get, url))
            ours = [g["targets"][0] for g in groups if g["labels"]["__meta_sutradhar_namespace"] == unique]
            return ours or None

        assert await eventually(listed, within=10) == [f"127.0.0.1:{server.metrics_port}"]
        assert b"sutradhar_agent_in_flight" in get(server.metrics_url)
    finally:
        await server.stop(timedelta(seconds=1))


async def test_a_metrics_port_that_cannot_be_bound_fails_the_start_unless_optional(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        strict = AgentServer(EchoAgent(), insecure=True, metrics_port=port)
        with pytest.raises(OSError):
            await strict.start()
        await strict.stop(timedelta(0))

        lenient = AgentServer(EchoAgent(), settings=ServeSettings(insecure=True, metrics_port=port,
                                                                  metrics_optional=True))
        with caplog.at_level(logging.WARNING, logger="sutradhar._serve"):
            await lenient.start()
        try:
            assert lenient.metrics_url is None and lenient.metrics_port is None
            assert "serves no /metrics" in caplog.text
        finally:
            await lenient.stop(timedelta(0))
