"""`sutradhar deploy / deployments / scale / rollout / logs / undeploy` as a user
runs them (real CLI processes against the in-test registry and scheduler), and
a liveness restart requested by the health service."""

from __future__ import annotations

import asyncio
import json
import sys

from test_scheduler_support import (
    ECHO_COMMAND,
    ROOT,
    api,
    deployment,
    echo_agent,
    eventually,
    get,
    namespace,
    pid_alive,
    registry,
    registry_client,
    run_cli,
    scheduler,
)

from sutradhar.services.common import keys
from sutradhar.v1 import registry_pb2
from sutradhar.v1 import scheduler_pb2 as P

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest


async def cli(registry, scheduler, *args: str) -> tuple[int, str]:
    return await run_cli(registry, scheduler, *args, within=60)


async def test_cli_round_trip(registry, scheduler, namespace, tmp_path):
    manifest = tmp_path / "echo.yaml"
    command = json.dumps(ECHO_COMMAND)
    manifest.write_text(f"""
apiVersion: sutradhar/v1
kind: Agent
metadata: {{name: echo, namespace: {namespace}}}
spec:
  type: echo
  version: 1.0.0
  runtime: process
  capabilities: [echo]
  config: {{command: {command}, workdir: "{ROOT}"}}
---
apiVersion: sutradhar/v1
kind: Deployment
metadata: {{name: echo, namespace: {namespace}}}
spec:
  agent: echo
  replicas: 2
  strategy: {{max_surge: 1, max_unavailable: 0}}
""")
    code, out = await cli(registry, scheduler, "deploy", "-f", str(manifest), "--wait", "--timeout", "30")
    assert code == 0, out
    assert "deployment/echo created" in out and "successfully rolled out" in out

    code, out = await cli(registry, scheduler, "deployments", "list", "-n", namespace)
    assert code == 0, out
    row = out.splitlines()[1].split()
    assert row[:2] == [namespace, "echo"] and row[4:6] == ["2", "2"]  # desired, ready

    code, out = await cli(registry, scheduler, "scale", "echo", "--replicas", "3", "-n", namespace)
    assert code == 0 and "scaled to 3" in out
    code, out = await cli(registry, scheduler, "rollout", "status", "echo", "-n", namespace, "-w", "--timeout", "30")
    assert code == 0, out

    code, out = await cli(registry, scheduler, "logs", "echo", "-n", namespace, "--tail", "5")
    assert code == 0 and "listening on" in out

    code, out = await cli(registry, scheduler, "deployments", "get", "echo", "-n", namespace, "-o", "json")
    pids = [int(r["native_id"]) for r in json.loads(out)["status"]["replica_statuses"]]
    assert len(pids) == 3

    code, out = await cli(registry, scheduler, "scale", "missing", "--replicas", "1", "-n", namespace)
    assert code == 1 and "NOT_FOUND" in out
    code, out = await cli(registry, scheduler, "scale", "echo", "--replicas", "5000", "-n", namespace)
    assert code == 1 and "replicas" in out and "INVALID_ARGUMENT" in out

    code, out = await cli(registry, scheduler, "undeploy", "echo", "-n", namespace)
    assert code == 0, out
    assert not any(pid_alive(p) for p in pids)


async def test_liveness_restart_requested_by_health(api, store, registry_client, namespace):
    await registry_client.register_agent(echo_agent(namespace))
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "live", replicas=1)))
    d = await eventually(lambda: _running(api, namespace, "live"))
    replica = d.status.replica_statuses[0]

    # what the health service does on a liveness failure
    kv = await store.get(keys.instance_key(namespace, replica.id))
    inst = keys.decode(kv.value, registry_pb2.Instance)
    inst.health.restart_requested = True
    await store.put(kv.key, keys.encode(inst), lease=kv.lease)

    async def restarted():
        d = await _running(api, namespace, "live")
        return d if d is not None and d.status.replica_statuses[0].native_id != replica.native_id else None

    d = await eventually(restarted)
    assert any(e.reason == "Restarted" and "liveness" in e.message for e in d.status.events)
    assert not pid_alive(int(replica.native_id))
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="live", wait=True))


