"""Fixtures and helpers shared by the health service's integration tests (no tests here).

The other test_health_*.py modules import from this one (pytest puts this
directory on sys.path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2 as ghealth_pb2
from grpc_health.v1 import health_pb2_grpc as ghealth_pb2_grpc

from sutradhar._errors import Unavailable
from sutradhar.services.common import keys
from sutradhar.services.common.probing import PROBER_HEADER
from sutradhar.services.common.store import Store
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.v1 import health_pb2_grpc, registry_pb2
from tests.support import eventually

PERIOD = 0.25
FAILURES = 3
SUCCESSES = 2
SERVING = registry_pb2.INSTANCE_STATE_SERVING
NOT_SERVING = registry_pb2.INSTANCE_STATE_NOT_SERVING
DRAINING = registry_pb2.INSTANCE_STATE_DRAINING
PASSING = registry_pb2.PROBE_RESULT_SUCCESS
FAIL_BOUND = PERIOD * FAILURES + 1.0
RECOVER_BOUND = PERIOD * SUCCESSES + 1.0


# -- a gRPC health endpoint whose behaviour the test switches -------------------


class SwitchableHealth(ghealth_pb2_grpc.HealthServicer):
    """grpc.health.v1 with a mode: "ok", "fail", "hang" or "slow"."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.calls = 0
        self.probers: set[str] = set()

    async def Check(self, request, context):
        self.calls += 1
        for key, value in context.invocation_metadata():
            if key == PROBER_HEADER:
                self.probers.add(value)
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        status = ghealth_pb2.HealthCheckResponse.NOT_SERVING if self.mode == "fail" else (
            ghealth_pb2.HealthCheckResponse.SERVING)
        return ghealth_pb2.HealthCheckResponse(status=status)


class HealthEndpoint:
    """A grpc.aio server on 127.0.0.1 that can die and come back on its port."""

    def __init__(self) -> None:
        self.servicer = SwitchableHealth()
        self.port = 0
        self.server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self.server = grpc.aio.server()
        ghealth_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def endpoint() -> AsyncIterator[HealthEndpoint]:
    ep = HealthEndpoint()
    await ep.start()
    try:
        yield ep
    finally:
        await ep.stop()


# -- etcd fixtures: agents and leased instances written as the registry does ---


def probe_spec(kind: str = "", **kw) -> dict:
    spec = {"period": f"{PERIOD}s", "timeout": "0.15s", "failureThreshold": FAILURES,
            "successThreshold": SUCCESSES}
    if kind:
        spec["kind"] = kind
    spec.update(kw)
    return spec


async def put_agent(store: Store, ns: str, agent_id: str, *, runtime: str = "process",
                    readiness: dict | None = None, liveness: dict | None = None) -> None:
    body: dict = {"id": agent_id, "namespace": ns, "type": "echo", "version": "1.0.0", "runtime": runtime}
    probes = {}
    if readiness is not None:
        probes["readiness"] = readiness
    if liveness is not None:
        probes["liveness"] = liveness
    if probes:
        body["probes"] = probes
    agent = json_format.ParseDict(body, registry_pb2.Agent())
    await store.put(keys.agent_key(ns, agent_id), keys.encode(agent))


async def put_instance(store: Store, ns: str, instance_id: str, agent_id: str, endpoint: str, *,
                       runtime: str = "process", ttl: int = 30) -> int:
    lease = await store.grant_lease(timedelta(seconds=ttl))
    inst = registry_pb2.Instance(id=instance_id, namespace=ns, agent_id=agent_id, endpoint=endpoint,
                                 runtime=runtime, state=SERVING, lease_id=lease)
    inst.register_time.FromDatetime(datetime.now(UTC))
    await store.put(keys.instance_key(ns, instance_id), keys.encode(inst), lease=lease)
    return lease


async def stored(store: Store, ns: str, instance_id: str) -> registry_pb2.Instance | None:
    kv = await store.get(keys.instance_key(ns, instance_id))
    return None if kv is None else keys.decode(kv.value, registry_pb2.Instance)


async def wait_for(store: Store, ns: str, instance_id: str,
                   cond: Callable[[registry_pb2.Instance], bool], within: float) -> float:
    """Poll etcd every 20 ms until `cond` holds; return the seconds it took."""
    start = time.monotonic()
    last = None

    async def met() -> bool:
        nonlocal last
        try:
            last = await stored(store, ns, instance_id)
        except Unavailable:  # only in the etcd outage test
            return False
        return last is not None and cond(last)

    await eventually(met, within=within, period=0.02, what=lambda: f"{instance_id}: last stored: {last}")
    took = time.monotonic() - start
    print(f"waited {took:.2f}s for state {last.state} of {instance_id}")
    return took


def is_state(state: int) -> Callable[[registry_pb2.Instance], bool]:
    return lambda inst: inst.state == state


@pytest.fixture
async def health(etcd: str) -> AsyncIterator[HealthServer]:
    server = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd, member_ttl=timedelta(seconds=2),
                                       flush_interval=timedelta(seconds=1)))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def health_stub(health: HealthServer) -> AsyncIterator[health_pb2_grpc.HealthServiceStub]:
    async with grpc.aio.insecure_channel(health.address) as channel:
        yield health_pb2_grpc.HealthServiceStub(channel)


def readiness_passing(inst: registry_pb2.Instance) -> bool:
    return inst.health.readiness.result == PASSING
