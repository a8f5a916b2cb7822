"""Tracing on real processes: a registry, a router and an SDK agent export to a real OTLP
receiver in the test (the collector's TraceService on 127.0.0.1).

One routed call that is retried (its first attempt goes to a registered instance nobody
listens at) is one trace from the client to the agent: the router's SERVER span under the
client's span, two CLIENT attempt spans under it, the agent's SERVER span under the second,
the agent code's own span under that, and the agent's JSON log line of the task carries the
trace id and the agent's span id; every span carries the caller's ``tracestate``. A streamed
call is traced the same way. An unsampled call exports nothing yet still hands its trace id
to the agent. Control-plane RPCs get a SERVER span with their etcd calls under it (and the
caller's ``tracestate`` metadata), and their JSON log lines name it."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from pathlib import Path

import grpc
from obs_support import children, exporting_to, start, traced_echo_beside_a_dead_instance
from otlp_receiver import Receiver

from sutradhar import RouterClient, TaskContext
from sutradhar.v1 import registry_pb2, registry_pb2_grpc
from tests.support import eventually

CLIENT_SPAN = "00f067aa0ba902b7"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def _traceparent(sampled: bool) -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{CLIENT_SPAN}-{'01' if sampled else '00'}"


async def test_a_retried_routed_call_is_one_trace_from_client_to_agent_and_unsampled_calls_export_nothing(
        etcd: str, unique: str, tmp_path: Path) -> None:
    receiver = Receiver()
    endpoint = await receiver.start()
    env = exporting_to(endpoint)
    try:
        with children() as started:
            started.append(registry := start(
                "registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd,
                             "--log-format", "json", "--log-level", "DEBUG"], tmp_path, env=env))
            started.append(router := start(
                "router", ["-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                           registry.address], tmp_path, env=env))
            agent, dead = await traced_echo_beside_a_dead_instance(started, registry.address, unique, tmp_path, env)

            async with RouterClient(router.address) as client:
                async def both_seen() -> bool:
                    return len((await client.get_stats(namespace=unique)).instances) == 2

                await eventually(both_seen, within=10, what="the router sees both instances")
                # Round robin over the two: within a few calls one goes to the dead instance first.
                retried = None
                for _ in range(6):
                    trace_id, parent = _traceparent(sampled=True)
                    result = await client.execute("echo", {"crash": True}, namespace=unique,
                                                  context=TaskContext(traceparent=parent, tracestate=TRACESTATE),
                                                  timeout=timedelta(seconds=5))
                    if result.metadata.attempts == 2:
                        retried = trace_id
                        break
                assert retried is not None, "no call was retried"

                stream_id, stream_parent = _traceparent(sampled=True)
                events = [e async for e in client.execute_stream(
                    "echo", {"text": "abcdefgh"}, namespace=unique, context=TaskContext(traceparent=stream_parent),
                    timeout=timedelta(seconds=5))]
                assert events and events[-1].success

                unsampled_id, unsampled = _traceparent(sampled=False)
                quiet = await client.execute("echo", {"crash": True}, namespace=unique,
                                             context=TaskContext(traceparent=unsampled),
                                             timeout=timedelta(seconds=5))
                assert not quiet.success

                # A traced control-plane call, last: once its spans are in, every process has
                # flushed the batches holding the routed calls' spans.
                cp_id, cp_parent = _traceparent(sampled=True)
                async with grpc.aio.insecure_channel(registry.address) as channel:
                    await registry_pb2_grpc.RegistryServiceStub(channel).ListAgents(
                        registry_pb2.ListAgentsRequest(namespace=unique), timeout=5,
                        metadata=(("traceparent", cp_parent), ("tracestate", "cp=1")))

                spans = await receiver.wait_for(retried, 5)
                await receiver.wait_for(stream_id, 3)
                cp_spans = await receiver.wait_for(cp_id, 2)
            await asyncio.sleep(0.3)  # the unsampled call's spans, were there any, left with the first batch
            for child in reversed(started):  # in a thread: the receiver in this loop takes their last spans
                assert await asyncio.to_thread(child.stop) == 0, child.lines()
            agent_records = agent.records()
            registry_records = registry.records()
    finally:
        await receiver.stop()

    by_kind: dict[tuple[str, str], list] = {}
    for span in spans:
        by_kind.setdefault((span.service, span.kind), []).append(span)
    assert sorted(by_kind) == [("echo", "INTERNAL"), ("echo", "SERVER"), ("router", "CLIENT"),
                               ("router", "SERVER")], spans
    (routed,) = by_kind[("router", "SERVER")]
    assert routed.name == "sutradhar.v1.RouterService/Execute"
    assert routed.parent_span_id == CLIENT_SPAN
    assert routed.attributes["rpc.system.name"] == "grpc"
    assert routed.attributes["rpc.method"] == "sutradhar.v1.RouterService/Execute"
    assert routed.attributes["rpc.response.status_code"] == "OK"
    assert routed.attributes["server.address"] == "127.0.0.1"
    assert "sutradhar.retry" in routed.events

    attempts = sorted(by_kind[("router", "CLIENT")], key=lambda s: s.attributes["sutradhar.attempt"])
    assert [a.attributes["sutradhar.attempt"] for a in attempts] == [1, 2]
    assert all(a.parent_span_id == routed.span_id for a in attempts)
    assert all(a.name == "sutradhar.v1.AgentService/Execute" for a in attempts)
    first, second = attempts
    assert first.attributes["sutradhar.instance"] == dead
    assert first.attributes["rpc.response.status_code"] == "UNAVAILABLE"
    assert first.attributes["error.type"] == "UNAVAILABLE" and first.status_code == 2  # STATUS_CODE_ERROR
    assert second.attributes["sutradhar.instance"] == f"echo-{unique}"
    assert second.attributes["rpc.response.status_code"] == "OK"
    assert second.attributes["sutradhar.task.success"] is False  # the echo agent crashed on request
    assert second.attributes["sutradhar.breaker.state"] == "closed" and "server.port" in second.attributes

    (served,) = by_kind[("echo", "SERVER")]
    assert served.name == "sutradhar.v1.AgentService/Execute"
    assert served.parent_span_id == second.span_id
    assert served.attributes["sutradhar.instance"] == f"echo-{unique}"
    assert served.attributes["sutradhar.task.success"] is False
    (own,) = by_kind[("echo", "INTERNAL")]  # the agent code's span (examples/traced_agent.py)
    assert own.name == "echo work" and own.parent_span_id == served.span_id
    # The caller's tracestate is carried by every span of the trace: the router's from the task,
    # the agent's from the attempt's gRPC metadata (it follows the attempt's traceparent there).
    assert {s.trace_state for s in spans} == {TRACESTATE}

    streamed = receiver.of_trace(stream_id)  # all of them: the processes flushed their spans at stop
    stream_server = [s for s in streamed if s.service == "router" and s.kind == "SERVER"]
    assert [s.name for s in stream_server] == ["sutradhar.v1.RouterService/ExecuteStream"]
    stream_attempts = [s for s in streamed if s.service == "router" and s.kind == "CLIENT"]
    assert stream_attempts and all(a.parent_span_id == stream_server[0].span_id for a in stream_attempts)
    last = max(stream_attempts, key=lambda s: s.attributes["sutradhar.attempt"])
    (stream_served,) = [s for s in streamed if s.service == "echo" and s.kind == "SERVER"]
    assert stream_served.name == "sutradhar.v1.AgentService/ExecuteStream"
    assert stream_served.parent_span_id == last.span_id

    # No span of the unsampled call left any process, yet the agent saw its trace id.
    assert receiver.of_trace(unsampled_id) == []
    errors = [r for r in agent_records if r["level"] == "ERROR"]
    traced = [r for r in errors if r.get("trace_id") == retried]
    assert len(traced) == 1 and traced[0]["span_id"] == served.span_id, errors
    quiet_lines = [r for r in errors if r.get("trace_id") == unsampled_id]
    assert len(quiet_lines) == 1, errors

    # The control plane: a SERVER span of the RPC under the caller, its etcd read under it.
    (listed,) = [s for s in cp_spans if s.kind == "SERVER"]
    assert listed.service == "registry" and listed.name == "sutradhar.v1.RegistryService/ListAgents"
    assert listed.parent_span_id == CLIENT_SPAN and listed.attributes["rpc.response.status_code"] == "OK"
    assert {s.trace_state for s in cp_spans} == {"cp=1"}  # the caller's tracestate metadata
    etcd_calls = [s for s in cp_spans if s.kind == "CLIENT"]
    assert etcd_calls and all(s.parent_span_id == listed.span_id for s in etcd_calls)
    assert {s.attributes["db.system.name"] for s in etcd_calls} == {"etcd"}
    call_lines = [r for r in registry_records if r.get("method") == "/sutradhar.v1.RegistryService/ListAgents"
                  and r.get("trace_id") == cp_id]
    assert call_lines and all(r["span_id"] == listed.span_id for r in call_lines), registry_records

