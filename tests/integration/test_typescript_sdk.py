"""The TypeScript SDK (sdk/typescript): its own unit tests (`npm test`), and against the real mesh: a
TypeScript echo agent served as a real process and called with the Python AgentClient (and checked by the
conformance suite, as the tutor agent is), registered in a real registry, routed to and drained on SIGTERM,
deployed by the scheduler on the process runtime, probed by the health service, scaled 1 -> 3 and rolled to
a new version under load through the router with no failed call, served and called over mutual TLS in a
secured mesh, called directly by a Python DirectClient its access review allows (and refusing one it does not),
a TypeScript RouterClient script routing to a Python agent through a real router, and a trace crossing a tracing
Python router into a TypeScript agent that traces with its own provider.

The session fixture installs the SDK's and the examples' dependencies from their lock files (`npm ci`)
and builds both once; without node and npm the tests are skipped, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from obs_support import children, exporting_to, receiving, start
from prometheus_client.parser import text_string_to_metric_families
from test_scheduler_support import (
    api,
    deployment,
    eventually,
    get,
    namespace,
    ready_instances,
    registry,
    registry_client,
    scheduler,
)

from cli.deploy import deployment_from_manifest
from cli.manifests import agent_from_manifest, load_manifests
from examples.echo_agent import EchoAgent
from sutradhar import (
    AgentServer,
    DeadlineExceeded,
    InvalidArgument,
    Partial,
    PermissionDenied,
    Progress,
    Result,
    RouterClient,
    TaskContext,
    Unavailable,
)
from sutradhar._clients import AgentClient, RegistryClient
from sutradhar._credentials import Credentials
from sutradhar._direct import DirectClient
from sutradhar._errors import CERTIFICATE_REFUSED, PLAINTEXT_PEER, TLS_SERVICE
from sutradhar._hosting import GrpcHost
from sutradhar._identity import SpiffeId
from sutradhar._labels import METRICS_PORT_LABEL
from sutradhar._prometheus import LATENCY_BUCKETS
from sutradhar._tls import TlsSource
from sutradhar._values import from_struct, to_struct
from sutradhar.conformance import run_conformance
from sutradhar.services.common.tokens import IssuerKey, TokenIssuer
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.services.registry import RegistryServer
from sutradhar.services.router.server import RouterConfig, RouterServer
from sutradhar.services.scheduler.runtimes.container import ContainerRuntime
from sutradhar.testing import AgentProcess, spawn_agent
from sutradhar.v1 import agent_pb2, agent_pb2_grpc, registry_pb2, router_pb2_grpc
from sutradhar.v1 import scheduler_pb2 as P
from tests import docker_support
from tests.docker_support import DOCKER_TEST_TIMEOUT
from tests.integration.test_secure_direct import bind, direct
from tests.secure_support import ADMIN, TD, Pki, SecureEtcd, SecureMesh, secure_mesh, service

__all__ = ["api", "namespace", "registry", "registry_client", "scheduler"]  # fixtures imported for pytest
docker_engine = docker_support.docker_engine  # fixture

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "typescript"
EXAMPLES = ROOT / "examples" / "typescript"
ECHO = "examples/typescript/dist/echo/agent.js"
TRACED_AGENT = "sdk/typescript/dist/test/traced-agent.js"


def _route_script(node: str, router: str, namespace: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run examples/typescript/client/route.ts against `router`: its JSON report."""
    done = subprocess.run([node, "examples/typescript/dist/client/route.js", router, namespace], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # e.g. Node's DEP0123, an IP address as the TLS server name
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} in {cwd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def node() -> Iterator[str]:
    """The node binary, once the SDK and the examples are installed from their lock files and built."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node (>= 18) and npm are needed for the TypeScript SDK tests")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 18:
        pytest.skip(f"the TypeScript SDK needs node >= 18, found {version}")
    for where in (SDK, EXAMPLES):
        _run([npm, "ci", "--no-audit", "--no-fund"], where)
        _run([npm, "run", "build"], where)
    yield node


async def _spawn(node: str, env: dict[str, str], script: str = ECHO) -> AgentProcess:
    """Start a TypeScript agent; in a thread, so services of this process answer it while it starts."""
    return await asyncio.to_thread(spawn_agent, [node, script], cwd=str(ROOT), env={"SUTRADHAR_INSECURE": "1", **env})


def test_typescript_sdk_unit_tests_pass(node: str) -> None:
    """`npm test` in sdk/typescript (Node's own test runner), so `make test` runs them too. The session
    fixture built the SDK: ``--ignore-scripts`` skips `pretest`'s second build (npm still runs `test`)."""
    npm = shutil.which("npm")
    assert npm is not None
    done = subprocess.run([npm, "test", "--ignore-scripts"], cwd=SDK, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


async def test_typescript_agent_called_by_the_python_client(node: str) -> None:
    with await _spawn(node, {"SUTRADHAR_PORT": "0", "SUTRADHAR_INSTANCE_ID": "ts-echo-1"}) as proc:
        async with AgentClient(proc.address) as client:
            described = await client.describe()
            assert (described.id, described.version, described.streaming) == ("echo", "1.0.0", True)
            assert list(described.capabilities) == ["echo", "stream"]

            result = await client.execute({"hello": [1, 2.5, None, True]}, task_type="say", task_id="task-1")
            assert result.success
            assert result.data["echo"] == {"hello": [1, 2.5, None, True]}
            assert result.data["task_type"] == "say" and result.data["pid"] == proc.pid
            meta = result.metadata
            assert (meta.agent_id, meta.agent_version, meta.instance_id, meta.task_id) == (
                "echo", "1.0.0", "ts-echo-1", "task-1")
            assert meta.latency is not None

            failed = await client.execute({"fail": "INVALID_INPUT", "retryable": True})
            assert failed.error is not None and not failed.success
            assert (failed.error.code, failed.error.message, failed.error.retryable) == (
                "INVALID_INPUT", "failed on request", True)
            crashed = await client.execute({"crash": True})
            assert crashed.error is not None
            assert (crashed.error.code, crashed.error.message) == ("AGENT_ERROR", "Error: crashed on request")

            events = [e async for e in client.execute_stream({"text": "abcdefg", "chunk": 3})]
            assert [type(e) for e in events] == [Progress, Partial] * 3 + [Result]
            assert [e.data for e in events if isinstance(e, Partial)] == ["abc", "def", "g"]
            assert [e.message for e in events if isinstance(e, Progress)] == ["chunk 1/3", "chunk 2/3", "chunk 3/3"]
            final = events[-1]
            assert isinstance(final, Result) and final.success and final.data["chunks"] == 3
            streamed_failure = [e async for e in client.execute_stream({"fail": "NOPE"})]
            assert len(streamed_failure) == 1 and isinstance(streamed_failure[0], Result)
            assert streamed_failure[0].error is not None and streamed_failure[0].error.code == "NOPE"

            with pytest.raises(DeadlineExceeded):
                await client.execute({"sleep": 5}, timeout=0.3)

            async def idle() -> bool:
                return (await client.metrics()).in_flight == 0

            await eventually(idle, within=3)  # the sleep was cancelled, not left running
            metrics = await client.metrics()
            assert metrics.requests_total == 6 and metrics.errors_total == 4

        results = await run_conformance(proc.address)
        assert [r.name for r in results if not r.passed] == [], results
        by_name = {r.name: r for r in results}
        assert "INVALID_ARGUMENT" in by_name["malformed-input"].detail  # undecodable bytes are bad input
        assert "in-flight back to 0" in by_name["deadline"].detail
        assert proc.stop() == 0


async def test_typescript_tutor_agent(node: str) -> None:
    with await _spawn(node, {}, script="examples/typescript/dist/tutor/agent.js") as proc:
        async with AgentClient(proc.address) as client:
            described = await client.describe()
            assert (described.id, list(described.task_types)) == ("tutor", ["answer", "hint"])
            answer = await client.execute({"question": "12 * 7"}, task_type="answer")
            assert answer.data == {"answer": 84}
            hint = await client.execute({"question": "12 * 7"}, task_type="hint")
            assert hint.data == {"hint": "multiply 12 and 7"}
            bad = await client.execute({"question": "what?"})
            assert bad.error is not None and bad.error.code == "INVALID_INPUT"
            with pytest.raises(InvalidArgument) as err:
                await client.execute({"question": "1 + 1"}, task_type="shout")
            assert err.value.message == (
                "agent tutor does not accept task type 'shout'; it accepts 'answer', 'hint' (or an empty type)")
            events = [e async for e in client.execute_stream({"question": "2 + 3"}, task_type="answer")]
            assert [e.data for e in events if isinstance(e, Partial)] == ["We add 2 and 3.", "2 + 3 = 5."]
            assert isinstance(events[-1], Result) and events[-1].data == {"answer": 5, "steps": 2}
            assert (await client.metrics()).custom["answered"] == 2
        results = await run_conformance(proc.address, task_type="answer", payload={"question": "2 + 3"},
                                        slow_payload={"question": "2 + 3"})
        assert [r.name for r in results if not r.passed] == [], results
        assert proc.stop() == 0


async def _instances(client: RegistryClient, namespace: str, agent_id: str) -> list[registry_pb2.Instance]:
    return list((await client.list_instances(namespace=namespace, agent_id=agent_id)).instances)


@pytest.fixture
async def router(registry: RegistryServer) -> AsyncIterator[RouterServer]:
    server = RouterServer(RouterConfig(insecure=True, host="127.0.0.1", port=0, registry=registry.address))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(timedelta(seconds=1))


async def test_typescript_agent_registers_is_routed_to_and_deregisters_on_sigterm(
    node: str, registry: RegistryServer, registry_client: RegistryClient, router: RouterServer, namespace: str
) -> None:
    env = {"SUTRADHAR_REGISTRY": registry.address, "SUTRADHAR_NAMESPACE": namespace, "SUTRADHAR_TTL": "2s",
           "SUTRADHAR_LABELS": "lang=typescript", "SUTRADHAR_GRACE": "5s"}
    with await _spawn(node, env) as proc:
        definition = await registry_client.get_agent("echo", namespace=namespace)
        assert definition.runtime == "process" and definition.type == "echo"
        config = from_struct(definition.config)
        assert config["command"][0] == node and config["command"][-1].endswith("echo/agent.js")
        [instance] = await eventually(lambda: _instances(registry_client, namespace, "echo"))
        assert instance.state == registry_pb2.INSTANCE_STATE_SERVING
        assert instance.endpoint == proc.address and instance.labels["lang"] == "typescript"
        await asyncio.sleep(2.5)  # longer than the TTL: the lease is kept alive
        assert [i.id for i in await _instances(registry_client, namespace, "echo")] == [instance.id]

        async with RouterClient(router.address) as client:
            routed = await eventually(lambda: _routed(client, namespace, {"text": "via router"}))
            assert routed.data["echo"] == {"text": "via router"} and routed.data["task_type"] == "say"
            assert routed.metadata.instance_id == instance.id and routed.metadata.attempts == 1
            events = [e async for e in client.execute_stream("echo", {"text": "abcdef", "chunk": 3},
                                                             namespace=namespace)]
            assert [e.data for e in events if isinstance(e, Partial)] == ["abc", "def"]
            assert isinstance(events[-1], Result) and events[-1].success

            slow = asyncio.create_task(client.execute("echo", {"sleep": 1}, namespace=namespace, max_attempts=1))
            await asyncio.sleep(0.3)
            proc.signal(signal.SIGTERM)  # drains: the task in flight finishes, then it deregisters and exits 0
            assert (await slow).success
        assert await asyncio.to_thread(proc.wait) == 0
    assert await _instances(registry_client, namespace, "echo") == []


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET `url` (a /metrics), parsed by prometheus_client: value by (sample name, sorted labels)."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_typescript_agent_serves_prometheus_metrics_and_registers_their_port(
    node: str, registry: RegistryServer, registry_client: RegistryClient, namespace: str
) -> None:
    """SUTRADHAR_METRICS_PORT=0: the agent announces its /metrics, counts tasks by type and outcome in the
    Python agent's metric names (parsed by prometheus_client), and self-registers `sutradhar.metrics-port`."""
    env = {"SUTRADHAR_REGISTRY": registry.address, "SUTRADHAR_NAMESPACE": namespace, "SUTRADHAR_METRICS_PORT": "0"}
    with await _spawn(node, env) as proc:
        host, port = proc.address.rsplit(":", 1)
        url = await eventually(lambda: next((line.split(" metrics on ")[1] for line in proc.output
                                              if " metrics on " in line), None))
        assert url.startswith(f"http://{host}:") and url.endswith("/metrics") and not url.endswith(f":{port}/metrics")
        [instance] = await eventually(lambda: _instances(registry_client, namespace, "echo"))
        assert instance.labels[METRICS_PORT_LABEL] == url.rsplit(":", 1)[1].removesuffix("/metrics")
        async with AgentClient(proc.address) as client:
            for payload in ({}, {}, {"fail": "NOPE"}):
                await client.execute(payload, task_type="say")
            await client.execute({"crash": True})
        samples = await asyncio.to_thread(_samples, url)
        labels = (("agent", "echo"), ("namespace", namespace))

        def tasks(task_type: str, outcome: str) -> float:
            key = tuple(sorted((*labels, ("task_type", task_type), ("outcome", outcome))))
            return samples[("sutradhar_agent_tasks_total", key)]

        assert (tasks("say", "success"), tasks("say", "failure"), tasks("", "success"), tasks("", "failure")) == (
            2, 1, 0, 1)
        say = tuple(sorted((*labels, ("task_type", "say"))))
        assert samples[("sutradhar_agent_task_duration_seconds_count", say)] == 3
        buckets = {float(dict(key)["le"]): v for (name, key), v in samples.items()
                   if name == "sutradhar_agent_task_duration_seconds_bucket" and dict(key)["task_type"] == "say"}
        assert list(buckets) == [*LATENCY_BUCKETS, float("inf")] and buckets[30.0] == 3  # the router's buckets
        assert samples[("sutradhar_agent_in_flight", labels)] == 0
        assert {name for name, _ in samples} == {
            "sutradhar_agent_tasks_total", "sutradhar_agent_in_flight", "sutradhar_agent_task_duration_seconds_count",
            "sutradhar_agent_task_duration_seconds_sum", "sutradhar_agent_task_duration_seconds_bucket"}
        assert await asyncio.to_thread(proc.stop) == 0  # in a thread: the registry answers its draining
    assert await _instances(registry_client, namespace, "echo") == []


async def test_typescript_agent_logs_json_lines(node: str) -> None:
    """SUTRADHAR_LOG_FORMAT=json: every stderr line is one JSON object with the Python SDK's fields; a crash
    names its task, request and trace and carries the stack; the address is still found (`spawn_agent`)."""
    trace = "0af7651916cd43dd8448eb211c80319c"
    env = {"SUTRADHAR_LOG_FORMAT": "json", "SUTRADHAR_NAMESPACE": "logs", "SUTRADHAR_INSTANCE_ID": "ts-echo-j"}
    with await _spawn(node, env) as proc:
        async with AgentClient(proc.address) as client:
            context = TaskContext(request_id="req-j", traceparent=f"00-{trace}-b7ad6b7169203331-01")
            crashed = await client.execute({"crash": True}, task_id="task-j", context=context)
            assert crashed.error is not None
        assert proc.stop() == 0
    lines = [json.loads(line) for line in proc.output if line.strip()]  # each line is JSON, or this raises
    common = {"service": "echo", "agent": "echo", "instance": "ts-echo-j", "namespace": "logs"}
    listening = next(line for line in lines if "listening on" in line["message"])
    assert {**listening, "time": ""} == {"time": "", "level": "INFO", "logger": "sutradhar.serve", **common,
                                         "message": f"agent echo listening on {proc.address}", "address": proc.address}
    assert listening["time"].endswith("Z") and datetime.fromisoformat(listening["time"])
    [failure] = [line for line in lines if line["level"] == "ERROR"]
    assert {k: failure[k] for k in ("logger", "task_id", "request_id", "trace_id", "span_id")} == {
        "logger": "sutradhar.agent", "task_id": "task-j", "request_id": "req-j", "trace_id": trace,
        "span_id": "b7ad6b7169203331"}
    assert failure["message"] == "agent echo failed on task task-j:" and failure["agent"] == "echo"
    assert failure["exception"].startswith("Error: crashed on request\n    at ")


async def test_typescript_agent_honours_sutradhar_log_level(node: str) -> None:
    """SUTRADHAR_LOG_LEVEL as the Python SDK reads it: at ERROR the insecure warning is dropped and a crash's
    line kept, "listening on" is announced at any level; a bad level stops the agent, naming the variable."""
    with await _spawn(node, {"SUTRADHAR_LOG_LEVEL": "error"}) as proc:
        async with AgentClient(proc.address) as client:
            assert (await client.execute({"crash": True}, task_id="task-l")).error is not None
        assert proc.stop() == 0
    assert [line for line in proc.output if "runs INSECURE" in line] == []
    assert any("agent echo failed on task task-l:" in line for line in proc.output), proc.output
    with await _spawn(node, {}) as proc:  # the default, WARNING, writes the warning
        assert proc.stop() == 0
    assert any("runs INSECURE" in line for line in proc.output), proc.output

    done = await asyncio.to_thread(subprocess.run, [node, ECHO], cwd=ROOT, capture_output=True, text=True,
                                   timeout=30, check=False,
                                   env={**os.environ, "SUTRADHAR_INSECURE": "1", "SUTRADHAR_LOG_LEVEL": "loud"})
    assert done.returncode == 2
    assert ('agent echo: InvalidArgument: SUTRADHAR_LOG_LEVEL="loud" is not one of DEBUG, INFO, WARNING, ERROR, '
            "CRITICAL") in done.stderr


async def _routed(client: RouterClient, namespace: str, payload: object) -> Result | None:
    try:
        result = await client.execute("echo", payload, namespace=namespace, task_type="say", timeout=2)
    except Exception:  # the router learns of the instance through the registry's watch
        return None
    return result if result.success else None


def _typescript_agent(namespace: str, version: str = "1.2.0") -> registry_pb2.Agent:
    """The agent of examples/manifests/ts-echo-deployment.yaml in `namespace`, at `version`, with a fast gRPC
    readiness probe for the health service."""
    [manifest] = [m for m in load_manifests(ROOT / "examples" / "manifests" / "ts-echo-deployment.yaml")
                  if m.kind == "Agent"]
    agent = agent_from_manifest(manifest)
    agent.namespace, agent.version = namespace, version
    agent.config.fields["workdir"].string_value = str(ROOT)
    readiness = agent.probes.readiness
    readiness.kind = "grpc"
    readiness.period.FromTimedelta(timedelta(milliseconds=250))
    readiness.timeout.FromTimedelta(timedelta(milliseconds=500))
    readiness.failure_threshold, readiness.success_threshold = 3, 1
    return agent


async def _probed(client: RegistryClient, namespace: str, instances: list[registry_pb2.Instance],
                  prober: str) -> bool:
    """Whether the health member `prober` has seen every one of `instances` pass its readiness probe."""
    for instance in instances:
        got = await client.get_instance(instance.id, namespace=namespace)
        if got.health.prober != prober or got.health.readiness.result != registry_pb2.PROBE_RESULT_SUCCESS:
            return False
    return True


async def _rolled(api: Any, namespace: str, name: str, n: int, version: str) -> bool:
    status = (await get(api, namespace, name)).status
    return (status.current_version, status.updated_replicas, status.ready_replicas, status.replicas) == (
        version, n, n, n)


async def test_scheduler_deploys_scales_and_rolls_a_typescript_agent(
    api, etcd: str, registry_client: RegistryClient, router: RouterServer, namespace: str, node: str
) -> None:
    """Deployed by the scheduler on the process runtime, probed by a real health member, routed to by the
    router, scaled 1 -> 3 and rolled to a new version under a steady load through the router: no call fails."""
    health = HealthServer(HealthConfig(insecure=True, port=0, etcd=etcd, member_ttl=timedelta(seconds=2),
                                       flush_interval=timedelta(seconds=1)))
    await health.start()
    try:
        await registry_client.register_agent(_typescript_agent(namespace))
        await api.CreateDeployment(P.CreateDeploymentRequest(deployment=deployment(  # the manifest's command:
            namespace, "ts", agent_id="ts-echo", replicas=1,  # node examples/typescript/dist/echo/agent.js
            strategy=P.DeploymentStrategy(max_surge="1", max_unavailable="0"))))
        [first] = await eventually(lambda: _ready(registry_client, namespace, "ts", 1))
        async with AgentClient(first.endpoint) as agent:
            described = await agent.describe()
            # the scheduler's SUTRADHAR_AGENT_ID / _AGENT_VERSION replace the class's identity
            assert (described.id, described.version) == ("ts-echo", "1.2.0")
            result = await agent.execute({"n": 1})
            assert result.success and result.metadata.instance_id == first.id
        # the scheduler gave it SUTRADHAR_METRICS_PORT, found its /metrics and labelled the instance
        metrics_port = first.labels[METRICS_PORT_LABEL]
        samples = await asyncio.to_thread(_samples, f"http://{first.endpoint.rsplit(':', 1)[0]}:{metrics_port}/metrics")
        assert {k: v for k, v in samples.items() if k[0] == "sutradhar_agent_tasks_total" and v} == {
            ("sutradhar_agent_tasks_total", (("agent", "ts-echo"), ("namespace", namespace), ("outcome", "success"),
                                             ("task_type", ""))): 1}
        await eventually(lambda: _probed(registry_client, namespace, [first], health.member_id))

        await api.ScaleDeployment(P.ScaleDeploymentRequest(namespace=namespace, name="ts", replicas=3))
        instances = await eventually(lambda: _ready(registry_client, namespace, "ts", 3))
        await eventually(lambda: _probed(registry_client, namespace, instances, health.member_id))
        pids = set()
        for instance in instances:
            async with AgentClient(instance.endpoint) as agent:
                result = await agent.execute({"n": 2})
                assert result.success and result.metadata.instance_id == instance.id
                pids.add(result.data["pid"])
        assert len(pids) == 3

        calls = 0
        errors: list[str] = []
        served: dict[str, int] = {}
        stop = asyncio.Event()

        async def steady(client: RouterClient) -> None:  # one call after the other: a bounded load
            nonlocal calls
            while not stop.is_set():
                calls += 1
                try:
                    result = await client.execute("ts-echo", {"i": calls}, namespace=namespace, timeout=5)
                except Exception as err:
                    errors.append(repr(err))
                    continue
                if not result.success:
                    errors.append(str(result.error))
                else:
                    served[result.metadata.agent_version] = served.get(result.metadata.agent_version, 0) + 1

        async with RouterClient(router.address) as client:
            await eventually(lambda: _routed_to(client, namespace, {i.id for i in instances}))
            workers = [asyncio.create_task(steady(client)) for _ in range(3)]
            try:
                await asyncio.sleep(0.3)
                await registry_client.update_agent(_typescript_agent(namespace, version="1.3.0"))
                await eventually(lambda: _rolled(api, namespace, "ts", 3, "1.3.0"), within=40)
                rolled = await eventually(lambda: _ready(registry_client, namespace, "ts", 3))
                assert [i.version for i in rolled] == ["1.3.0"] * 3
                await asyncio.sleep(0.3)
            finally:
                stop.set()
                await asyncio.gather(*workers)
        assert errors == [], errors[:5]
        assert calls > 50 and served.get("1.2.0", 0) > 0 and served.get("1.3.0", 0) > 0, (calls, served)
        await eventually(lambda: _probed(registry_client, namespace, rolled, health.member_id))
        await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="ts", wait=True))
        assert await ready_instances(registry_client, namespace, "ts") == []
    finally:
        await health.stop()


