"""A real OTLP trace receiver for the tests: a grpc.aio server on 127.0.0.1 implementing the
collector's TraceService (`opentelemetry-proto`), keeping every span it is sent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

SPAN_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class Span:
    """One received span, flattened: ids in hex, attributes as Python values."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    """The W3C ``tracestate`` the span carries ("" when none)."""
    attributes: dict[str, Any]
    events: tuple[str, ...]
    status_code: int


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects the spans of every Export call."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.exports = 0
        self.server: grpc.aio.Server | None = None
        self.endpoint = ""

    async def Export(self, request: Any, context: Any) -> Any:
        self.exports += 1
        for resource_spans in request.resource_spans:
            service = next((_value(a.value) for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    self.spans.append(Span(
                        service=service, name=s.name, kind=SPAN_KINDS.get(s.kind, str(s.kind)),
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                        trace_state=s.trace_state,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        events=tuple(e.name for e in s.events), status_code=s.status.code,
                    ))
        return trace_service_pb2.ExportTraceServiceResponse()

    async def start(self) -> str:
        """Listen on a free loopback port; the ``http://host:port`` endpoint for OTEL_EXPORTER_OTLP_ENDPOINT."""
        self.server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self.endpoint

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)

    def of_trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def wait_for(self, trace_id: str, count: int, within: float = 10.0) -> list[Span]:
        """The spans of `trace_id` once at least `count` have arrived; AssertionError after `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            found = self.of_trace(trace_id)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.of_trace(trace_id))} of {count} spans of trace {trace_id} arrived "
                             f"in {within}s; all received: {self.spans}")
