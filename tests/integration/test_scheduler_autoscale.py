"""The autoscaler reacts to the load routers publish (load keys written here
directly, malformed ones beside them): up at once, down only after the
stabilization window."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from google.protobuf import duration_pb2
from test_scheduler_support import (
    api,
    deployment,
    echo_agent,
    eventually,
    get,
    namespace,
    registry,
    registry_client,
    scheduler,
)

from sutradhar.services.common import keys
from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest


async def test_autoscale_on_router_load(api, store, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace))
    policy = P.AutoscalePolicy(min_replicas=1, max_replicas=4, target_in_flight=2.0,
                               scale_down_window=duration_pb2.Duration(seconds=2))
    await api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(namespace, "auto", replicas=1, autoscale=policy)))
    d = await eventually(lambda: _ready(api, namespace, "auto", 1))
    first = d.status.replica_statuses[0].id

    # two routers each see 3 tasks in flight on the one replica: 6 per replica against a target of 2
    lease = await store.grant_lease(timedelta(seconds=30))
    for router in ("router-a", "router-b"):
        value = {"agent_id": "echo", "in_flight": 3.0, "rps": 100.0, "updated": time.time()}
        await store.put(f"{keys.ROOT}{keys.LOAD}/{namespace}/{first}/{router}", json.dumps(value).encode(),
                        lease=lease)
    # records that are not load (NaN, negative, not JSON) count for nothing rather than stall the autoscaler
    for router, raw in (("router-nan", b'{"in_flight": NaN, "rps": 1}'), ("router-neg", b'{"in_flight": -9}'),
                        ("router-bad", b"not json")):
        await store.put(f"{keys.ROOT}{keys.LOAD}/{namespace}/{first}/{router}", raw, lease=lease)
    d = await eventually(lambda: _ready(api, namespace, "auto", 3))  # ceil(1 * 6 / 2)
    assert d.spec.replicas == 3
    scaled = [e for e in d.status.events if e.reason == "Scaled" and "autoscaler" in e.message]
    assert scaled and "1 -> 3" in scaled[0].message
    # 6 in flight over 3 ready replicas is on target: it holds
    time_held = time.monotonic()
    while time.monotonic() - time_held < 1.0:
        assert (await get(api, namespace, "auto")).spec.replicas == 3
        await asyncio.sleep(0.1)
    assert (await get(api, namespace, "auto")).status.autoscale.current_in_flight == 2.0

    # the load goes away: down to the minimum, but not before the 2 s window has passed
    await store.revoke_lease(lease)
    dropped = time.monotonic()
    d = await eventually(lambda: _ready(api, namespace, "auto", 1), within=15)
    assert time.monotonic() - dropped >= 1.5
    assert d.spec.replicas == 1
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="auto", wait=True))


async def _ready(api, namespace, name, n):
    d = await get(api, namespace, name)
    return d if d.status.ready_replicas == n and d.status.replicas == n else None
