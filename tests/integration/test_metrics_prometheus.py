"""Router metrics scraped by a real Prometheus (Debian's `prometheus`, started here on loopback with its
own config and a data dir in tmp, stopped by pid): a live mesh of real processes (registry, router, two
echo agents) under a short load; the test asks Prometheus's HTTP API. Also `promtool check rules` on
deploy/prometheus and the dashboards' JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from obs_support import ROOT, Child, children, start

from sutradhar import RouterClient
from sutradhar.services.common.etcd_server import free_port
from tests.support import eventually

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (scripts/install-system-deps.sh)")

DEPLOY = ROOT / "deploy"
ECHO = ["-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure", "--port", "0"]


@dataclass
class Mesh:
    namespace: str
    router: Child
    metrics_url: str
    prometheus: str
    agents: list[Child]


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return bytes(answer.read())


def query(mesh: Mesh, expr: str) -> list[dict[str, Any]]:
    """An instant query; the result vector (AssertionError when Prometheus refuses the expression)."""
    url = f"{mesh.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = json.loads(http_get(url))
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{expr}: {err.read().decode()}") from None
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scraped(mesh: Mesh) -> str:
    return http_get(mesh.metrics_url).decode()


@pytest.fixture(scope="module")
def mesh(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    logs = tmp_path_factory.mktemp("metrics-mesh")
    namespace = f"metrics-{os.getpid()}"
    metrics_port = free_port()
    with children() as started:
        started.append(registry := start(
            "registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd], logs))
        started.append(router := start(
            "router", ["-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                       registry.address, "--metrics-port", str(metrics_port)], logs))
        agents = []
        agent_ports = [free_port() for _ in range(2)]
        for i, port in enumerate(agent_ports):
            agent = start(f"echo-{i}", [*ECHO, "--registry", registry.address, "--namespace", namespace,
                                        "--agent-id", "echo", "--metrics-port", str(port)], logs)
            started.append(agent)
            agents.append(agent)
        rules = logs / "alerts.yml"
        # The test's copy of the rules: `for:` 1 s, so an alert fires within the test's time.
        rules.write_text(re.sub(r"for: \d+m", "for: 1s", (DEPLOY / "prometheus" / "alerts.yml").read_text()))
        web_port = free_port()
        config = logs / "prometheus.yml"
        config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [{json.dumps(str(rules))}]
scrape_configs:
  - job_name: sutradhar-router
    static_configs: [{{targets: ["127.0.0.1:{metrics_port}"]}}]
  - job_name: sutradhar-agents
    static_configs: [{{targets: {json.dumps([f"127.0.0.1:{p}" for p in agent_ports])}}}]
""")
        with open(logs / "prometheus.log", "wb") as sink:
            prom = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={logs / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{web_port}"],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{web_port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    http_get(f"{base}/-/ready")
                    break
                except OSError:
                    assert prom.poll() is None, (logs / "prometheus.log").read_text()
                    assert time.monotonic() < deadline, "prometheus did not get ready in 30 s"
                    time.sleep(0.1)
            yield Mesh(namespace, router, f"http://127.0.0.1:{metrics_port}/metrics", base, agents)
        finally:
            prom.terminate()
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(5)


async def wait_serving(mesh: Mesh, count: int) -> None:
    pattern = (f'sutradhar_router_instances{{agent="echo",namespace="{mesh.namespace}",state="serving"}} '
               f'{float(count)}')
    await eventually(lambda: pattern in scraped(mesh), within=20)


def total(mesh: Mesh, expr: str) -> float:
    result = query(mesh, expr)
    return sum(float(r["value"][1]) for r in result)


async def test_prometheus_counts_every_routed_call_by_instance_and_code(mesh: Mesh) -> None:
    await wait_serving(mesh, 2)
    ok, failing = 40, 10
    async with RouterClient(mesh.router.address) as client:
        for i in range(ok + failing):
            payload = {"fail": "LOAD"} if i < failing else {"n": i}
            await client.execute("echo", payload, namespace=mesh.namespace, max_attempts=1,
                                 timeout=timedelta(seconds=5))
    ns = f'namespace="{mesh.namespace}"'
    await eventually(lambda: total(mesh, f"sum(sutradhar_router_requests_total{{{ns}}})") == ok + failing,
                     within=15)
    # A failed task result is an answer: code OK. Both instances took calls (round-robin-like strategies).
    by_code = query(mesh, f"sum by (code) (sutradhar_router_requests_total{{{ns}}})")
    assert [(r["metric"]["code"], float(r["value"][1])) for r in by_code] == [("OK", float(ok + failing))]
    by_instance = query(mesh, f"sum by (instance_id) (sutradhar_router_requests_total{{{ns}}})")
    assert len(by_instance) == 2 and sum(float(r["value"][1]) for r in by_instance) == ok + failing
    # The histogram counted every attempt, and the sub-millisecond buckets exist.
    assert total(mesh, f"sum(sutradhar_router_request_duration_seconds_count{{{ns}}})") == ok + failing
    assert query(mesh, f'sutradhar_router_request_duration_seconds_bucket{{{ns},le="0.00025"}}')
    assert total(mesh, f"sum(sutradhar_router_in_flight{{{ns}}})") == 0
    # The agents' own view of the same calls: every task counted once, by outcome, with its latency.
    await eventually(lambda: total(mesh, f"sum(sutradhar_agent_task_duration_seconds_count{{{ns}}})") == ok + failing,
                     within=15)
    by_outcome = query(mesh, f'sum by (outcome) (sutradhar_agent_tasks_total{{{ns},agent="echo"}})')
    assert {r["metric"]["outcome"]: float(r["value"][1]) for r in by_outcome} == {"success": ok, "failure": failing}
    assert total(mesh, f'sum(sutradhar_agent_in_flight{{{ns}}})') == 0


#: The dashboards of the data plane (routers and agents); control-plane.json is queried by
#: test_metrics_control_plane.py, against a mesh with a scheduler and a health member.
DATA_PLANE_BOARDS = ("agent.json", "mesh-overview.json")


def dashboard_queries(names: tuple[str, ...] = DATA_PLANE_BOARDS) -> list[tuple[str, str]]:
    out = []
    for name in names:
        path = DEPLOY / "grafana" / name
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
    return out


async def test_every_dashboard_query_parses_and_returns_data(mesh: Mesh) -> None:
    await wait_serving(mesh, 2)
    async with RouterClient(mesh.router.address) as client:
        for i in range(20):
            await client.execute("echo", {"n": i}, namespace=mesh.namespace, timeout=timedelta(seconds=5))
    queries = dashboard_queries()
    assert len(queries) >= 15

    def substitute(expr: str) -> str:
        return expr.replace("$namespace", mesh.namespace).replace("$agent", "echo")

    def empty() -> list[str]:
        return [f"{name}: {expr}" for name, expr in queries if not query(mesh, substitute(expr))]

    # rate() needs two scrapes after the calls: poll until every query has data.
    await eventually(lambda: not empty(), within=20, what=lambda: f"queries without data: {empty()}")


def rules_of(mesh: Mesh) -> list[dict[str, Any]]:
    body = json.loads(http_get(f"{mesh.prometheus}/api/v1/rules"))
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


async def test_every_alert_loads_and_no_serving_instances_fires_when_the_agents_die(mesh: Mesh) -> None:
    await wait_serving(mesh, 2)
    rules = await eventually(lambda: rules_of(mesh) or None, within=10)
    assert len(rules) == 9 and all(rule["health"] == "ok" for rule in rules), rules
    # Every expression parses and evaluates against the live data.
    for rule in rules:
        query(mesh, rule["query"])
    # Kill every replica (SIGKILL: no deregistration): the registry marks them not serving once their
    # heartbeat TTL passes, the router's view follows, and the alert fires for this namespace's agent.
    for agent in mesh.agents:
        agent.proc.kill()
        agent.proc.wait(5)
        agent.stopped = True

    def firing() -> list[dict[str, Any]]:
        body = json.loads(http_get(f"{mesh.prometheus}/api/v1/alerts"))
        return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == "SutradharAgentNoServingInstances"
                and a["labels"].get("namespace") == mesh.namespace and a["state"] == "firing"]

    (alert,) = await eventually(lambda: firing() or None, within=45)
    assert alert["labels"]["agent"] == "echo" and alert["labels"]["severity"] == "critical"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_the_example_config() -> None:
    for args in (["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                 ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")]):
        out = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=30, cwd=DEPLOY / "prometheus")
        assert out.returncode == 0, out.stdout + out.stderr


def test_every_dashboard_is_tested_somewhere() -> None:
    boards = {path.name for path in (DEPLOY / "grafana").glob("*.json")}
    assert boards == {*DATA_PLANE_BOARDS, "control-plane.json"}, boards


def test_data_plane_dashboards_name_only_metrics_routers_and_agents_serve() -> None:
    served = {"sutradhar_agent_tasks_total", "sutradhar_agent_task_duration_seconds_bucket",
              "sutradhar_agent_in_flight",
              "sutradhar_router_requests_total", "sutradhar_router_request_duration_seconds_bucket",
              "sutradhar_router_in_flight", "sutradhar_router_instances", "sutradhar_router_retries_total",
              "sutradhar_router_hedges_total", "sutradhar_router_ratelimit_refusals_total",
              "sutradhar_router_breaker_state", "sutradhar_router_instance_ejected",
              "sutradhar_router_ejections_total"}
    named = {m for _, expr in dashboard_queries() for m in re.findall(r"sutradhar_[a-z_]+", expr)}
    assert named <= served, named - served
    agent_board = json.loads((DEPLOY / "grafana" / "agent.json").read_text())
    assert "agent" in {v["name"] for v in agent_board["templating"]["list"]}
