"""`--log-format json` on real processes: a registry, a router and an SDK agent write
nothing but JSON lines to stderr, and a task's lines name its request, trace,
namespace, agent and instance."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import grpc
from obs_support import children, start

from sutradhar import RouterClient, SutradharError, TaskContext
from sutradhar.v1 import registry_pb2, registry_pb2_grpc
from tests.support import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_well_formed(records: list[dict[str, object]], service: str) -> None:
    assert records
    for record in records:
        assert RFC3339_MS.match(str(record["time"])), record
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), record
        assert record["service"] == service, record
        assert record["logger"] and isinstance(record["message"], str), record


async def test_a_service_writes_json_lines_naming_each_calls_method_namespace_and_trace(
        etcd: str, unique: str, tmp_path: Path) -> None:
    with children() as started:
        registry = start("registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd,
                                      "--log-format", "json", "--log-level", "DEBUG"], tmp_path)
        started.append(registry)
        async with grpc.aio.insecure_channel(registry.address) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            await stub.ListAgents(registry_pb2.ListAgentsRequest(namespace=unique), timeout=5,
                                  metadata=(("traceparent", TRACEPARENT),))
            missing = stub.GetAgent(registry_pb2.GetAgentRequest(namespace=unique, id="nobody"), timeout=5)
            try:
                await missing
            except grpc.aio.AioRpcError as err:
                assert err.code() is grpc.StatusCode.NOT_FOUND
        assert registry.stop() == 0
        records = registry.records()

    assert_well_formed(records, "registry")
    listening = next(r for r in records if "listening on" in str(r["message"]))
    assert listening["address"] == registry.address and listening["level"] == "INFO"
    calls = [r for r in records if r["logger"] == "sutradhar.services.calls"]
    listed = [r for r in calls if r.get("method") == "/sutradhar.v1.RegistryService/ListAgents"]
    assert listed, records
    assert listed[0]["namespace"] == unique and listed[0]["code"] == "OK"
    assert listed[0]["trace_id"] == TRACE_ID and listed[0]["span_id"] == SPAN_ID
    got = [r for r in calls if r.get("method") == "/sutradhar.v1.RegistryService/GetAgent"]
    assert got and got[0]["code"] == "NOT_FOUND" and got[0]["namespace"] == unique and "trace_id" not in got[0]


async def test_an_agent_behind_a_router_writes_json_lines_naming_the_tasks_request_and_agent(
        etcd: str, unique: str, tmp_path: Path) -> None:
    with children() as started:
        registry = start("registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd,
                                      "--log-format", "json"], tmp_path)
        started.append(registry)
        # The router reads its variable, the agent its own (SUTRADHAR_LOG_FORMAT has no service prefix).
        started.append(router := start(
            "router", ["-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry", registry.address],
            tmp_path, env={"SUTRADHAR_ROUTER_LOG_FORMAT": "json"}))
        started.append(agent := start(
            "agent", ["-m", "sutradhar.serve", "examples.echo_agent:EchoAgent", "--insecure", "--registry",
                      registry.address, "--namespace", unique, "--instance-id", f"echo-{unique}", "--log-level",
                      "INFO"], tmp_path, env={"SUTRADHAR_LOG_FORMAT": "json"}))

        async with RouterClient(router.address) as client:
            ok = await eventually(lambda: client.execute("echo", {"hello": 1}, namespace=unique,
                                                         timeout=timedelta(seconds=5)),
                                  within=10, ignoring=(SutradharError,))
            assert ok.success
            context = TaskContext(request_id=f"req-{unique}", traceparent=TRACEPARENT)
            crashed = await client.execute("echo", {"crash": True}, namespace=unique, task_id=f"task-{unique}",
                                           context=context, max_attempts=1, timeout=timedelta(seconds=5))
            assert not crashed.success
        await asyncio.sleep(0.2)  # let the agent's line reach its log file
        for child in reversed(started):
            assert child.stop() == 0, child.lines()
        records = {child.name: child.records() for child in started}

    assert_well_formed(records["registry"], "registry")
    assert_well_formed(records["router"], "router")
    assert_well_formed(records["agent"], "echo")
    failed = [r for r in records["agent"] if r["level"] == "ERROR"]
    assert len(failed) == 1, records["agent"]
    line = failed[0]
    assert line["request_id"] == f"req-{unique}" and line["task_id"] == f"task-{unique}"
    assert line["namespace"] == unique and line["agent"] == "echo" and line["instance"] == f"echo-{unique}"
    assert line["trace_id"] == TRACE_ID and line["span_id"] == SPAN_ID
    assert "RuntimeError: crashed on request" in str(line["exception"])
    assert "Traceback" in str(line["exception"])
    listening = next(r for r in records["agent"] if "listening on" in str(r["message"]))
    assert listening["address"] == agent.address and listening["instance"] == f"echo-{unique}"
