"""ResourceQuotas against a real scheduler on the process runtime (echo agents as child
processes) and a real registry over the session etcd: a deploy, a scale and an update past a
quota are refused with the numbers, concurrent creates cannot both pass, the autoscaler stops
at the quota with the QuotaLimited condition (and goes on once the quota is raised), a
rollout at the quota still progresses without a surge replica, and the CLI shows used/hard."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from test_scheduler_support import (
    api,
    condition,
    condition_true,
    deployment,
    echo_agent,
    eventually,
    get,
    registry,
    registry_client,
    scheduler,
)

from sutradhar._clients import QuotaClient, RegistryClient
from sutradhar.services.common import keys
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.registry import RegistryServer
from sutradhar.v1 import quota_pb2, registry_pb2, scheduler_pb2_grpc
from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["api", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest


@pytest.fixture
async def ns(etcd: str, unique: str) -> AsyncIterator[str]:
    """A fresh namespace; everything in it (and its quota guard) is removed afterwards."""
    yield unique
    store = Store(EtcdEndpoint.parse(etcd))
    try:
        for kind in (keys.DEPLOYMENTS, keys.INSTANCES, keys.AGENTS, keys.RESOURCEQUOTAS, keys.LOAD):
            await store.delete_prefix(keys.kind_prefix(kind, unique))
        await store.delete(keys.quota_guard_key(unique))
    finally:
        await store.close()


@pytest.fixture
async def quotas(registry: RegistryServer) -> AsyncIterator[QuotaClient]:
    async with QuotaClient(registry.address) as client:
        yield client


def compute(namespace: str, **hard: str) -> quota_pb2.ResourceQuota:
    return quota_pb2.ResourceQuota(namespace=namespace, name="compute", spec=quota_pb2.ResourceQuotaSpec(hard=hard))


async def refused(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == code, err.value.details()
    return err.value.details() or ""


def limited(cpu: str = "250m") -> registry_pb2.Resources:
    return registry_pb2.Resources(cpu=cpu)


async def test_deploy_scale_and_update_past_a_quota_are_refused(
    api: scheduler_pb2_grpc.SchedulerServiceStub, registry_client: RegistryClient, quotas: QuotaClient, ns: str
) -> None:
    await registry_client.register_agent(echo_agent(ns))
    await quotas.apply_quota(compute(ns, replicas="3", cpu="1", deployments="2"))
    await api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(ns, "web", replicas=2, resources=limited())))

    details = await refused(api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(ns, "more", replicas=2, resources=limited()))), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert details.startswith(f"exceeded quota {ns}/compute: requested replicas=2, used 2, hard 3 "
                              '(deployment "more" created with 2 replicas); ')
    details = await refused(api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=ns, name="web", replicas=4)),
                            grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert details.startswith(f"exceeded quota {ns}/compute: requested replicas=2, used 2, hard 3 "
                              '(deployment "web" scaled (2 -> 4 replicas))')
    # cpu binds before replicas do: 2 x 600m is more than 1 core
    details = await refused(api.ApplyDeployment(P.ApplyDeploymentRequest(
        deployment=deployment(ns, "web", replicas=2, resources=limited("600m")))), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert details.startswith(f"exceeded quota {ns}/compute: requested cpu=700m, used 500m, hard 1 ")
    # a quota bounding cpu refuses replicas without a cpu limit, saying so
    details = await refused(api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(ns, "bare", replicas=1))), grpc.StatusCode.FAILED_PRECONDITION)
    assert f"quota {ns}/compute limits cpu, so every replica needs a cpu limit" in details
    assert "set spec.resources.cpu on the deployment" in details

    scaled = await api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=ns, name="web", replicas=3))
    assert scaled.deployment.spec.replicas == 3
    got = await quotas.get_quota("compute", namespace=ns)
    assert dict(got.status.used) == {"replicas": "3", "cpu": "750m", "deployments": "1"}
    # a deployment with no replicas fits; the third does not (deployments: 2)
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(ns, "idle", replicas=0)))
    details = await refused(api.CreateDeployment(P.CreateDeploymentRequest(
        deployment=deployment(ns, "third", replicas=0))), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "requested deployments=1, used 2, hard 2" in details


async def test_concurrent_creates_cannot_both_pass(
    api: scheduler_pb2_grpc.SchedulerServiceStub, registry_client: RegistryClient, quotas: QuotaClient, ns: str
) -> None:
    await registry_client.register_agent(echo_agent(ns))
    await quotas.apply_quota(compute(ns, deployments="3"))
    calls = [api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(ns, f"d{i}", replicas=0)))
             for i in range(8)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    codes = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(admitted) == 3 and codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 5, results
    listed = await api.ListDeployments(P.ListDeploymentsRequest(namespace=ns))
    assert len(listed.deployments) == 3


async def test_the_autoscaler_stops_at_the_quota_with_a_condition(
    api: scheduler_pb2_grpc.SchedulerServiceStub, registry_client: RegistryClient, quotas: QuotaClient,
    store: Store, ns: str,
) -> None:
    await registry_client.register_agent(echo_agent(ns))
    await quotas.apply_quota(compute(ns, replicas="2"))
    policy = P.AutoscalePolicy(min_replicas=1, max_replicas=5, target_in_flight=1.0)
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(ns, "auto", replicas=1,
                                                                               autoscale=policy)))
    d = await eventually(lambda: _ready(api, ns, "auto", 1))
    # the routers report 4 in flight on the one replica: the autoscaler wants ceil(1 x 4 / 1) = 4
    lease = await store.grant_lease(timedelta(seconds=60))
    replica = d.status.replica_statuses[0].id
    load = {"agent_id": "echo", "in_flight": 4.0, "rps": 10.0, "updated": time.time()}
    await store.put(f"{keys.ROOT}{keys.LOAD}/{ns}/{replica}/router-a", json.dumps(load).encode(), lease=lease)

    d = await eventually(lambda: condition_true(api, ns, "auto", "QuotaLimited"))
    limit = condition(d, "QuotaLimited")
    assert limit is not None and limit.reason == "AutoscalerCapped"
    assert f"capped at 2 by quota {ns}/compute: replicas used" in limit.message and "hard 2" in limit.message
    d = await eventually(lambda: _ready(api, ns, "auto", 2))
    assert d.spec.replicas == 2

    # more room: the autoscaler goes on (4 in flight on 2 replicas, target 1 -> 4), the condition clears
    await quotas.apply_quota(compute(ns, replicas="4"))
    d = await eventually(lambda: _ready(api, ns, "auto", 4), within=30)
    cleared = condition(d, "QuotaLimited")
    assert cleared is not None and cleared.status == P.CONDITION_STATUS_FALSE and cleared.reason == "WithinQuota"
    assert (await quotas.get_quota("compute", namespace=ns)).status.used["replicas"] == "4"
    await store.revoke_lease(lease)


async def test_a_rollout_at_the_quota_progresses_without_a_surge_replica(
    api: scheduler_pb2_grpc.SchedulerServiceStub, registry_client: RegistryClient, quotas: QuotaClient, ns: str
) -> None:
    await registry_client.register_agent(echo_agent(ns))
    await quotas.apply_quota(compute(ns, replicas="2"))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(
        ns, "roll", replicas=2, strategy=P.DeploymentStrategy(max_surge="1", max_unavailable="0"))))
    d = await eventually(lambda: _ready(api, ns, "roll", 2))
    first = d.status.current_revision

    await registry_client.update_agent(echo_agent(ns, version="1.1.0"))
    most = 0
    seen_limited = ""

    async def rolled() -> P.Deployment | None:
        nonlocal most, seen_limited
        d = await get(api, ns, "roll")
        # a replica being stopped is not counted (it may overlap its replacement for its stop grace)
        most = max(most, sum(1 for r in d.status.replica_statuses if r.phase != P.REPLICA_PHASE_TERMINATING))
        limit = condition(d, "QuotaLimited")
        if limit is not None and limit.status == P.CONDITION_STATUS_TRUE:
            seen_limited = limit.message
        done = condition(d, "RolledOut")
        moved = d.status.current_revision not in ("", first)
        return d if moved and done is not None and done.status == P.CONDITION_STATUS_TRUE else None

    d = await eventually(rolled, within=40)
    assert most <= 2, "a surge replica ran past the replicas quota"
    assert d.status.current_version == "1.1.0" and d.status.ready_replicas == 2
    assert f"surge reduced from 1 to 0 replicas by quota {ns}/compute" in seen_limited
    assert "replaced as max_unavailable allows" in seen_limited
    cleared = condition(d, "QuotaLimited")
    assert cleared is not None and cleared.status == P.CONDITION_STATUS_FALSE


async def _ready(api: scheduler_pb2_grpc.SchedulerServiceStub, ns: str, name: str, n: int) -> P.Deployment | None:
    d = await get(api, ns, name)
    return d if d.status.ready_replicas == n and d.status.replicas == n else None


async def test_cli_applies_a_quota_and_shows_used_and_hard(
    registry: RegistryServer, api: scheduler_pb2_grpc.SchedulerServiceStub, registry_client: RegistryClient,
    ns: str, tmp_path, capsys: pytest.CaptureFixture[str],
) -> None:
    from sutradhar.cli.main import main

    await registry_client.register_agent(echo_agent(ns))
    manifest = tmp_path / "quota.yaml"
    manifest.write_text(f"""\
