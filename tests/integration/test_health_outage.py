"""A health member survives an etcd outage: its watches resume, its writes
back off and retry, and it goes on detecting failures afterwards. Uses a
private etcd (stopped and restarted on the same port), not the session one.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from test_health_support import (
    FAIL_BOUND,
    NOT_SERVING,
    RECOVER_BOUND,
    SERVING,
    HealthEndpoint,
    is_state,
    probe_spec,
    put_agent,
    put_instance,
    readiness_passing,
    wait_for,
)

from sutradhar.services.common.etcd_server import LocalEtcd, free_port
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.health import HealthConfig, HealthServer


async def test_member_rides_out_an_etcd_restart():
    root = Path(tempfile.mkdtemp(prefix="sutradhar-health-outage-"))
    etcd = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log")
    await asyncio.to_thread(etcd.start)
    store = Store(EtcdEndpoint.parse(etcd.endpoint))
    endpoint = HealthEndpoint()
    await endpoint.start()
    server = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd.endpoint, member_ttl=timedelta(seconds=3),
                                       flush_interval=timedelta(seconds=1)))
    try:
        await server.start()
        await put_agent(store, "ns", "echo", readiness=probe_spec("grpc"))
        await put_instance(store, "ns", "i1", "echo", endpoint.address, ttl=60)
        await wait_for(store, "ns", "i1", readiness_passing, 3)

        await asyncio.to_thread(etcd.stop)
        endpoint.servicer.mode = "fail"  # fails while etcd is away: the write must wait and retry
        await asyncio.sleep(1.5)
        await asyncio.to_thread(etcd.start)

        await wait_for(store, "ns", "i1", is_state(NOT_SERVING), FAIL_BOUND + 5)
        endpoint.servicer.mode = "ok"
        took = await wait_for(store, "ns", "i1", is_state(SERVING), RECOVER_BOUND + 3)
        assert took <= RECOVER_BOUND + 1.0  # a watch or lease may still be reconnecting
        assert server.member_id in server.membership.live()
    finally:
        await server.stop()
        await endpoint.stop()
        await store.close()
        await asyncio.to_thread(etcd.stop)
        shutil.rmtree(root, ignore_errors=True)
