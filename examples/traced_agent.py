"""TracedEchoAgent: the echo agent with spans of its own, the way agent code traces its work.

With tracing on (``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317``, the ``tracing``
extra installed), each task runs inside the SDK's SERVER span, and the ``echo work`` span
started here is its child, in the caller's trace (docs/observability.md, "Spans in agent
code"). With tracing off the OpenTelemetry API hands out non-recording spans and the agent
runs the same.

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \\
        python -m sutradhar.serve examples.traced_agent:TracedEchoAgent --registry 127.0.0.1:50051
"""

from __future__ import annotations

import os
import sys
from typing import Any

if __package__ in (None, ""):  # `python examples/traced_agent.py` from anywhere
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from opentelemetry import trace

from examples.echo_agent import EchoAgent
from sutradhar import Task

tracer = trace.get_tracer(__name__)


class TracedEchoAgent(EchoAgent):
    """EchoAgent whose `execute` records its work as a span of its own."""

    async def execute(self, task: Task) -> Any:
        with tracer.start_as_current_span("echo work") as span:
            span.set_attribute("echo.task_type", task.type)
            return await super().execute(task)


if __name__ == "__main__":
    from sutradhar.serve import main

    sys.exit(main(["examples.traced_agent:TracedEchoAgent", *sys.argv[1:]]))
