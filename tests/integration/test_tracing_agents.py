"""Trace context reaches HTTP and in-process agents, on real processes: a registry, a traced
router and an untraced one (both routing to the same agents), a real HTTP agent in the test
recording the headers it is sent, an in-process agent the routers load, and a real OTLP
receiver (the collector's TraceService on 127.0.0.1).

The HTTP agent gets the W3C ``traceparent`` header: the traced router's attempt span as its
parent when the call is sampled, the caller's own context unchanged when it is not or when the
router does not trace, and the caller's ``tracestate`` with it. An in-process agent's span and
the spans its code makes arrive under the attempt span, one trace from the client on, for a
unary call and a streamed one."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from pathlib import Path

from obs_support import children, exporting_to, start
from otlp_receiver import Receiver, Span
from test_router_routing import JsonServer

from sutradhar import RegistryClient, RouterClient, SutradharError, TaskContext
from sutradhar._values import to_struct
from sutradhar.v1 import registry_pb2
from tests.support import eventually

CLIENT_SPAN = "00f067aa0ba902b7"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def _traceparent(sampled: bool) -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{CLIENT_SPAN}-{'01' if sampled else '00'}"


async def _register(reg: RegistryClient, ns: str, agent_id: str, runtime: str, config: dict, endpoint: str) -> None:
    await reg.register_agent(registry_pb2.Agent(id=agent_id, namespace=ns, type=agent_id, version="1.0.0",
                                                runtime=runtime, config=to_struct(config)))
    await reg.register_instance(registry_pb2.Instance(
        id=f"{agent_id}-0", namespace=ns, agent_id=agent_id, endpoint=endpoint, runtime=runtime,
        state=registry_pb2.INSTANCE_STATE_SERVING), ttl=timedelta(seconds=60))


def _kinds(spans: list[Span]) -> dict[tuple[str, str, str], list[Span]]:
    out: dict[tuple[str, str, str], list[Span]] = {}
    for span in spans:
        out.setdefault((span.service, span.kind, span.name), []).append(span)
    return out


async def test_http_and_in_process_agents_get_the_trace_context(etcd: str, unique: str, tmp_path: Path) -> None:
    receiver = Receiver()
    endpoint = await receiver.start()
    env = exporting_to(endpoint)
    try:
        with children() as started, JsonServer() as web:
            started.append(registry := start(
                "registry", ["-m", "sutradhar.services.registry", "--insecure", "--port", "0", "--etcd", etcd],
                tmp_path))
            router_argv = ["-m", "sutradhar.services.router", "--insecure", "--port", "0", "--registry",
                           registry.address]
            started.append(traced := start("router", router_argv, tmp_path, env=env))
            started.append(plain := start("plain-router", router_argv, tmp_path, env={"OTEL_SDK_DISABLED": "true"}))
            async with RegistryClient(registry.address) as reg:
                await _register(reg, unique, "web", "http", {"urls": [web.url]}, web.url)
                await _register(reg, unique, "local", "in-process",
                                {"class": "tests.integration.traced_agents:TracedStreamEchoAgent"}, "in-process")

            async with RouterClient(traced.address) as client, RouterClient(plain.address) as untraced:
                for router in (client, untraced):
                    async def both_seen(router: RouterClient = router) -> bool:
                        return len((await router.get_stats(namespace=unique)).instances) == 2

                    await eventually(both_seen, within=10, ignoring=(SutradharError,),
                                     what="the router sees both instances")

                async def call(router: RouterClient, agent: str, traceparent: str) -> None:
                    result = await router.execute(agent, {"n": 1}, namespace=unique, timeout=timedelta(seconds=5),
                                                  context=TaskContext(traceparent=traceparent, tracestate=TRACESTATE))
                    assert result.success, result

                # (a) HTTP: sampled through the traced router, unsampled, then through the untraced one.
                http_id, http_parent = _traceparent(sampled=True)
                await call(client, "web", http_parent)
                sampled_headers = web.headers[-1]
                quiet_id, quiet_parent = _traceparent(sampled=False)
                await call(client, "web", quiet_parent)
                quiet_headers = web.headers[-1]
                plain_id, plain_parent = _traceparent(sampled=True)
                await call(untraced, "web", plain_parent)
                plain_headers = web.headers[-1]
                assert (await untraced.execute("web", 1, namespace=unique)).success
                bare_headers = web.headers[-1]

                # (b) in-process, unary and streamed, through the traced router.
                local_id, local_parent = _traceparent(sampled=True)
                await call(client, "local", local_parent)
                stream_id, stream_parent = _traceparent(sampled=True)
                events = [e async for e in client.execute_stream(
                    "local", {"text": "abcdefgh"}, namespace=unique, context=TaskContext(traceparent=stream_parent),
                    timeout=timedelta(seconds=5))]
                assert events and events[-1].success

                http_spans = await receiver.wait_for(http_id, 2)
                local_spans = await receiver.wait_for(local_id, 4)
                stream_spans = await receiver.wait_for(stream_id, 9)  # 4 + the agent's 5 events
            for child in reversed(started):  # in a thread: the receiver in this loop takes their last spans
                assert await asyncio.to_thread(child.stop) == 0, child.lines()
    finally:
        await receiver.stop()

    # (a) The attempt's context, the caller's trace id, the caller's tracestate.
    (attempt,) = [s for s in http_spans if s.kind == "CLIENT"]
    assert attempt.attributes["sutradhar.instance"] == "web-0"
    assert sampled_headers["traceparent"] == f"00-{http_id}-{attempt.span_id}-01"
    assert sampled_headers["tracestate"] == TRACESTATE
    assert quiet_headers["traceparent"] == quiet_parent and quiet_headers["tracestate"] == TRACESTATE
    assert receiver.of_trace(quiet_id) == []
    assert plain_headers["traceparent"] == plain_parent and plain_headers["tracestate"] == TRACESTATE
    assert receiver.of_trace(plain_id) == []  # the untraced router made no span
    assert bare_headers["traceparent"] is None and bare_headers["tracestate"] is None

    # (b) In-process: the agent's span under the attempt, the agent code's under it, one trace.
    kinds = _kinds(local_spans)
    (routed,) = kinds[("router", "SERVER", "sutradhar.v1.RouterService/Execute")]
    (local_attempt,) = kinds[("router", "CLIENT", "sutradhar.v1.AgentService/Execute")]
    (served,) = kinds[("router", "SERVER", "sutradhar.v1.AgentService/Execute")]
    (own,) = kinds[("router", "INTERNAL", "echo work")]
    assert routed.parent_span_id == CLIENT_SPAN and local_attempt.parent_span_id == routed.span_id
    assert served.parent_span_id == local_attempt.span_id and own.parent_span_id == served.span_id
    assert served.attributes["sutradhar.agent"] == "local" and served.attributes["sutradhar.instance"] == "local-0"
    assert served.attributes["sutradhar.namespace"] == unique and served.attributes["sutradhar.task.success"] is True
    assert served.attributes["rpc.response.status_code"] == "OK"

    kinds = _kinds(stream_spans)
    (stream_attempt,) = kinds[("router", "CLIENT", "sutradhar.v1.AgentService/ExecuteStream")]
    (stream_served,) = kinds[("router", "SERVER", "sutradhar.v1.AgentService/ExecuteStream")]
    (whole,) = kinds[("router", "INTERNAL", "echo stream")]
    per_event = kinds[("router", "INTERNAL", "echo event")]
    assert stream_served.parent_span_id == stream_attempt.span_id
    assert stream_served.attributes["sutradhar.task.success"] is True
    assert stream_served.attributes["rpc.response.status_code"] == "OK"
    assert whole.parent_span_id == stream_served.span_id
    assert len(per_event) == 5 and all(s.parent_span_id == whole.span_id for s in per_event)
    assert {s.trace_id for s in stream_spans} == {stream_id}
