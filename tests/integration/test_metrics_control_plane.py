"""The control plane's metrics scraped by a real Prometheus (started here on loopback, stopped by pid): a
registry, a health member and a scheduler (real processes) running one healthy deployment of the echo
agent and one whose replicas crash at start. Prometheus's HTTP API shows the RPC counts, the
deployments' replica gauges, and the "no ready replicas" and "crash loop" alerts firing for the
crashing one only. The echo replica's own /metrics (a port the scheduler gave it) is found through the
registry's HTTP service discovery, with the example config's relabelling, and counts the tasks sent to it; a
deployment whose agent says `metrics: false` gets no port and is no target."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from obs_support import ROOT, children, start

from sutradhar import AgentClient, RegistryClient
from sutradhar._labels import METRICS_PORT_LABEL
from sutradhar.services.common.etcd_server import free_port
from tests.support import eventually

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (scripts/install-system-deps.sh)")

CLI = [sys.executable, "-m", "sutradhar.cli.main"]
ECHO_COMMAND = [sys.executable, "-m", "sutradhar.serve", "examples.echo_agent:EchoAgent"]
CRASH_COMMAND = [sys.executable, "-c", "raise SystemExit(3)"]


@dataclass
class Plane:
    namespace: str
    prometheus: str
    registry: str
    registry_metrics: str


def agents_job(targets_url: str) -> dict[str, Any]:
    """The example config's agents job (deploy/prometheus/prometheus.yml), discovering from `targets_url`."""
    example = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in example["scrape_configs"] if job["job_name"] == "sutradhar-agents"]
    job["http_sd_configs"] = [{"url": targets_url, "refresh_interval": "1s"}]
    return dict(job)


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return bytes(answer.read())


def query(plane: Plane, expr: str) -> list[dict[str, Any]]:
    url = f"{plane.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = json.loads(http_get(url))
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{expr}: {err.read().decode()}") from None
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def manifest(namespace: str, name: str, command: list[str], replicas: int, *, metrics: bool = True) -> str:
    return f"""
apiVersion: sutradhar/v1
kind: Agent
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  type: {name}
  version: 1.0.0
  runtime: process
  config: {{command: {json.dumps(command)}, workdir: "{ROOT}"{"" if metrics else ", metrics: false"}}}
---
apiVersion: sutradhar/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  agent: {name}
  replicas: {replicas}
"""


