"""A program that set up OpenTelemetry itself (no OTEL_* variables), as an application does, then
uses Sutradhar: run by test_tracing_app_provider.py as a child, since a process has one global
tracer provider. Its provider exports by OTLP to the receiver named on the command line, under
``service.name`` "shop". Prints one JSON line of what it did.

    python tests/integration/app_traced.py caller ENDPOINT REGISTRY ROUTER AGENT NAMESPACE
        a DirectClient call under the program's span "checkout", an AgentClient call to the agent
        at AGENT under "to the agent", a RouterClient call through ROUTER under "through the
        router", then `setup_tracing` and `_tracing.shutdown`, then a span "after shutdown" (the
        provider is still the program's); each span's ids are printed under its name
    python tests/integration/app_traced.py late ENDPOINT REGISTRY AGENT NAMESPACE
        a DirectClient and an AgentClient made first, the program's provider installed after
        them: after `_tracing.LOOK_EVERY`, a DirectClient call under "late direct" and an
        AgentClient call under "late agent"
    python tests/integration/app_traced.py agent ENDPOINT
        an SDK agent served in this process (TracedEchoAgent), called once with a sampled
        caller traceparent
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import sys
from collections.abc import Iterator
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import sutradhar
from examples.traced_agent import TracedEchoAgent
from sutradhar import AgentClient, DirectClient, RouterClient, TaskContext, _tracing
from sutradhar.testing import run_agent


def install(endpoint: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


@contextlib.contextmanager
def _under(tracer: trace.Tracer, out: dict[str, object], name: str) -> Iterator[None]:
    """A root span of the program's, current in the block; its trace and span ids go in `out`."""
    with tracer.start_as_current_span(name) as span:
        ctx = span.get_span_context()
        out[name] = {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
        yield


async def _serving(client: DirectClient, namespace: str) -> None:
    """Wait for `client`'s view to be synced and to hold a serving instance of `namespace`."""
    assert await client.wait_synced(timeout=10)
    for _ in range(100):
        if any(s.state == "SERVING" for s in client.stats(namespace=namespace).instances):
            return
        await asyncio.sleep(0.1)


async def caller(endpoint: str, registry: str, router: str, agent: str, namespace: str) -> dict[str, object]:
    provider = install(endpoint)
    tracer = trace.get_tracer("shop")
    out: dict[str, object] = {}
    under = functools.partial(_under, tracer, out)

    async with DirectClient("127.0.0.1:1", registry=registry) as client:  # no router: every call is direct
        await _serving(client, namespace)
        with under("checkout"):
            result = await client.execute("echo", {"text": "hi"}, namespace=namespace,
                                          timeout=timedelta(seconds=5))
        out.update(success=result.success, attempts=result.metadata.attempts, routed=client.stats().routed)
    async with AgentClient(agent) as direct, RouterClient(router) as routed:
        with under("to the agent"):
            assert (await direct.execute({"text": "hi"}, task_type="echo")).success
        with under("through the router"):
            assert (await routed.execute("echo", {"text": "hi"}, namespace=namespace, max_attempts=3)).success
    out["setup_tracing"] = sutradhar.setup_tracing("ignored")
    out["provider_kept"] = trace.get_tracer_provider() is provider and _tracing.active() is not None
    _tracing.shutdown()
    with under("after shutdown"):
        pass
    provider.shutdown()
    return out


async def late(endpoint: str, registry: str, agent: str, namespace: str) -> dict[str, object]:
    out: dict[str, object] = {}
    async with DirectClient("127.0.0.1:1", registry=registry) as client, AgentClient(agent) as direct:
        await _serving(client, namespace)
        out["before"] = _tracing.active() is not None
        provider = install(endpoint)  # after the clients: taken at their next look
        await asyncio.sleep(_tracing.LOOK_EVERY + 0.2)
        tracer = trace.get_tracer("shop")
        with _under(tracer, out, "late direct"):
            result = await client.execute("echo", {"text": "hi"}, namespace=namespace,
                                          timeout=timedelta(seconds=5))
        with _under(tracer, out, "late agent"):
            assert (await direct.execute({"text": "hi"}, task_type="echo")).success
    out.update(success=result.success, attempts=result.metadata.attempts)
    provider.shutdown()
    return out


async def agent(endpoint: str) -> dict[str, object]:
    provider = install(endpoint)
    trace_id = secrets.token_hex(16)
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with run_agent(TracedEchoAgent()) as address, AgentClient(address) as client:
        result = await client.execute({"text": "hi"}, context=TaskContext(traceparent=parent))
    provider.shutdown()
    return {"trace_id": trace_id, "success": result.success}


def main(argv: list[str]) -> int:
    mode, rest = argv[0], argv[1:]
    programs = {"caller": caller, "late": late, "agent": agent}
    out = asyncio.run(programs[mode](*rest))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
