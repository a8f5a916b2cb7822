"""The scheduler's readiness wait judges a replica the way the health service does.

An http replica (its endpoint a URL) with an HTTP readiness probe is ready
only once GET /health answers 2xx, through the one shared prober; the
scheduler used to register such a replica at once without probing it, while
the health service probed it over HTTP and found it failing.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
from test_scheduler_support import (
    ROOT,
    deployment,
    eventually,
    fast_config,
    get,
    namespace,
    registry,
    registry_client,
    wait_leader,
)

from sutradhar._clients import RegistryClient
from sutradhar._values import to_struct
from sutradhar.services.common.probing import ProbeName, Probers, ProbeSettings
from sutradhar.services.registry import RegistryServer
from sutradhar.services.scheduler.server import SchedulerServer
from sutradhar.testing import spawn_agent
from sutradhar.v1 import probe_pb2, registry_pb2, scheduler_pb2_grpc
from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["namespace", "registry", "registry_client"]  # fixtures imported for pytest


async def test_an_http_replica_is_ready_when_its_readiness_probe_passes_as_health_judges_it(
    etcd: str, registry: RegistryServer, registry_client: RegistryClient, namespace: str, tmp_path: Path
) -> None:
    command = [sys.executable, str(ROOT / "examples" / "http_echo_agent.py"), "--port", "0"]
    probers = Probers()
    with spawn_agent(command, env={"HTTP_AGENT_UNHEALTHY": "1"}) as process:
        url = f"http://{process.address}"
        agent = registry_pb2.Agent(
            id="web", namespace=namespace, type="web", version="1.0.0", runtime="http",
            config=to_struct({"url": url}),
            probes=probe_pb2.Probes(readiness=probe_pb2.ProbeSpec(kind="http", http_path="/health")),
        )
        await registry_client.register_agent(agent)
        # how the health service judges the instance: over HTTP, failing while /health answers 503
        settings = ProbeSettings.for_agent(agent, ProbeName.READINESS, endpoint=url)
        assert settings.kind == "http"
        judged = await probers.check(url, settings)
        assert not judged.ok and judged.message == "HTTP 503"

        config = fast_config(etcd, registry.address, tmp_path / "state", readiness_timeout=timedelta(seconds=1))
        server = SchedulerServer(config)
        await server.start()
        try:
            await wait_leader(server)
            async with grpc.aio.insecure_channel(server.address) as channel:
                api = scheduler_pb2_grpc.SchedulerServiceStub(channel)
                await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "web", "web", 1)))

                async def missed_readiness() -> P.Deployment | None:
                    d = await get(api, namespace, "web")
                    crashed = [e for e in d.status.events if e.reason == "Crashed"]
                    return d if crashed and "HTTP 503" in crashed[0].message else None

                # failing readiness: the replica is not ready, misses its readiness timeout
                # (a crash, with the probe's verdict as the reason) and is never registered
                d = await eventually(missed_readiness)
                assert isinstance(d, P.Deployment)
                assert "not ready within 1s (http readiness probe of" in next(
                    e.message for e in d.status.events if e.reason == "Crashed")
                assert not any(e.reason == "Ready" for e in d.status.events)
                listed = await registry_client.list_instances(namespace=namespace, agent_id="web")
                assert list(listed.instances) == []

                # healthy: the health service judges it passing, and the scheduler makes it ready
                async with httpx.AsyncClient(trust_env=False) as client:
                    await client.post(f"{url}/admin/health", json={"healthy": True})
                assert (await probers.check(url, settings)).ok

                async def ready() -> P.Deployment | None:
                    d = await get(api, namespace, "web")
                    return d if d.status.ready_replicas == 1 else None

                d = await eventually(ready)
                assert isinstance(d, P.Deployment)
                # the scheduler says the rollout is complete itself (clients need not re-derive it)
                rolled = next(c for c in d.status.conditions if c.type == "RolledOut")
                assert (rolled.status, rolled.reason) == (P.CONDITION_STATUS_TRUE, "RolloutComplete")
                assert rolled.message == (f"revision {d.status.current_revision} (version 1.0.0): "
                                          "1 of 1 updated and ready")
                listed = await registry_client.list_instances(namespace=namespace, agent_id="web")
                assert [i.endpoint for i in listed.instances] == [url]
                await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="web", wait=True))
        finally:
            await server.stop(timedelta(seconds=1))
            await probers.close()
