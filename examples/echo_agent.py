"""EchoAgent: the example agent, used by the demo, the tests and benchmarks.

Serve it with ``python -m sutradhar.serve examples.echo_agent:EchoAgent`` or
``python examples/echo_agent.py [--port N] [--registry HOST:PORT]``.

The payload may carry options (anything else is simply echoed back):

- ``{"sleep": 1.5}``      wait that many seconds first (honours deadlines)
- ``{"fail": "CODE"}``    fail with TaskFailed(CODE) (``"retryable": true`` too)
- ``{"crash": true}``     raise an unexpected exception (-> AGENT_ERROR)
- ``{"text": "..."}``     text that `stream` splits into chunks of ``"chunk"`` characters
  (default 4), one Progress and one partial per chunk, ``"delay"`` seconds apart.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

if __package__ in (None, ""):  # `python examples/echo_agent.py` from anywhere
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sutradhar import Agent, Partial, Progress, Result, Task, TaskFailed

_PID = os.getpid()


def _options(task: Task) -> dict[str, Any]:
    return task.payload if isinstance(task.payload, dict) else {}


async def _apply(options: dict[str, Any]) -> None:
    """Honour the sleep / fail / crash options."""
    sleep = options.get("sleep")
    if isinstance(sleep, int | float) and sleep > 0:
        await asyncio.sleep(float(sleep))
    fail = options.get("fail")
    if fail:
        raise TaskFailed(str(fail), "failed on request", retryable=bool(options.get("retryable", False)))
    if options.get("crash"):
        raise RuntimeError("crashed on request")


class EchoAgent(Agent):
    """Echoes its payload back; see the module docstring for test options."""

    id = "echo"
    type = "echo"
    version = "1.0.0"
    capabilities = ("echo", "stream")
    description = "Echoes the payload; options sleep/fail/crash for tests; streams text in chunks."

    async def execute(self, task: Task) -> Any:
        await _apply(_options(task))
        return {"echo": task.payload, "task_type": task.type, "pid": _PID}

    async def stream(self, task: Task) -> AsyncIterator[Any]:
        options = _options(task)
        await _apply(options)
        text = options.get("text")
        if not isinstance(text, str):
            text = "" if task.payload is None else str(task.payload)
        chunk = options.get("chunk", 4)  # JSON numbers arrive as floats
        size = int(chunk) if isinstance(chunk, int | float) and chunk >= 1 else 4
        delay = options.get("delay", 0)
        delay = float(delay) if isinstance(delay, int | float) and delay > 0 else 0.0
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        for n, chunk in enumerate(chunks, start=1):
            if delay:
                await asyncio.sleep(delay)
            yield Progress(f"chunk {n}/{len(chunks)}", n / len(chunks))
            yield Partial(chunk)
        yield Result.ok({"echo": task.payload, "chunks": len(chunks), "pid": _PID})


if __name__ == "__main__":
    from sutradhar.serve import main

    sys.exit(main(["examples.echo_agent:EchoAgent", *sys.argv[1:]]))