apiVersion: sutradhar/v1
kind: ResourceQuota
metadata: {{name: compute, namespace: {ns}}}
spec:
  hard: {{replicas: 4, cpu: 2, memory: 1Gi, agents: 5}}
""")
    flags = ["--registry", registry.address]
    assert await asyncio.to_thread(main, [*flags, "apply", "-f", str(manifest)]) == 0
    assert (f"resourcequota/compute created in namespace {ns} (agents 5, cpu 2, memory 1Gi, replicas 4)"
            in capsys.readouterr().out)
    assert await asyncio.to_thread(main, [*flags, "quota", "-n", ns]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "RESOURCE", "USED", "HARD"]
    assert [line.split()[2:] for line in lines[1:]] == [
        ["agents", "1", "5"], ["replicas", "0", "4"], ["cpu", "0", "2"], ["memory", "0", "1Gi"]]
    assert await asyncio.to_thread(main, [*flags, "quota", "-n", ns, "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown[0]["status"]["used"]["agents"] == "1" and shown[0]["spec"]["hard"]["cpu"] == "2"
    assert await asyncio.to_thread(main, [*flags, "quota", "delete", "compute", "-n", ns]) == 0
    assert f"resourcequota/compute deleted from namespace {ns}" in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*flags, "quota", "-n", ns]) == 0
    assert f"no resource quotas in namespace {ns}" in capsys.readouterr().out
