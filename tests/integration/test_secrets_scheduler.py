"""A secret's value reaches a process replica (environment and a 0400 file) through a real
registry and scheduler, never its command line, the logs, etcd's raw bytes or any CLI output;
a changed secret rolls the deployment; a missing one is a condition naming it."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from google.protobuf import json_format
from test_scheduler_support import (
    api,
    condition,
    deployment,
    echo_agent,
    eventually,
    get,
    namespace,
    ready_instances,
    registry_client,
    run_cli,
    scheduler,
)
from test_secrets_support import raw_etcd_values, registry

from sutradhar._secret_clients import ConfigMapClient, SecretClient
from sutradhar.services.registry.server import RegistryServer
from sutradhar.services.scheduler.server import SchedulerServer
from sutradhar.v1 import scheduler_pb2, scheduler_pb2_grpc

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]

VALUE = "sk-process-7c1e0b94d2"
NEW_VALUE = "sk-process-rotated-33aa"
REFS = {
    "env_vars": [
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "openai"}}},
        {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "model"}}},
    ],
    "files": [{"secret": "llm", "mountPath": "/etc/agent/keys", "items": [{"key": "openai", "path": "openai.key"}]}],
}


def records(state: Path, ns: str) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((state / "process" / ns).glob("*/record.json"))]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def check_replica(pid: int) -> Path:
    """The value in the replica's environment and its 0400 file, not on its command line; its files dir."""
    env = environ(pid)
    assert env["API_KEY"] == VALUE and env["MODEL"] == "m1"
    assert VALUE not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    files_dir = Path(env["SUTRADHAR_FILES_DIR"])
    key_file = files_dir / "etc/agent/keys/openai.key"
    assert key_file.read_text() == VALUE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    assert stat.S_IMODE(files_dir.stat().st_mode) == 0o700
    return files_dir


async def raw_etcd(etcd: str) -> bytes:
    return b"\n".join(key + b"=" + value for key, value in await raw_etcd_values(etcd, "/sutradhar/"))


async def test_secret_reaches_a_process_replica_and_nothing_else(
    registry: RegistryServer, scheduler: SchedulerServer, api: scheduler_pb2_grpc.SchedulerServiceStub,
    registry_client: object, namespace: str, etcd: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ns = namespace
    state = scheduler.config.state_dir
    async with SecretClient(registry.address) as secrets, ConfigMapClient(registry.address) as maps:
        await secrets.apply_secret("llm", {"openai": VALUE.encode()}, namespace=ns)
        await maps.apply_config_map("settings", {"model": "m1"}, namespace=ns)
        await registry_client.register_agent(echo_agent(ns))  # type: ignore[attr-defined]
        d = deployment(ns, "keyed", replicas=1)
        json_format.ParseDict(REFS, d.spec)
        await api.CreateDeployment(scheduler_pb2.CreateDeploymentRequest(deployment=d))
        await eventually(lambda: _ready(registry_client, ns, "keyed", 1))
        first = records(state, ns)
        assert len(first) == 1
        pid = int(first[0]["pid"])  # type: ignore[call-overload]
        files_dir = check_replica(pid)
        assert VALUE not in json.dumps(first)

        # a changed secret rolls the deployment like a changed spec
        before = (await get(api, ns, "keyed")).status.current_revision
        await secrets.apply_secret("llm", {"openai": NEW_VALUE.encode()}, namespace=ns)

        async def rolled() -> bool:
            status = (await get(api, ns, "keyed")).status
            found = records(state, ns)
            return (status.current_revision != before and status.updated_replicas == 1 and len(found) == 1
                    and environ(int(found[0]["pid"])).get("API_KEY") == NEW_VALUE  # type: ignore[call-overload]
                    and await _ready(registry_client, ns, "keyed", 1))

        await eventually(rolled)
        await eventually(lambda: not files_dir.exists(), what="the old replica's files are removed")

        # re-applying the same data changes nothing (no version bump, no rollout)
        revision = (await get(api, ns, "keyed")).status.current_revision
        assert not (await secrets.apply_secret("llm", {"openai": NEW_VALUE.encode()}, namespace=ns)).changed

        # a reference to a missing secret: nothing starts, a condition names what is missing
        missing = deployment(ns, "missing", replicas=1)
        json_format.ParseDict({"env_vars": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope",
                                                                                         "key": "k"}}}]}, missing.spec)
        await api.CreateDeployment(scheduler_pb2.CreateDeploymentRequest(deployment=missing))

        async def missing_reported() -> bool:
            c = condition(await get(api, ns, "missing"), "ReplicaFailure")
            return c is not None and c.reason == "MissingReference" and "secret 'nope' does not exist" in c.message

        await eventually(missing_reported)
        assert not [r for r in records(state, ns) if r["deployment"] == "missing"]
        assert (await get(api, ns, "keyed")).status.current_revision == revision

    # never in a CLI output, etcd's raw bytes or a log line
    outputs = []
    for args in (["secrets", "list", "-n", ns], ["secrets", "list", "-n", ns, "-o", "json"],
                 ["secrets", "get", "llm", "-n", ns], ["secrets", "get", "llm", "-n", ns, "-o", "json"],
                 ["deployments", "get", "keyed", "-n", ns], ["deployments", "get", "keyed", "-n", ns, "-o", "json"],
                 ["deployments", "list", "-n", ns, "-o", "json"], ["agents", "list", "-n", ns, "-o", "json"],
                 ["logs", "keyed", "-n", ns]):
        code, out = await run_cli(registry, scheduler, *args)
        assert code == 0, out
        outputs.append(out)
    manifest = tmp_path / "secret.yaml"
    manifest.write_text(f"apiVersion: sutradhar/v1\nkind: Secret\nmetadata: {{name: more, namespace: {ns}}}\n"
                        f"stringData: {{k: {VALUE}}}\n")
    code, out = await run_cli(registry, scheduler, "deploy", "-f", str(manifest))
    assert code == 0 and "secret/more created" in out, out
    outputs.append(out)
    code, out = await run_cli(registry, scheduler, "deploy", "-f", str(manifest), "-o", "json")
    assert code == 0, out
    outputs.append(out)
    for out in outputs:
        assert VALUE not in out and NEW_VALUE not in out
    code, out = await run_cli(registry, scheduler, "secrets", "reveal", "llm", "-n", ns, "--key", "openai")
    assert code == 0 and out == NEW_VALUE, "reveal prints exactly the value asked for"
    raw = await raw_etcd(etcd)
    assert VALUE.encode() not in raw and NEW_VALUE.encode() not in raw
    assert VALUE not in caplog.text and NEW_VALUE not in caplog.text


async def _ready(client: object, ns: str, name: str, count: int) -> bool:
    return len(await ready_instances(client, ns, name)) == count  # type: ignore[arg-type]
