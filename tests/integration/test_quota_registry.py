"""ResourceQuotas in a real registry over the session etcd: QuotaService, an agent past
`agents` refused, concurrent admissions that cannot both pass, and, in a secured mesh,
a namespace admin who may read but not raise its own quota."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_registry_support import make_agent, registry

from sutradhar._clients import QuotaClient, RbacClient, RegistryClient
from sutradhar._errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from sutradhar._identity import SpiffeId
from sutradhar.services.common import keys
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.registry import RegistryServer
from sutradhar.v1 import quota_pb2, rbac_pb2
from tests import support
from tests.secure_support import TD, SecureEtcd, secure_mesh

__all__ = ["registry"]  # fixture imported for pytest


def compute_quota(namespace: str, name: str = "compute", **hard: str) -> quota_pb2.ResourceQuota:
    return quota_pb2.ResourceQuota(namespace=namespace, name=name, spec=quota_pb2.ResourceQuotaSpec(hard=hard))


@pytest.fixture
async def ns(etcd: str, unique: str) -> AsyncIterator[str]:
    """A fresh namespace; its agents, quotas and guard key are removed afterwards."""
    yield unique
    store = Store(EtcdEndpoint.parse(etcd))
    try:
        for kind in (keys.AGENTS, keys.RESOURCEQUOTAS, keys.DEPLOYMENTS):
            await store.delete_prefix(keys.kind_prefix(kind, unique))
        await store.delete(keys.quota_guard_key(unique))
    finally:
        await store.close()


async def test_quota_service_round_trip_with_live_usage(registry: RegistryServer, ns: str) -> None:
    async with QuotaClient(registry.address) as quotas, RegistryClient(registry.address) as agents:
        await agents.register_agent(make_agent("a1", ns, resources={"cpu": "500m"}))
        created = await quotas.apply_quota(compute_quota(ns, agents="3", cpu="0.5", memory="1024Mi"))
        assert created.created and created.quota.resource_version > 0
        assert dict(created.quota.status.hard) == {"agents": "3", "cpu": "500m", "memory": "1Gi"}
        assert dict(created.quota.status.used) == {"agents": "1", "cpu": "0", "memory": "0"}
        assert created.quota.created_by  # the anonymous principal of an insecure registry

        await agents.register_agent(make_agent("a2", ns))
        got = await quotas.get_quota("compute", namespace=ns)
        assert got.status.used["agents"] == "2"
        replaced = await quotas.apply_quota(compute_quota(ns, agents="5"))
        assert not replaced.created and dict(replaced.quota.status.hard) == {"agents": "5"}
        assert replaced.quota.create_time == created.quota.create_time

        listed = await quotas.list_quotas(namespace=ns)
        assert [q.name for q in listed.quotas] == ["compute"] and listed.revision > 0
        everywhere = await quotas.list_quotas(namespace="*")
        assert any(q.namespace == ns for q in everywhere.quotas)

        with pytest.raises(InvalidArgument) as err:
            await quotas.apply_quota(compute_quota(ns, "bad", pods="3"))
        assert err.value.message.startswith("quota.spec.hard.pods: ")
        assert "valid: agents, deployments" in err.value.message

        deleted = await quotas.delete_quota("compute", namespace=ns)
        assert deleted.name == "compute"
        with pytest.raises(NotFound):
            await quotas.get_quota("compute", namespace=ns)


async def test_an_agent_past_the_agents_quota_is_refused(registry: RegistryServer, ns: str) -> None:
    async with QuotaClient(registry.address) as quotas, RegistryClient(registry.address) as agents:
        await quotas.apply_quota(compute_quota(ns, "objects", agents="2"))
        await agents.register_agent(make_agent("one", ns))
        await agents.update_agent(make_agent("two", ns), allow_missing=True)  # an apply creates: counted too
        with pytest.raises(ResourceExhausted) as err:
            await agents.register_agent(make_agent("three", ns))
        assert err.value.message.startswith(
            f"exceeded quota {ns}/objects: requested agents=1, used 2, hard 2 "
            f'(agent "three" in namespace "{ns}" registered); ')
        assert f"`sutradhar quota -n {ns}`" in err.value.message
        with pytest.raises(ResourceExhausted):
            await agents.update_agent(make_agent("three", ns), allow_missing=True)
        await agents.update_agent(make_agent("two", ns, description="changed"))  # a change is no new agent
        await agents.deregister_agent("one", namespace=ns)
        await agents.register_agent(make_agent("three", ns))  # room again


async def test_concurrent_admissions_cannot_both_pass(registry: RegistryServer, ns: str) -> None:
    async with QuotaClient(registry.address) as quotas, RegistryClient(registry.address) as agents:
        await quotas.apply_quota(compute_quota(ns, "objects", agents="3"))
        results = await asyncio.gather(
            *(agents.register_agent(make_agent(f"racer-{i}", ns)) for i in range(10)), return_exceptions=True)
        admitted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, ResourceExhausted)]
        assert len(admitted) == 3 and len(refused) == 7, results
        listed = await agents.list_agents(namespace=ns)
        assert len(listed.agents) == 3


async def test_raising_an_agents_limits_is_checked_against_cpu(registry: RegistryServer, ns: str, etcd: str) -> None:
    """An agent's resources are the default limits of its deployments' replicas."""
    from sutradhar.v1 import scheduler_pb2

    async with QuotaClient(registry.address) as quotas, RegistryClient(registry.address) as agents:
        await agents.register_agent(make_agent("echo", ns, resources={"cpu": "500m"}))
        store = Store(EtcdEndpoint.parse(etcd))
        try:  # a deployment of 4 replicas as the scheduler stores it (no scheduler needed here)
            d = scheduler_pb2.Deployment(name="web", namespace=ns,
                                         spec=scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=4))
            await store.put(keys.deployment_key(ns, "web"), keys.encode(d))
        finally:
            await store.close()
        await quotas.apply_quota(compute_quota(ns, cpu="3"))
        assert (await quotas.get_quota("compute", namespace=ns)).status.used["cpu"] == "2"
        with pytest.raises(ResourceExhausted, match=rf"exceeded quota {ns}/compute: requested cpu=2, used 2, hard 3"):
            await agents.update_agent(make_agent("echo", ns, resources={"cpu": "1"}))
        await agents.update_agent(make_agent("echo", ns, resources={"cpu": "750m"}))  # 4 x 750m = 3: fits


async def test_a_namespace_admin_may_not_raise_its_own_quota(
    secure_etcd: SecureEtcd, tmp_path: Path, unique: str
) -> None:
    ns_admin = SpiffeId.user(TD, unique, "boss")
    async with secure_mesh(secure_etcd, tmp_path, scheduler=False) as mesh:
        async with mesh.client(QuotaClient) as cluster_admin, mesh.client(RbacClient) as rbac:
            await cluster_admin.apply_quota(compute_quota(unique, replicas="4"))
            await rbac.apply_role_binding(rbac_pb2.RoleBinding(namespace=unique, name="boss", role="admin",
                                                               subjects=[str(ns_admin)]))
        async with mesh.client(QuotaClient, ns_admin) as boss:
            # reading its quota is allowed once the binding reached the registry's cache
            listed = await support.eventually(lambda: _listed(boss, unique), within=10)
            assert listed.quotas[0].status.hard["replicas"] == "4"
            with pytest.raises(PermissionDenied) as err:
                await boss.apply_quota(compute_quota(unique, replicas="400"))
            assert "resourcequotas" in err.value.message
            with pytest.raises(PermissionDenied):
                await boss.delete_quota("compute", namespace=unique)
        async with mesh.client(QuotaClient) as cluster_admin:
            assert (await cluster_admin.get_quota("compute", namespace=unique)).spec.hard["replicas"] == "4"
            await cluster_admin.delete_quota("compute", namespace=unique)


async def _listed(client: QuotaClient, namespace: str) -> quota_pb2.ListQuotasResponse | None:
    try:
        return await client.list_quotas(namespace=namespace, timeout=5)
    except PermissionDenied:
        return None
