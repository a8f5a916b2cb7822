"""An agent written on the wire contract alone (no SDK Agent), with chosen flaws, for the conformance tests.

::

    python -m tests.flawed_agent [--flaw NAME ...]     prints "flawed agent listening on 127.0.0.1:PORT"

Without a flaw it keeps the contract the way an agent in another language would:
it echoes the payload, honours ``{"sleep": S}`` (until the call ends) and fails
with a failed Result on ``{"fail": "CODE"}``, streams progress and partials then
one result, and on SIGTERM reports NOT_SERVING, refuses new tasks with
UNAVAILABLE, finishes its in-flight tasks and stops. Each flaw breaks one rule
(`FLAWS`), so a test can check that the suite fails the right rows and only those.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import grpc

from sutradhar._hosting import GrpcHost, install_signal_handlers
from sutradhar._values import from_value, to_duration, to_value
from sutradhar.v1 import agent_pb2, agent_pb2_grpc

AGENT_SERVICE = "sutradhar.v1.AgentService"

FLAWS = {
    "two-results": "ExecuteStream sends a second final result",
    "event-after-result": "ExecuteStream sends a progress event after the final result",
    "ignores-deadline": "Execute keeps working after the caller's deadline or cancel",
    "failure-as-status": "an application failure ends the call with INTERNAL instead of a failed Result",
    "no-task-id": "result metadata does not echo the task id",
    "one-at-a-time": "tasks run one after another, never at once",
    "bad-version": "Describe's version is not a semantic version",
    "stops-at-once": "SIGTERM closes the port at once, without NOT_SERVING or finishing in-flight tasks",
    "works-while-draining": "after SIGTERM new tasks are still taken",
}


class FlawedAgent(agent_pb2_grpc.AgentServiceServicer):
    """AgentService by hand, breaking the rules named in `flaws`."""

    def __init__(self, flaws: Sequence[str]) -> None:
        self.flaws = frozenset(flaws)
        self.started = time.monotonic()
        self.requests = 0
        self.errors = 0
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.one_at_a_time = asyncio.Lock()
        self.draining = False

    async def Describe(self, request: agent_pb2.DescribeRequest, context: Any) -> agent_pb2.DescribeResponse:
        version = "one" if "bad-version" in self.flaws else "0.1.0"
        return agent_pb2.DescribeResponse(id="flawed", type="echo", version=version, capabilities=["echo"],
                                          streaming=True)

    async def _work(self, task: agent_pb2.Task) -> agent_pb2.Result:
        """Run one task: sleep if asked, then echo or fail; counted in the metrics."""
        self.requests += 1
        self.in_flight += 1
        self.idle.clear()
        started = time.monotonic()
        try:
            payload = from_value(task.payload) if task.HasField("payload") else None
            options = payload if isinstance(payload, dict) else {}
            sleep = options.get("sleep")
            if isinstance(sleep, int | float) and sleep > 0:
                await asyncio.sleep(float(sleep))
            meta = agent_pb2.ResultMetadata(agent_id="flawed", agent_version="0.1.0", instance_id="flawed-0",
                                            task_id="" if "no-task-id" in self.flaws else task.id,
                                            latency=to_duration(timedelta(seconds=time.monotonic() - started)))
            if options.get("fail"):
                self.errors += 1
                return agent_pb2.Result(success=False, metadata=meta,
                                        error=agent_pb2.TaskError(code=str(options["fail"]), message="asked to"))
            return agent_pb2.Result(success=True, data=to_value({"echo": payload}), metadata=meta)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def _run(self, task: agent_pb2.Task, context: Any) -> agent_pb2.Result:
        if self.draining and "works-while-draining" not in self.flaws:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "draining; send the task to another instance")
        if "one-at-a-time" in self.flaws:
            async with self.one_at_a_time:
                return await self._work(task)
        if "ignores-deadline" in self.flaws:
            # The work goes on when the call is cancelled (deadline or client cancel).
            return await asyncio.shield(asyncio.ensure_future(self._work(task)))
        return await self._work(task)

    async def Execute(self, request: agent_pb2.ExecuteRequest, context: Any) -> agent_pb2.ExecuteResponse:
        result = await self._run(request.task, context)
        if not result.success and "failure-as-status" in self.flaws:
            await context.abort(grpc.StatusCode.INTERNAL, f"task failed: {result.error.code}")
        return agent_pb2.ExecuteResponse(result=result)

    async def ExecuteStream(
        self, request: agent_pb2.ExecuteStreamRequest, context: Any
    ) -> AsyncIterator[agent_pb2.ExecuteStreamResponse]:
        yield agent_pb2.ExecuteStreamResponse(progress=agent_pb2.Progress(message="started", fraction=0.0))
        yield agent_pb2.ExecuteStreamResponse(partial=to_value("part"))
        result = await self._run(request.task, context)
        yield agent_pb2.ExecuteStreamResponse(result=result)
        if "two-results" in self.flaws:
            yield agent_pb2.ExecuteStreamResponse(result=result)
        if "event-after-result" in self.flaws:
            yield agent_pb2.ExecuteStreamResponse(progress=agent_pb2.Progress(message="late", fraction=1.0))

    async def Metrics(self, request: agent_pb2.MetricsRequest, context: Any) -> agent_pb2.MetricsResponse:
        return agent_pb2.MetricsResponse(requests_total=self.requests, errors_total=self.errors,
                                         in_flight=self.in_flight,
                                         uptime=to_duration(timedelta(seconds=time.monotonic() - self.started)))


async def serve(flaws: Sequence[str]) -> None:
    """Serve until SIGTERM, then drain (unless the stops-at-once flaw)."""
    agent = FlawedAgent(flaws)
    host = GrpcHost(service_names=[AGENT_SERVICE])
    host.add_servicer(agent_pb2_grpc.add_AgentServiceServicer_to_server, agent)
    await host.start()
    await host.set_serving()
    print(f"flawed agent listening on {host.address}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await stop.wait()
    if "stops-at-once" in agent.flaws:
        await host.server.stop(0)
        return
    agent.draining = True
    await host.set_serving(False)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(agent.idle.wait(), 10)
    await host.stop(timedelta(seconds=0.2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.flawed_agent")
    parser.add_argument("--flaw", action="append", choices=sorted(FLAWS), default=[])
    args = parser.parse_args(argv)
    asyncio.run(serve(args.flaw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