async def _running(api, namespace, name):
    d = await get(api, namespace, name)
    rs = d.status.replica_statuses
    return d if len(rs) == 1 and rs[0].phase == P.REPLICA_PHASE_RUNNING else None


async def test_liveness_failure_seen_by_the_real_health_service_restarts(etcd, api, registry_client, namespace):
    """Health probes liveness, sets restart_requested; the scheduler restarts the replica."""
    import httpx
    from google.protobuf import duration_pb2

    from sutradhar._values import to_struct
    from sutradhar.services.health import HealthConfig, HealthServer
    from sutradhar.v1 import probe_pb2

    fast = {"kind": "http", "http_path": "/health", "period": duration_pb2.Duration(nanos=300_000_000),
            "failure_threshold": 1}
    agent = registry_pb2.Agent(
        id="flaky", namespace=namespace, type="flaky", version="1.0.0", runtime="process",
        config=to_struct({"command": [sys.executable, str(ROOT / "examples" / "http_echo_agent.py")]}),
        probes=probe_pb2.Probes(readiness=probe_pb2.ProbeSpec(**fast), liveness=probe_pb2.ProbeSpec(**fast)),
    )
    await registry_client.register_agent(agent)
    health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd))
    await health.start()
    try:
        await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(namespace, "flaky", "flaky", 1)))
        d = await eventually(lambda: _running(api, namespace, "flaky"))
        replica = d.status.replica_statuses[0]
        async with httpx.AsyncClient() as client:
            reply = await client.post(f"http://{replica.endpoint}/admin/health", json={"healthy": False})
            assert reply.status_code == 200

        async def restarted():
            d = await _running(api, namespace, "flaky")
            return d if d is not None and d.status.replica_statuses[0].native_id != replica.native_id else None

        d = await eventually(restarted, within=20)
        assert any(e.reason == "Restarted" and "liveness" in e.message for e in d.status.events)
        assert not pid_alive(int(replica.native_id))
        await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="flaky", wait=True))
    finally:
        await health.stop()


async def test_a_liveness_probe_that_always_fails_backs_off_into_crash_loop(etcd, api, registry_client, namespace):
    """Liveness restarts are counted and backed off like crashes: a probe that can
    never pass ends in CrashLoopBackOff, not in a restart every few hundred ms
    (it was ~4 restarts a second)."""
    import time

    from google.protobuf import duration_pb2

    from sutradhar.services.health import HealthConfig, HealthServer
    from sutradhar.v1 import probe_pb2

    agent = echo_agent(namespace, "never-live")
    agent.probes.CopyFrom(probe_pb2.Probes(liveness=probe_pb2.ProbeSpec(
        kind="grpc", grpc_service="no.such.Service", period=duration_pb2.Duration(nanos=200_000_000),
        failure_threshold=1)))
    await registry_client.register_agent(agent)
    health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd))
    await health.start()
    try:
        await api.CreateDeployment(P.CreateDeploymentRequest(
            deployment=deployment(namespace, "never-live", "never-live", 1)))
        started = time.monotonic()
        d = None

        async def crash_looping() -> P.DeploymentCondition | None:
            nonlocal d
            d = await get(api, namespace, "never-live")
            return next((c for c in d.status.conditions
                         if c.type == "CrashLoopBackOff" and c.status == P.CONDITION_STATUS_TRUE), None)

        looping = await eventually(crash_looping, within=20, period=0.2)
        assert looping is not None and "liveness" in looping.message, d.status
        await asyncio.sleep(4.0)  # back-off base 0.3 s doubling to the 2 s cap: a handful of restarts
        d = await get(api, namespace, "never-live")
        restarts = d.status.replica_statuses[0].restarts
        elapsed = time.monotonic() - started
        assert 2 <= restarts <= elapsed / 0.5, (restarts, elapsed)  # was about 4 per second
        restarted = [e for e in d.status.events if e.reason == "Restarted" and "liveness" in e.message]
        assert restarted and "(restart " in restarted[-1].message
        await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="never-live", wait=True))
    finally:
        await health.stop()
