"""A program that set up OpenTelemetry itself (no OTEL_* variables), as an application does, then
uses Sutradhar: run by test_tracing_app_provider.py as a child, since a process has one global
tracer provider. Its provider exports by OTLP to the receiver named on the command line, under
``service.name`` "shop". Prints one JSON line of what it did.

    python tests/integration/app_traced.py caller ENDPOINT REGISTRY NAMESPACE
        a DirectClient call under the program's "checkout" span, then `setup_tracing` and
        `_tracing.shutdown`, then a span "after shutdown" (the provider is still the program's)
    python tests/integration/app_traced.py agent ENDPOINT
        an SDK agent served in this process (TracedEchoAgent), called once with a sampled
        caller traceparent
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import sutradhar
from examples.traced_agent import TracedEchoAgent
from sutradhar import AgentClient, DirectClient, TaskContext, _tracing
from sutradhar.testing import run_agent


def install(endpoint: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


async def caller(endpoint: str, registry: str, namespace: str) -> dict[str, object]:
    provider = install(endpoint)
    tracer = trace.get_tracer("shop")
    async with DirectClient("127.0.0.1:1", registry=registry) as client:  # no router: every call is direct
        assert await client.wait_synced(timeout=10)
        for _ in range(100):
            if any(s.state == "SERVING" for s in client.stats(namespace=namespace).instances):
                break
            await asyncio.sleep(0.1)
        with tracer.start_as_current_span("checkout") as span:
            ctx = span.get_span_context()
            result = await client.execute("echo", {"text": "hi"}, namespace=namespace,
                                          timeout=timedelta(seconds=5))
        stats = client.stats()
    set_up = sutradhar.setup_tracing("ignored")
    kept = trace.get_tracer_provider() is provider and _tracing.active() is not None
    _tracing.shutdown()
    with tracer.start_as_current_span("after shutdown") as after:
        after_id = f"{after.get_span_context().trace_id:032x}"
    provider.shutdown()
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}", "success": result.success,
            "attempts": result.metadata.attempts, "routed": stats.routed, "setup_tracing": set_up,
            "provider_kept": kept, "after_shutdown": after_id}


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
    out = asyncio.run(caller(*rest) if mode == "caller" else agent(*rest))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