async def _routed_to(client: RouterClient, namespace: str, instance_ids: set[str]) -> bool:
    """Whether the router has routed calls to every one of `instance_ids` (round-robin, a few calls)."""
    seen = set()
    for _ in range(3 * len(instance_ids)):
        try:
            result = await client.execute("ts-echo", {}, namespace=namespace, strategy="round-robin", timeout=2)
        except Exception:  # the router learns of the instances through the registry's watch
            return False
        seen.add(result.metadata.instance_id)
    return seen >= instance_ids


async def _ready(client: RegistryClient, namespace: str, name: str, n: int) -> list[registry_pb2.Instance] | None:
    instances = await ready_instances(client, namespace, name)
    return instances if len(instances) == n else None


async def test_a_trace_crosses_the_python_router_into_a_typescript_agent(
    node: str, registry: RegistryServer, namespace: str, tmp_path: Path
) -> None:
    """A sampled call through a router process tracing by OTLP (to a real receiver) reaches a TypeScript agent
    tracing with its program's own provider (sdk/typescript/src/test/traced-agent.ts): the agent's SERVER span
    is in the caller's trace, a child of the router's attempt span, whose context it read from the call's
    ``traceparent`` metadata, and carries the caller's ``tracestate``, which it read from the same metadata."""
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    spans_file = tmp_path / "typescript-spans.jsonl"
    async with receiving() as (receiver, endpoint):
        with children() as started:
            started.append(router := start(
                "router", ["-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                           registry.address], tmp_path, env=exporting_to(endpoint)))
            env = {"SUTRADHAR_REGISTRY": registry.address, "SUTRADHAR_NAMESPACE": namespace,
                   "TRACED_SPANS_FILE": str(spans_file)}
            with await _spawn(node, env, TRACED_AGENT):
                async with RouterClient(router.address) as client:
                    await eventually(lambda: _routed(client, namespace, {}))  # the router knows the instance
                    result = await client.execute("echo", {"text": "traced"}, namespace=namespace, timeout=5,
                                                  context=TaskContext(traceparent=f"00-{trace_id}-{caller_span}-01",
                                                                      tracestate="congo=t61rcWkgMzE"))
                    assert result.success
            assert await asyncio.to_thread(router.stop) == 0, router.lines()  # it flushes its spans at stop
    routed = [s for s in receiver.of_trace(trace_id) if s.service == "router"]
    (server,) = [s for s in routed if s.kind == "SERVER"]
    assert server.parent_span_id == caller_span
    attempts = [s for s in routed if s.kind == "CLIENT"]
    lines = [json.loads(line) for line in spans_file.read_text().splitlines()]
    (agent_span,) = [s for s in lines if s["trace_id"] == trace_id]
    assert agent_span["name"] == "sutradhar.v1.AgentService/Execute" and agent_span["kind"] == 1  # SERVER
    assert agent_span["parent_span_id"] == attempts[-1].span_id
    assert agent_span["trace_state"] == "congo=t61rcWkgMzE" == attempts[-1].trace_state
    assert agent_span["attributes"]["sutradhar.namespace"] == namespace
    assert agent_span["attributes"]["sutradhar.task.success"] is True


#: tracestate header values both SDKs must read alike: kept (normalised) or dropped whole.
TRACESTATES = [
    "congo=t61rcWkgMzE", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", " congo=1 , rojo=2 ", "congo=1,,rojo=2",
    "congo=1,\trojo=2\t", "tenant@vendor=x", "1tenant@vendor=x", "k= v", "k=v w", "congo=1,bad",
    "congo=1,Rojo=2", "congo=1,congo=2", "a=b=c", "1abc=x", "k=", "=v", "k=\u00e9", "", ",", "k=a,",
    "k" * 256 + "=v", "k" * 257 + "=v", "k=" + "v" * 256, "k=" + "v" * 257, "t" * 241 + "@v=x", "t@" + "v" * 15 + "=x",
    ",".join(f"k{i}={'v' * 40}" for i in range(32)), ",".join(f"k{i}=v" for i in range(33)),
]


def test_both_sdks_read_a_tracestate_alike(node: str) -> None:
    """The trace state an agent carries on from a call's ``tracestate`` is the same in Python
    (`sutradhar._tracing.remote_parent`) and TypeScript (`remoteParent`), member by member."""
    from opentelemetry import trace

    from sutradhar._tracing import remote_parent

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    python = [trace.get_current_span(remote_parent(parent, header)).get_span_context().trace_state.to_header()
              for header in TRACESTATES]
    script = ("import { trace } from '@opentelemetry/api'; import { remoteParent } from './dist/tracing.js';"
              "const headers = JSON.parse(process.argv[1]);"
              f"console.log(JSON.stringify(headers.map((h) => trace.getSpanContext(remoteParent('{parent}', h))"
              "?.traceState?.serialize() ?? '')));")
    done = subprocess.run([node, "--input-type=module", "-e", script, json.dumps(TRACESTATES)], cwd=SDK,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    typescript = json.loads(done.stdout)
    assert dict(zip(TRACESTATES, typescript, strict=True)) == dict(zip(TRACESTATES, python, strict=True))
    assert python[1] == TRACESTATES[1] and python[9] == ""  # some kept, some dropped


async def test_a_typescript_tls_client_reaching_a_plaintext_service_is_told_so_in_the_python_words(
    node: str, tmp_path: Path
) -> None:
    """A TypeScript client over mutual TLS that reaches a plaintext (``--insecure``) service gets UNAVAILABLE
    beginning with the Python SDK's sentence, then grpc-js's own words."""
    files = Pki.create(tmp_path).issue(ADMIN)
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    script = ("import { Credentials, RouterClient } from './dist/index.js';"
              "const [address, certFile, keyFile, caFile] = process.argv.slice(1);"
              "const client = new RouterClient(address, "
              "{ credentials: Credentials.mtls({ certFile, keyFile, caFile }), timeoutMs: 5000 });"
              "try { await client.execute('echo', {}); console.log('{}'); }"
              "catch (err) { console.log(JSON.stringify({ code: err.codeName, message: err.message })); }"
              "finally { client.close(); }")
    try:
        done = await asyncio.to_thread(
            subprocess.run, [node, "--input-type=module", "-e", script, f"127.0.0.1:{port}", str(files.certificate),
                             str(files.private_key), str(files.trust_bundle)],
            cwd=SDK, capture_output=True, text=True, timeout=60, check=False)
    finally:
        await server.stop(None)
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout)
    assert failed["code"] == "UNAVAILABLE" and failed["message"].startswith(f"{PLAINTEXT_PEER} (No connection")
    assert "wrong version number" in failed["message"]


class _Describe(agent_pb2_grpc.AgentServiceServicer):
    async def Describe(self, request: Any, context: Any) -> Any:
        return agent_pb2.DescribeResponse(id="echo")


async def test_a_typescript_agent_client_holds_the_agent_to_the_identity_it_expects(node: str, tmp_path: Path) -> None:
    """`expected` (the Python SDK's `expected=`): a TypeScript AgentClient over mutual TLS reaches the agent replica
    that presents the identity it expects, with no warning from Node of an IP address as the TLS server name, and
    refuses one that presents another (UNAVAILABLE naming both); without `expected` any server of the CA will do."""
    pki = Pki.create(tmp_path)
    echo = SpiffeId.agent(TD, "prod", "echo")
    host = GrpcHost(service_names=["sutradhar.v1.AgentService"], tls=TlsSource(pki.issue(echo)))
    host.add_servicer(agent_pb2_grpc.add_AgentServiceServicer_to_server, _Describe())
    await host.start()
    files = pki.issue(ADMIN)
    script = ("import { AgentClient, Credentials } from './dist/index.js';"
              "const [address, certFile, keyFile, caFile, ...expectations] = process.argv.slice(1);"
              "const credentials = Credentials.mtls({ certFile, keyFile, caFile });"
              "const out = [];"
              "for (const expected of expectations) {"
              "  const client = new AgentClient(address, "
              "    { credentials, timeoutMs: 5000, ...(expected === '-' ? {} : { expected }) });"
              "  try { out.push({ id: (await client.describe()).id }); }"
              "  catch (err) { out.push({ code: err.codeName, message: err.message }); }"
              "  finally { client.close(); } }"
              "console.log(JSON.stringify(out));")
    other = SpiffeId.agent(TD, "prod", "other")

    def run(*expectations: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [node, "--input-type=module", "-e", script, host.address, str(files.certificate), str(files.private_key),
             str(files.trust_bundle), *expectations], cwd=SDK, capture_output=True, text=True, timeout=60, check=False)

    try:
        expecting = await asyncio.to_thread(run, str(echo), str(other))
        anyone = await asyncio.to_thread(run, "-")
    finally:
        await host.stop(timedelta(seconds=0))
    assert expecting.returncode == 0 and anyone.returncode == 0, expecting.stderr + anyone.stderr
    right, wrong = json.loads(expecting.stdout)
    assert right == {"id": "echo"} and json.loads(anyone.stdout) == [{"id": "echo"}]
    assert wrong["code"] == "UNAVAILABLE" and f"the server presented {echo}, not {other}" in wrong["message"], wrong
    # the identity's DNS name is the TLS server name, not the address's IP (which Node warns of, DEP0123)
    assert "Warning" not in expecting.stderr, expecting.stderr


async def test_a_typescript_client_whose_connection_a_secured_service_closes_is_told_why_in_the_python_words(
    node: str, tmp_path: Path
) -> None:
    """A Python mutual-TLS service closes the connection of a TypeScript client presenting nothing (grpc-js says
    only "Failed to connect"), a token alone, or another CA's certificate: UNAVAILABLE beginning with the Python SDK's
    sentence for what the client presented."""
    pki = Pki.create(tmp_path)
    host = GrpcHost(service_names=["sutradhar.v1.RouterService"], tls=TlsSource(pki.issue(service("router"))))
    host.add_servicer(router_pb2_grpc.add_RouterServiceServicer_to_server, router_pb2_grpc.RouterServiceServicer())
    await host.start()
    foreign = Pki.foreign(tmp_path).issue(ADMIN, trust_bundle=pki.ca.bundle_pem())
    script = ("import { Credentials, RouterClient } from './dist/index.js';"
              "const [address, certFile, keyFile, caFile] = process.argv.slice(1);"
              "const out = {};"
              "for (const [kind, credentials] of [['nothing', Credentials.insecure()],"
              "    ['a token', Credentials.token('a-token', caFile)],"
              "    [\"another CA's certificate\", Credentials.mtls({ certFile, keyFile, caFile })]]) {"
              "  const client = new RouterClient(address, { credentials, timeoutMs: 5000 });"
              "  try { await client.execute('echo', {}); out[kind] = null; }"
              "  catch (err) { out[kind] = { code: err.codeName, message: err.message }; }"
              "  finally { client.close(); } }"
              "console.log(JSON.stringify(out));")
    try:
        done = await asyncio.to_thread(
            subprocess.run, [node, "--input-type=module", "-e", script, host.address, str(foreign.certificate),
                             str(foreign.private_key), str(foreign.trust_bundle)],
            cwd=SDK, capture_output=True, text=True, timeout=60, check=False)
    finally:
        await host.stop(timedelta(seconds=0))
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout)
    expected = {"nothing": TLS_SERVICE, "a token": CERTIFICATE_REFUSED, "another CA's certificate": CERTIFICATE_REFUSED}
    for kind, first in expected.items():
        assert failed[kind]["code"] == "UNAVAILABLE", (kind, failed[kind])
        assert failed[kind]["message"].startswith(f"{first} (No connection established"), (kind, failed[kind])
        assert "a-token" not in failed[kind]["message"]


async def test_typescript_router_client_calls_a_python_agent(
    node: str, registry: RegistryServer, router: RouterServer, namespace: str
) -> None:
    async with (
        AgentServer(EchoAgent(), insecure=True, registry=registry.address, namespace=namespace,
                    ttl=timedelta(seconds=2)) as agent,
        RouterClient(router.address) as client,
    ):
        await eventually(lambda: _routed(client, namespace, 1))  # the router knows the instance
        out = await asyncio.to_thread(_route_script, node, router.address, namespace)
    ok = out["ok"]
    assert ok["success"] is True and ok["error"] is None
    assert ok["data"]["echo"] == {"text": "from typescript", "n": 42} and ok["data"]["task_type"] == "say"
    assert ok["metadata"]["instanceId"] == agent.instance_id and ok["metadata"]["attempts"] == 1
    assert out["failed"]["success"] is False and out["failed"]["error"]["code"] == "NOPE"
    assert [e["partial"] for e in out["events"] if "partial" in e] == ["abc", "def"]
    assert out["events"][-1]["result"]["success"] is True and len(out["events"]) == 5
    assert out["missing"]["errorName"] in ("Unavailable", "FailedPrecondition", "NotFound"), out["missing"]


async def test_typescript_agent_and_client_over_mutual_tls(node: str, secure_etcd: SecureEtcd, tmp_path: Path,
                                                           unique: str) -> None:
    """The agent serves mTLS from SUTRADHAR_TLS_* and takes tasks from the router only; it registers with its
    own certificate; a TypeScript RouterClient presents a user's certificate to the router."""
    async with secure_mesh(secure_etcd, tmp_path, scheduler=False) as mesh:
        async with mesh.registry_client() as admin:  # defining what code runs is an admin's
            await admin.register_agent(registry_pb2.Agent(
                id="echo", namespace=unique, type="echo", version="1.0.0", runtime="process",
                config=to_struct({"command": ["node", ECHO], "workdir": str(ROOT)})))
        files = mesh.pki.issue(SpiffeId.agent(TD, unique, "echo", "echo-tls-1"))
        tls = {"SUTRADHAR_TLS_CERT_FILE": str(files.certificate), "SUTRADHAR_TLS_KEY_FILE": str(files.private_key),
               "SUTRADHAR_TLS_CA_FILE": str(files.trust_bundle)}
        env = {**tls, "SUTRADHAR_INSECURE": "", "SUTRADHAR_REGISTRY": mesh.registry.address,
               "SUTRADHAR_NAMESPACE": unique, "SUTRADHAR_TTL": "2s"}
        with await _spawn(node, env) as proc:
            async with mesh.registry_client() as admin:
                [instance] = await eventually(lambda: _instances(admin, unique, "echo"))
            assert instance.id == "echo-tls-1"  # the certificate's instance
            assert instance.identity == str(SpiffeId.agent(TD, unique, "echo", "echo-tls-1"))

            async with mesh.router_client() as router:
                routed = await eventually(lambda: _routed(router, unique, {"text": "over mtls"}))
            assert routed.metadata.instance_id == "echo-tls-1"

            registry = service("registry")  # a mesh service that does not call agents: refused without a review
            async with AgentClient(proc.address, tls=mesh.client_source(registry)) as direct:
                with pytest.raises(PermissionDenied) as denied:
                    await direct.execute({}, timeout=5)
                assert denied.value.message.startswith(f"{registry} may not call agent echo: agents take calls from")
                with pytest.raises(PermissionDenied):
                    await direct.describe(timeout=5)
            async with AgentClient(proc.address, credentials=Credentials()) as plaintext:
                with pytest.raises(Unavailable):
                    await plaintext.describe(timeout=3)

            user = mesh.pki.issue(ADMIN, label="ts-client")
            out = await asyncio.to_thread(_route_script, node, mesh.router.address, unique, {
                "SUTRADHAR_TLS_CERT_FILE": str(user.certificate), "SUTRADHAR_TLS_KEY_FILE": str(user.private_key),
                "SUTRADHAR_TLS_CA_FILE": str(user.trust_bundle)})
            assert out["ok"]["success"] is True and out["ok"]["metadata"]["instanceId"] == "echo-tls-1"
            assert out["failed"]["error"]["code"] == "NOPE"
            assert proc.stop() == 0
        # It registered over TLS to 127.0.0.1 naming the registry's DNS name as the TLS server name, as the
        # Python SDK does: Node warns (DEP0123) of an IP address there.
        assert not [line for line in proc.output if "Warning" in line], proc.output


async def test_python_direct_client_calls_a_typescript_agent_its_access_review_allows(
    node: str, secure_etcd: SecureEtcd, tmp_path: Path, unique: str
) -> None:
    """A DirectClient with a user's certificate and an `execute` binding calls the TypeScript agent itself, with no
    router hop: the agent asks the registry (RbacService/ReviewAccess, with its own certificate) and runs the task.
    A user without the binding gets PERMISSION_DENIED from the agent, naming who, what and where, as the router
    would answer."""
    async with secure_mesh(secure_etcd, tmp_path, scheduler=False) as mesh:
        async with mesh.registry_client() as admin:
            await admin.register_agent(registry_pb2.Agent(
                id="echo", namespace=unique, type="echo", version="1.0.0", runtime="process",
                config=to_struct({"command": ["node", ECHO], "workdir": str(ROOT)})))
        app, looker = SpiffeId.user(TD, unique, "app"), SpiffeId.user(TD, unique, "looker")
        await bind(mesh, unique, "app-view", "viewer", app)  # to watch the namespace
        await bind(mesh, unique, "app-run", "invoker", app)
        await bind(mesh, unique, "looker", "viewer", looker)  # watches, may not execute
        files = mesh.pki.issue(SpiffeId.agent(TD, unique, "echo", "echo-direct-1"))
        env = {"SUTRADHAR_TLS_CERT_FILE": str(files.certificate), "SUTRADHAR_TLS_KEY_FILE": str(files.private_key),
               "SUTRADHAR_TLS_CA_FILE": str(files.trust_bundle), "SUTRADHAR_INSECURE": "",
               "SUTRADHAR_REGISTRY": mesh.registry.address, "SUTRADHAR_NAMESPACE": unique, "SUTRADHAR_TTL": "2s"}
        with await _spawn(node, env) as proc:
            async def in_view(caller: DirectClient) -> bool:
                assert await caller.wait_synced(timeout=10), caller.stats().watch_error
                return any(b.instance_id == "echo-direct-1" for b in caller.view.backends.values())

            async with direct(mesh, app, unique) as caller:
                await eventually(lambda: in_view(caller), what="the TypeScript instance in the client's view")
                results = await asyncio.gather(*(caller.execute("echo", {"n": i}, namespace=unique, timeout=10)
                                                 for i in range(5)))
                assert [r.data["echo"] for r in results] == [{"n": i} for i in range(5)]
                assert all(r.success and r.metadata.instance_id == "echo-direct-1" for r in results)
                events = [e async for e in caller.execute_stream("echo", {"text": "abcdefgh"}, namespace=unique,
                                                                 timeout=10)]
                assert [e.data for e in events if isinstance(e, Partial)] == ["abcd", "efgh"]
                assert isinstance(events[-1], Result) and events[-1].success
                assert caller.stats().direct == 6 and caller.stats().fallbacks == {}

            async with direct(mesh, looker, unique) as refused:
                await eventually(lambda: in_view(refused), what="the TypeScript instance in the client's view")
                with pytest.raises(PermissionDenied) as denied:
                    await refused.execute("echo", {"n": 0}, namespace=unique, timeout=10)
                assert refused.stats().direct == 1 and refused.stats().fallbacks == {}  # the agent refused it
            message = str(denied.value)
            assert str(looker) in message and "execute agents 'echo'" in message and f"namespace {unique}" in message
            assert "(the access review agent echo asked the registry for this direct call;" in message
            assert proc.stop() == 0


#: Lifetime of the certificates the bootstrap tests' registry issues: short, so one renewal happens in seconds
#: (renewed at 70 % of a life that starts a quarter of it before issuance: about 3.8 s after issuance).
SHORT_CERT_LIFETIME = timedelta(seconds=6)


@contextlib.asynccontextmanager
async def _bootstrap_mesh(secure_etcd: SecureEtcd, tmp_path: Path, unique: str) -> AsyncIterator[SecureMesh]:
    """A secured mesh whose registry serves a bootstrap port and issues SHORT_CERT_LIFETIME certificates, with the
    TypeScript echo agent defined in namespace `unique` (by the admin: defining what code runs is an admin's)."""
    options = {"ca_dir": secure_etcd.pki.ca_dir, "bootstrap_port": 0, "workload_cert_lifetime": SHORT_CERT_LIFETIME}
    async with secure_mesh(secure_etcd, tmp_path, scheduler=False, tokens=True, registry_options=options) as mesh:
        async with mesh.registry_client() as admin:
            await admin.register_agent(registry_pb2.Agent(
                id="echo", namespace=unique, type="echo", version="1.0.0", runtime="process",
                config=to_struct({"command": ["node", ECHO], "workdir": str(ROOT)})))
        yield mesh


def _bootstrap_env(mesh: SecureMesh, tmp_path: Path, token: str, unique: str) -> dict[str, str]:
    """SUTRADHAR_* of an agent outside the scheduler holding only `token` (in a 0600 file) and the mesh CA."""
    token_file = tmp_path / "echo.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    ca_file = tmp_path / "mesh-ca.pem"
    ca_file.write_bytes(mesh.pki.ca.bundle_pem())
    assert mesh.registry.bootstrap_address is not None
    return {"SUTRADHAR_INSECURE": "", "SUTRADHAR_BOOTSTRAP": mesh.registry.bootstrap_address,
            "SUTRADHAR_BOOTSTRAP_TOKEN_FILE": str(token_file), "SUTRADHAR_TLS_CA_FILE": str(ca_file),
            "SUTRADHAR_REGISTRY": mesh.registry.address, "SUTRADHAR_NAMESPACE": unique,
            "SUTRADHAR_REGISTER_AGENT": "0", "SUTRADHAR_TTL": "2s", "SUTRADHAR_LOG_LEVEL": "INFO"}


async def test_typescript_agent_with_only_a_bootstrap_token_registers_serves_mtls_and_renews(
    node: str, secure_etcd: SecureEtcd, tmp_path: Path, unique: str
) -> None:
    """Outside the scheduler with a bootstrap token, the mesh CA and the registry's addresses only: the agent gets a
    certificate of its agent identity at the bootstrap port, registers with it, is routed to over mTLS, and renews
    the certificate before it expires (a new handshake after the first certificate's end still verifies)."""
    async with _bootstrap_mesh(secure_etcd, tmp_path, unique) as mesh:
        identity = SpiffeId.agent(TD, unique, "echo")
        token = mesh.mint(identity, unique, "agent")
        with await _spawn(node, _bootstrap_env(mesh, tmp_path, token, unique)) as proc:
            async with mesh.registry_client() as admin:
                [instance] = await eventually(lambda: _instances(admin, unique, "echo"))
            assert instance.identity == str(identity) and instance.id.startswith("echo-")
            async with mesh.router_client() as router:
                routed = await eventually(lambda: _routed(router, unique, {"text": "bootstrapped"}))
            assert routed.data["echo"] == {"text": "bootstrapped"} and routed.metadata.instance_id == instance.id
            # a direct caller is reviewed with the certificate in memory (role agent: reviews of itself only)
            app = SpiffeId.user(TD, unique, "app")
            await bind(mesh, unique, "app-view", "viewer", app)
            await bind(mesh, unique, "app-run", "invoker", app)
            async with direct(mesh, app, unique) as caller:
                assert await caller.wait_synced(timeout=10), caller.stats().watch_error
                reviewed = await caller.execute("echo", {"text": "direct"}, namespace=unique, timeout=10)
                assert reviewed.data["echo"] == {"text": "direct"} and caller.stats().fallbacks == {}

            [obtained] = [line for line in proc.output if f"obtained a certificate for {identity}" in line]
            first_end = datetime.fromisoformat(obtained.rsplit("valid until ", 1)[1])
            await eventually(lambda: any("renewed the certificate" in line for line in proc.output),
                             what=lambda: "\n".join(proc.output))
            await asyncio.sleep(max(0.0, (first_end - datetime.now(UTC)).total_seconds()) + 0.3)
            # a new connection, as the router: the agent presents a renewed certificate of its identity
            async with AgentClient(proc.address, tls=mesh.client_source(service("router")), expected=identity) as fresh:
                assert (await fresh.describe(timeout=5)).id == "echo"
            assert proc.stop() == 0
        assert [line for line in proc.output if "renewing the certificate" in line] == []  # over mTLS, at once
        assert token not in "\n".join(proc.output)


async def test_typescript_agent_with_a_bad_bootstrap_token_stops_saying_why(
    node: str, secure_etcd: SecureEtcd, tmp_path: Path, unique: str
) -> None:
    """An expired token, one for another agent, a bootstrap address that is not the registry's, or its mTLS port
    instead of its token port stops the agent before it serves (exit 2) with an error that names the bootstrap port
    or the agent and says what to do, never the token."""
    async with _bootstrap_mesh(secure_etcd, tmp_path, unique) as mesh:
        then = datetime.now(UTC) - timedelta(hours=3)
        issuer = TokenIssuer.for_mesh(IssuerKey.load(tmp_path / "token-issuer.pem"), TD, lambda: then)
        expired = issuer.mint(SpiffeId.agent(TD, unique, "echo"), unique, "agent", timedelta(hours=1)).token
        other = mesh.mint(SpiffeId.agent(TD, unique, "other"), unique, "agent")
        for token, says in (
            (expired, [f"agent echo: Unauthenticated: bootstrap port {mesh.registry.bootstrap_address}: ", "expired"]),
            (other, [f"agent echo: FailedPrecondition: agent echo: the bootstrap token is for agent 'other' "
                     f"(spiffe://{TD}/ns/{unique}/agent/other); use a token minted with "
                     "`sutradhar token create --agent echo`"]),
        ):
            env = {**os.environ, **_bootstrap_env(mesh, tmp_path, token, unique)}
            done = await asyncio.to_thread(subprocess.run, [node, ECHO], cwd=ROOT, capture_output=True, text=True,
                                           timeout=30, check=False, env=env)
            assert done.returncode == 2, done.stderr
            assert all(part in done.stderr for part in says), done.stderr
            assert token not in done.stderr
        # a good token goes to the registry only: a TLS port of the mesh CA that is not the registry's gets no call
        token = mesh.mint(SpiffeId.agent(TD, unique, "echo"), unique, "agent")
        env = {**os.environ, **_bootstrap_env(mesh, tmp_path, token, unique),
               "SUTRADHAR_BOOTSTRAP": str(mesh.router.token_address)}
        done = await asyncio.to_thread(subprocess.run, [node, ECHO], cwd=ROOT, capture_output=True, text=True,
                                       timeout=30, check=False, env=env)
        assert done.returncode == 2, done.stderr
        assert f"agent echo: Unavailable: bootstrap port {mesh.router.token_address}: " in done.stderr, done.stderr
        assert f"the server presented {service('router')}, not {service('registry')}" in done.stderr, done.stderr
        assert token not in done.stderr
        # the registry's mutual-TLS port instead of its token port: it closes the connection of a token alone
        env["SUTRADHAR_BOOTSTRAP"] = mesh.registry.address
        done = await asyncio.to_thread(subprocess.run, [node, ECHO], cwd=ROOT, capture_output=True, text=True,
                                       timeout=30, check=False, env=env)
        assert done.returncode == 2, done.stderr
        assert f"agent echo: Unavailable: bootstrap port {mesh.registry.address}: {CERTIFICATE_REFUSED} (" \
            in done.stderr, done.stderr
        assert token not in done.stderr


@pytest.fixture(scope="session")
def node_agent_image(docker_engine: Any, node: str) -> str:
    """The TypeScript agent image (services/scheduler/images.py), built once from the built SDK and examples."""
    from sutradhar._errors import FailedPrecondition
    from sutradhar.services.scheduler.images import build_node_agent_image

    docker_support.wait_image_prebuild()  # the Node base image, when the session began building it
    try:
        built = build_node_agent_image(client=docker_engine, progress=lambda line: print(f"[node agent image] {line}"))
    except FailedPrecondition as err:  # debootstrap needs root for the base image, once
        if os.environ.get("CI") == "true" or os.geteuid() == 0:
            raise
        pytest.skip(f"cannot build the TypeScript agent image: {err.message}")
    return built.tags[0]


@pytest.mark.docker
@pytest.mark.timeout(DOCKER_TEST_TIMEOUT)
async def test_scheduler_deploys_the_typescript_agent_on_the_container_runtime(
    node_agent_image: str, api, registry_client: RegistryClient, namespace: str
) -> None:
    """examples/manifests/ts-echo-container.yaml: the Node image built here (no registry pull), started by the
    container runtime with the SUTRADHAR_* variables of a Python container, ready and serving on loopback."""
    by_kind = {m.kind: m for m in load_manifests(ROOT / "examples" / "manifests" / "ts-echo-container.yaml")}
    agent = agent_from_manifest(by_kind["Agent"])
    assert agent.config["image"] == node_agent_image
    agent.namespace = namespace
    await registry_client.register_agent(agent)
    wanted, _ = deployment_from_manifest(by_kind["Deployment"])
    wanted.namespace = namespace
    await api.CreateDeployment(P.CreateDeploymentRequest(deployment=wanted))
    instances = await eventually(lambda: _ready(registry_client, namespace, "ts-echo-box", 2), within=60)
    assert len({i.endpoint for i in instances}) == 2
    for instance in instances:
        assert instance.endpoint.startswith("127.0.0.1:") and instance.runtime == "container"
        async with AgentClient(instance.endpoint) as client:
            described = await client.describe()
            assert (described.id, described.version) == ("ts-echo-box", "1.0.0")  # the scheduler's identity
            result = await client.execute({"hello": "box"}, task_type="say")
            assert result.success and result.data["echo"] == {"hello": "box"}
            assert result.metadata.instance_id == instance.id
            events = [e async for e in client.execute_stream({"text": "abcdef", "chunk": 3})]
            assert [e.data for e in events if isinstance(e, Partial)] == ["abc", "def"]
        # its /metrics inside the container (9464) is published on loopback and found by the scheduler's check
        samples = await asyncio.to_thread(_samples, f"http://127.0.0.1:{instance.labels[METRICS_PORT_LABEL]}/metrics")
        assert samples[("sutradhar_agent_tasks_total", (("agent", "ts-echo-box"), ("namespace", namespace),
                                                        ("outcome", "success"), ("task_type", "say")))] == 1
    # `sutradhar image list` shows the Node images as it does the Python ones: the agent and its base
    from sutradhar.services.scheduler.images import NODE_BASE_IMAGE, list_images

    listed = {tag for image in list_images() for tag in image.tags}
    assert {node_agent_image, NODE_BASE_IMAGE} <= listed, listed
    await api.DeleteDeployment(P.DeleteDeploymentRequest(namespace=namespace, name="ts-echo-box", wait=True))
    runtime = ContainerRuntime()
    try:
        assert await runtime.list(namespace) == []
    finally:
        await runtime.close()
    assert await ready_instances(registry_client, namespace, "ts-echo-box") == []