@pytest.fixture(scope="module")
def plane(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    logs = tmp_path_factory.mktemp("metrics-plane")
    namespace = f"mcp-{os.getpid()}"
    ports = {name: free_port() for name in ("registry", "health", "scheduler")}
    with children() as started:
        started.append(registry := start("registry", [
            "-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd,
            "--metrics-port", str(ports["registry"])], logs))
        started.append(start("health", [
            "-m", "sutradhar.services.health", "--insecure", "--port", "0", "--etcd", etcd,
            "--metrics-port", str(ports["health"])], logs))
        started.append(scheduler := start("scheduler", [
            "-m", "sutradhar.services.scheduler", "--insecure", "--port", "0", "--etcd", etcd,
            "--registry", registry.address, "--state-dir", str(logs / "state"), "--member-id", f"mcp-{os.getpid()}",
            "--election-ttl", "2s", "--resync-period", "1s", "--stop-grace", "3s",
            "--metrics-port", str(ports["scheduler"])], logs))
        env = {**os.environ, "SUTRADHAR_REGISTRY": registry.address, "SUTRADHAR_SCHEDULER": scheduler.address}
        rules = logs / "alerts.yml"
        rules.write_text(re.sub(r"for: \d+m", "for: 1s", (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()))
        web_port = free_port()
        config = logs / "prometheus.yml"
        config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [{json.dumps(str(rules))}]
scrape_configs:
""" + "".join(f"""  - job_name: {name}
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
""" for name, port in ports.items()) + "  - " + json.dumps(agents_job(
            f"http://127.0.0.1:{ports['registry']}/scrape-targets")) + "\n")
        with open(logs / "prometheus.log", "wb") as sink:
            prom = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={logs / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{web_port}"],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for name, command, replicas, metrics in (("echo", ECHO_COMMAND, 1, True),
                                                     ("crasher", CRASH_COMMAND, 1, True),
                                                     ("quiet", ECHO_COMMAND, 1, False)):
                path = logs / f"{name}.yaml"
                path.write_text(manifest(namespace, name, command, replicas, metrics=metrics))
                out = subprocess.run([*CLI, "deploy", "-f", str(path)], env=env, cwd=ROOT, capture_output=True,
                                     text=True, timeout=60)
                assert out.returncode == 0, out.stdout + out.stderr
            try:
                yield Plane(namespace, f"http://127.0.0.1:{web_port}", registry.address,
                            f"http://127.0.0.1:{ports['registry']}")
            finally:
                for name in ("echo", "crasher", "quiet"):
                    subprocess.run([*CLI, "undeploy", name, "-n", namespace], env=env, cwd=ROOT,
                                   capture_output=True, timeout=60)
        finally:
            prom.terminate()
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(5)


def value(plane: Plane, expr: str) -> float | None:
    result = query(plane, expr)
    return float(result[0]["value"][1]) if result else None


async def test_scheduler_replica_gauges_and_rpc_counts_reach_prometheus(plane: Plane) -> None:
    echo = f'namespace="{plane.namespace}",deployment="echo"'
    await eventually(lambda: value(plane, f"sutradhar_scheduler_ready_replicas{{{echo}}}") == 1, within=40,
                     what="the echo deployment's ready replica in Prometheus")
    # The deploys went through the registry's and the scheduler's APIs: counted by method and code. Each
    # check is polled: on a loaded machine a 1 s scrape can time out now and then.
    checks = {
        "desired": lambda: value(plane, f"sutradhar_scheduler_desired_replicas{{{echo}}}") == 1,
        "available": lambda: value(plane, f"sutradhar_scheduler_available_replicas{{{echo}}}") == 1,
        "Available condition": lambda: value(
            plane, f'sutradhar_scheduler_deployment_condition{{{echo},condition="Available"}}') == 1,
        "one leader": lambda: value(plane, 'sum(sutradhar_scheduler_leader{job="scheduler"})') == 1,
        "reconciles timed": lambda: (value(
            plane, 'sum(sutradhar_scheduler_reconcile_duration_seconds_count{job="scheduler"})') or 0) > 0,
        "ApplyDeployment OK": lambda: (value(plane, 'sum(grpc_server_handled_total{job="scheduler",'
                                              'grpc_method="ApplyDeployment",grpc_code="OK"})') or 0) > 0,
        "registry calls": lambda: (value(plane, 'sum(grpc_server_handled_total{job="registry",grpc_code="OK"})')
                                   or 0) > 0,
        "registry timings": lambda: (value(plane, 'sum(grpc_server_handling_seconds_count{job="registry"})')
                                     or 0) > 0,
        "health scraped": lambda: value(plane, 'up{job="health"}') == 1,
        "echo and quiet serving (health)": lambda: value(
            plane, f'sutradhar_health_instances{{namespace="{plane.namespace}",state="serving"}}') == 2,
        "readiness probes": lambda: (value(
            plane, 'sum(sutradhar_health_probes_total{job="health",probe="readiness",result="success"})') or 0) > 0,
        "probe lag": lambda: value(plane, 'sutradhar_health_probe_lag_seconds{job="health",quantile="0.99"}')
        is not None,
        "probed instances": lambda: (value(plane, 'sutradhar_health_probed_instances{job="health"}') or 0) >= 1,
        # etcd latency, by service and RPC, and the registry's objects by kind (count-only reads)
        "registry etcd ranges": lambda: (value(plane, 'sum(sutradhar_etcd_request_duration_seconds_count{'
                                         'job="registry",op="Range",outcome="ok"})') or 0) > 0,
        "scheduler etcd txns": lambda: (value(plane, 'sum(sutradhar_etcd_request_duration_seconds_count{'
                                        'job="scheduler",op="Txn"})') or 0) > 0,
        "agents counted": lambda: (value(plane, 'sutradhar_registry_objects{job="registry",kind="agents"}')
                                   or 0) >= 2,
        "instances counted": lambda: (value(plane, 'sutradhar_registry_objects{job="registry",kind="instances"}')
                                      or 0) >= 1,
    }

    def failing() -> list[str]:
        return [name for name, check in checks.items() if not check()]

    await eventually(lambda: not failing(), within=20, what=lambda: f"failing: {failing()}; up: {query(plane, 'up')}")


async def test_no_ready_replicas_and_crash_loop_fire_for_the_crashing_deployment_only(plane: Plane) -> None:
    def firing() -> dict[str, set[str]]:
        body = json.loads(http_get(f"{plane.prometheus}/api/v1/alerts"))
        out: dict[str, set[str]] = {}
        for alert in body["data"]["alerts"]:
            if alert["state"] == "firing" and alert["labels"].get("namespace") == plane.namespace:
                out.setdefault(alert["labels"]["alertname"], set()).add(alert["labels"].get("deployment", ""))
        return out

    want = {"SutradharDeploymentNoReadyReplicas", "SutradharDeploymentCrashLoop"}
    alerts = await eventually(lambda: firing() if want <= set(firing()) else None, within=60,
                              what=lambda: f"alerts firing: {firing()}")
    assert alerts["SutradharDeploymentNoReadyReplicas"] == {"crasher"}
    assert alerts["SutradharDeploymentCrashLoop"] == {"crasher"}


async def test_every_control_plane_dashboard_query_returns_data(plane: Plane) -> None:
    board = json.loads((ROOT / "deploy" / "grafana" / "control-plane.json").read_text())
    queries = [(panel["title"], target["expr"].replace("$namespace", plane.namespace))
               for panel in board["panels"] for target in panel["targets"]]
    assert len(queries) >= 9

    def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not query(plane, expr)]

    # rate() needs two scrapes: poll until every query has data.
    await eventually(lambda: not empty(), within=40, what=lambda: f"queries without data: {empty()}")



async def test_a_scheduled_replica_serves_metrics_prometheus_finds_through_the_registry(plane: Plane) -> None:
    async with RegistryClient(plane.registry) as registry:
        async def ready(agent: str) -> Any:
            listed = (await registry.list_instances(namespace=plane.namespace, agent_id=agent)).instances
            return listed[0] if listed else None

        echo = await eventually(lambda: ready("echo"), within=40, what="the echo replica registered")
        quiet = await eventually(lambda: ready("quiet"), within=40, what="the quiet replica registered")
    port = echo.labels[METRICS_PORT_LABEL]
    assert METRICS_PORT_LABEL not in quiet.labels, quiet.labels
    # the registry's discovery document: the echo replica, on its endpoint's host, with the labels to relabel
    groups = json.loads(http_get(f"{plane.registry_metrics}/scrape-targets"))
    ours = {g["labels"]["__meta_sutradhar_instance_id"]: g for g in groups
            if g["labels"]["__meta_sutradhar_namespace"] == plane.namespace}
    assert set(ours) == {echo.id}, groups
    assert ours[echo.id]["targets"] == [f"{echo.endpoint.rsplit(':', 1)[0]}:{port}"]
    assert ours[echo.id]["labels"]["__meta_sutradhar_deployment"] == "echo"
    calls = 5
    async with AgentClient(echo.endpoint) as agent:
        for i in range(calls):
            assert (await agent.execute({"n": i})).success
    job = f'job="sutradhar-agents",namespace="{plane.namespace}",agent="echo"'
    await eventually(
        lambda: value(plane, f"sum(sutradhar_agent_tasks_total{{{job},outcome=\"success\"}})") == calls, within=30,
        what=lambda: f"the echo replica's task count; targets: {http_get(plane.prometheus + '/api/v1/targets')!r}")
    (series,) = query(plane, f"sutradhar_agent_in_flight{{{job}}}")
    assert series["metric"]["instance_id"] == echo.id and series["metric"]["deployment"] == "echo", series
    assert value(plane, f'up{{job="sutradhar-agents",instance_id="{echo.id}"}}') == 1
