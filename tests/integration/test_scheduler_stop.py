"""A scheduler that stops gives up leadership whatever else fails on the way:
one that stopped serving but kept its election lease alive would keep every
other member from acting."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_scheduler_support import fast_config, registry, wait_leader

from sutradhar.services.registry.server import RegistryServer
from sutradhar.services.scheduler.election import election_prefix
from sutradhar.services.scheduler.server import SchedulerServer

__all__ = ["registry"]  # fixture imported for pytest


async def _election_members(store) -> set[str]:
    kvs, _ = await store.list(election_prefix("scheduler"))
    return {kv.value.decode() for kv in kvs}


async def test_a_failing_server_stop_still_resigns(etcd: str, registry: RegistryServer, store, tmp_path: Path) -> None:
    server = SchedulerServer(fast_config(etcd, registry.address, tmp_path / "state"))
    await server.start()
    await wait_leader(server)
    assert server.member_id in await _election_members(store)

    real_stop = server.host.stop

    async def broken_stop(grace: object) -> None:
        await real_stop()
        raise RuntimeError("the gRPC server would not stop")

    server.host.stop = broken_stop  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="would not stop"):
        await server.stop()
    assert not server.is_leader
    assert server.member_id not in await _election_members(store)  # lease revoked, not left to lapse
