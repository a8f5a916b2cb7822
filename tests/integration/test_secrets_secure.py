"""Secrets in a secured mesh (mTLS, RBAC, audit): an operator writes but cannot reveal, an admin
reveals, the scheduler (a mesh service) resolves a reference for its replica, and no audit
record holds a value."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from test_secure_mesh import agent_definition

from sutradhar._clients import AuditClient, RbacClient
from sutradhar._errors import PermissionDenied
from sutradhar._identity import SpiffeId
from sutradhar._secret_clients import SecretClient
from sutradhar.services.common.encryption import ensure_config_file
from sutradhar.v1 import rbac_pb2, registry_pb2, scheduler_pb2
from tests.secure_support import TD, SecureEtcd, SecureMesh, secure_mesh
from tests.support import eventually

VALUE = "sk-secure-9e31d07a55"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def mesh(secure_etcd: SecureEtcd, tmp_path: Path) -> AsyncIterator[SecureMesh]:
    ensure_config_file(tmp_path / "encryption.yaml")
    async with secure_mesh(secure_etcd, tmp_path,
                           registry_options={"encryption_config": tmp_path / "encryption.yaml"}) as m:
        yield m


def replica_environ(state: Path, ns: str) -> list[bytes]:
    """The environment of the one process replica of namespace `ns`."""
    pid = int(json.loads(next((state / "process" / ns).glob("*/record.json")).read_text())["pid"])
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


async def bind(mesh: SecureMesh, namespace: str, role: str, subject: SpiffeId) -> None:
    async with mesh.client(RbacClient) as rbac:
        await rbac.apply_role_binding(rbac_pb2.RoleBinding(namespace=namespace, name=f"{role}-binding", role=role,
                                                           subjects=[str(subject)]), timeout=10)


async def test_operator_cannot_reveal_admin_can_scheduler_resolves_audit_holds_no_value(
    mesh: SecureMesh, unique: str
) -> None:
    ns = unique
    operator, admin = SpiffeId.user(TD, ns, "op"), SpiffeId.user(TD, ns, "boss")
    await bind(mesh, ns, "operator", operator)
    await bind(mesh, ns, "admin", admin)

    async with mesh.client(SecretClient, operator) as as_operator:
        async def written() -> bool:
            try:
                await as_operator.apply_secret("llm", {"openai": VALUE.encode()}, namespace=ns, timeout=10)
            except PermissionDenied:
                return False  # the binding is not in the registry's cache yet
            return True

        await eventually(written, within=10, what="the operator's binding to take effect")
        assert [k.name for k in (await as_operator.get_secret("llm", namespace=ns, timeout=10)).keys] == ["openai"]
        with pytest.raises(PermissionDenied, match="read-value") as err:
            await as_operator.reveal_secret("llm", namespace=ns, timeout=10)
        assert VALUE not in str(err.value)

    async with mesh.client(SecretClient, admin) as as_admin:
        async def revealed() -> bool:
            try:
                return (await as_admin.reveal_secret("llm", namespace=ns, timeout=10)).data["openai"] == VALUE.encode()
            except PermissionDenied:
                return False

        await eventually(revealed, within=10, what="the admin's binding to take effect")

    # the scheduler, a mesh service, reveals it for its replica (it holds no encryption key)
    agent = agent_definition(ns)
    async with mesh.registry_client() as registry, mesh.scheduler_client() as scheduler:
        await registry.register_agent(agent)
        d = scheduler_pb2.Deployment(name="keyed", namespace=ns,
                                     spec=scheduler_pb2.DeploymentSpec(agent_id="echo", replicas=1))
        json_format.ParseDict({"env_vars": [{"name": "API_KEY",
                                             "valueFrom": {"secretKeyRef": {"name": "llm", "key": "openai"}}}]},
                              d.spec)
        await scheduler.create_deployment(d)

        async def serving() -> bool:
            found = (await registry.list_instances(namespace=ns, agent_id="echo")).instances
            return any(i.state == registry_pb2.INSTANCE_STATE_SERVING for i in found)

        await eventually(serving, within=40, period=0.2, what="a serving replica with the secret in its environment")
        assert mesh.scheduler is not None
        state = mesh.scheduler.config.state_dir
        assert f"API_KEY={VALUE}".encode() in replica_environ(state, ns)
        await scheduler.delete_deployment("keyed", namespace=ns, wait=True, timeout=30)

    async with mesh.client(AuditClient) as audit:
        records = (await audit.list_audit_events(namespace=ns, resource="secrets", page_size=500,
                                                 timeout=10)).events
    verbs = {(r.verb, r.principal.split("/")[-1]) for r in records}
    assert ("read-value", "op") in verbs, "the refused reveal is audited"
    assert ("read-value", "boss") in verbs, "the reveal is audited"
    assert any(r.verb == "read-value" and "scheduler" in r.principal for r in records), "so is the scheduler's"
    assert ("update", "op") in verbs
    for record in records:
        assert VALUE not in record.SerializeToString().decode(errors="replace")
