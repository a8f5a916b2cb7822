"""An agent for the tracing tests that the router loads in-process
(``tests.integration.traced_agents:TracedStreamEchoAgent``): examples/traced_agent.py's
agent, whose stream also makes spans of its own, one held open across every ``yield``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace

from examples.traced_agent import TracedEchoAgent
from sutradhar import Task

tracer = trace.get_tracer(__name__)


class TracedStreamEchoAgent(TracedEchoAgent):
    """TracedEchoAgent whose `stream` is one ``echo stream`` span with an ``echo event`` span per event."""

    async def stream(self, task: Task) -> AsyncIterator[Any]:
        with tracer.start_as_current_span("echo stream"):
            async for event in super().stream(task):
                with tracer.start_as_current_span("echo event") as span:
                    span.set_attribute("echo.event", type(event).__name__)
                yield event
