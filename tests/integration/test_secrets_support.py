"""Fixtures shared by the secrets suites (no tests here): a registry that holds an
encryption config, and reading etcd's raw bytes with the etcd client directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aetcd
import pytest

from sutradhar.services.common.encryption import ensure_config_file
from sutradhar.services.common.store import EtcdEndpoint
from sutradhar.services.registry.config import RegistryConfig
from sutradhar.services.registry.server import RegistryServer


@pytest.fixture
async def registry(etcd: str, tmp_path: Path) -> AsyncIterator[RegistryServer]:
    """An insecure registry with an encryption config of its own (tmp_path/encryption.yaml), so it stores secrets."""
    ensure_config_file(tmp_path / "encryption.yaml")
    server = RegistryServer(RegistryConfig(port=0, etcd=etcd, insecure=True,
                                           encryption_config=tmp_path / "encryption.yaml"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(timedelta(seconds=1))


async def raw_etcd_values(etcd: str, prefix: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) under `prefix` as etcd holds them, read with aetcd directly."""
    endpoint = EtcdEndpoint.parse(etcd)
    async with aetcd.Client(host=endpoint.host, port=endpoint.port) as client:
        return [(bytes(kv.key), bytes(kv.value)) for kv in await client.get_prefix(prefix.encode())]
