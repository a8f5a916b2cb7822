"""The Agent contract as plain Python: `Agent`, `Task`, `Result` and friends.

An agent author subclasses `Agent`, sets its identity as class attributes and
implements `execute` (or `stream`, or both)::

    class Greeter(Agent):
        id = "greeter"
        type = "greeter"
        version = "1.0.0"

        async def execute(self, task: Task) -> Any:
            return {"greeting": f"hello {task.payload['name']}"}

How outcomes map onto the wire (`sutradhar.v1.Result`):

- return JSON-like data         -> success, data
- return a `Result`             -> exactly that result (metadata filled in)
- raise `TaskFailed(code, ...)` -> success = false, error = code/message
- raise anything else           -> success = false, error.code = "AGENT_ERROR"

Streaming (`stream`) yields `Progress`, `Partial` (or bare JSON-like values,
which are partial data) and at most one `Result`, which is final: the stream
ends there. When the generator ends without yielding a `Result`, the final
result is a success whose data is the list of partial values yielded, in
order. `TaskFailed` or any exception inside the stream ends it with a failed
final result, exactly as for `execute`. So a stream always ends with exactly
one result.

Implement either method; the other is derived: the default `stream` yields
the result of `execute`, and the default `execute` runs `stream` and returns
its final result.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sutradhar._errors import InvalidArgument
from sutradhar._names import is_dns_label
from sutradhar._semver import is_valid_version
from sutradhar._values import JSON

log = logging.getLogger(__name__)

#: The error code of a result produced from an unexpected exception.
AGENT_ERROR = "AGENT_ERROR"

@dataclass(frozen=True)
class TaskContext:
    """Who asked, on whose behalf, until when, and the trace a task belongs to."""

    session_id: str = ""
    """Conversation or session the task belongs to."""
    user_id: str = ""
    """End user on whose behalf the task runs."""
    request_id: str = ""
    """Request identifier used in logs end to end."""
    deadline: datetime | None = None
    """Absolute deadline (timezone-aware, UTC); None when the caller set none."""
    traceparent: str = ""
    """W3C trace context "traceparent" value."""
    tracestate: str = ""
    """W3C trace context "tracestate" value."""
    attributes: Mapping[str, str] = field(default_factory=dict)
    """Free-form string attributes."""

    def time_remaining(self, now: datetime | None = None) -> timedelta | None:
        """Time left until `deadline` (may be negative); None without a deadline."""
        if self.deadline is None:
            return None
        return self.deadline - (now or datetime.now(UTC))


@dataclass(frozen=True)
class Task:
    """One unit of work handed to `Agent.execute`."""

    id: str
    """Task identifier (the SDK generates one when the caller sent none)."""
    type: str = ""
    """Task type, e.g. "answer"; empty when the caller did not say."""
    payload: JSON = None
    """The input, a plain JSON-like Python value (dict, list, str, number, bool, None)."""
    context: TaskContext = field(default_factory=TaskContext)
    """Caller context: session, user, request id, deadline, trace."""


@dataclass(frozen=True)
class TaskError:
    """An application-level failure carried in a `Result`."""

    code: str
    """Stable machine-readable code, e.g. "INVALID_INPUT"."""
    message: str = ""
    """Human-readable explanation."""
    retryable: bool = False
    """True when the same task may succeed on another replica."""
    details: Mapping[str, JSON] | None = None
    """Extra structured detail."""


@dataclass(frozen=True)
class ResultMetadata:
    """Where and how a result was produced; the SDK fills it in."""

    latency: timedelta | None = None
    """Time the agent spent on the task."""
    agent_id: str = ""
    """Agent definition id that served the task."""
    agent_version: str = ""
    """Version of the agent that served the task."""
    instance_id: str = ""
    """Replica that served the task."""
    attempts: int = 0
    """Attempts the router made (0 when the task did not go through a router)."""
    task_id: str = ""
    """The task this result belongs to."""


@dataclass(frozen=True)
class Result:
    """The outcome of a task: success with data, or failure with an error."""

    success: bool
    """True when the agent completed the task."""
    data: JSON = None
    """The output when `success` is true."""
    error: TaskError | None = None
    """The failure when `success` is false."""
    metadata: ResultMetadata = field(default_factory=ResultMetadata)
    """Who produced the result and how long it took."""

    @classmethod
    def ok(cls, data: JSON = None) -> Result:
        """A successful result carrying `data`."""
        return cls(success=True, data=data)

    @classmethod
    def failure(
        cls,
        code: str,
        message: str = "",
        *,
        retryable: bool = False,
        details: Mapping[str, JSON] | None = None,
    ) -> Result:
        """A failed result with an application error."""
        return cls(success=False, error=TaskError(code, message, retryable, details))

    def unwrap(self) -> JSON:
        """The data of a successful result; raises `TaskFailed` for a failed one."""
        if self.success:
            return self.data
        err = self.error or TaskError("UNKNOWN", "the result failed without an error")
        raise TaskFailed(err.code, err.message, retryable=err.retryable, details=err.details)


@dataclass(frozen=True)
class Progress:
    """A progress report yielded by `Agent.stream`."""

    message: str = ""
    """Human-readable status line."""
    fraction: float = -1.0
    """Completion in [0, 1]; negative when unknown."""


@dataclass(frozen=True)
class Partial:
    """A partial piece of output yielded by `Agent.stream` (e.g. a token chunk).

    Agents may also yield the bare value; clients always receive `Partial`.
    """

    data: JSON
    """The piece of output."""


StreamEvent = Progress | Partial | Result
"""What a streamed task produces: progress, partial data, then one final Result."""


class TaskFailed(Exception):
    """Raise from `execute`/`stream` to fail a task with an application error."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        retryable: bool = False,
        details: Mapping[str, JSON] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.details = details

    def to_result(self) -> Result:
        """The failed `Result` this exception stands for."""
        return Result.failure(self.code, self.message, retryable=self.retryable, details=self.details)


class Agent:
    """Base class of Python agents. Subclass it, set the class attributes, and
    implement `execute` and/or `stream`.
    """

    id: ClassVar[str] = ""
    """Agent definition id (DNS-1123 label), e.g. "echo"."""
    type: ClassVar[str] = ""
    """Agent type, the routing key (DNS-1123 label)."""
    version: ClassVar[str] = "0.1.0"
    """Semantic version, e.g. "1.4.0"."""
    capabilities: ClassVar[Sequence[str]] = ()
    """Capabilities offered, e.g. ["answer", "hint"]."""
    description: ClassVar[str] = ""
    """Human description."""
    task_types: ClassVar[Sequence[str]] = ()
    """Task types understood; empty means any."""

    async def execute(self, task: Task) -> Any:
        """Run `task`; return JSON-like data or a `Result`, or raise `TaskFailed`.

        The default runs `stream` and returns its final result.
        """
        if not overrides(self, "stream"):
            raise NotImplementedError(f"{type(self).__name__} implements neither execute() nor stream()")
        final: Result | None = None
        async for event in stream_events(self, task):
            if isinstance(event, Result):
                final = event
        return final

    async def stream(self, task: Task) -> AsyncIterator[Any]:
        """Run `task` with streamed output: yield `Progress`, partial data and at
        most one final `Result` (see the module docstring). The default yields
        the result of `execute`.
        """
        out = await self.execute(task)
        yield out if isinstance(out, Result) else Result.ok(out)

    async def check_health(self) -> bool:
        """Report readiness; polled by the server and served through grpc.health.v1."""
        return True

    async def on_start(self) -> None:
        """Called once after the server has bound its port, before it reports SERVING."""

    async def on_stop(self) -> None:
        """Called once after the server has drained and stopped."""

    def custom_metrics(self) -> Mapping[str, float]:
        """Agent-specific numeric gauges served by the Metrics RPC."""
        return {}


def overrides(agent: Agent, method: str) -> bool:
    """True when `agent`'s class implements `method` itself rather than inheriting Agent's."""
    return getattr(type(agent), method) is not getattr(Agent, method)


def validate_agent(agent: Agent) -> None:
    """Raise InvalidArgument when the agent's identity is unusable or its
    execute/stream are not `async def` (coroutine / async generator)."""
    if not is_dns_label(agent.id):
        raise InvalidArgument(
            f"agent id {agent.id!r} is not a DNS-1123 label (lowercase letters, digits, '-')", field="id"
        )
    if not is_dns_label(agent.type):
        raise InvalidArgument(f"agent type {agent.type!r} is not a DNS-1123 label", field="type")
    if not is_valid_version(agent.version):
        raise InvalidArgument(f"agent version {agent.version!r} is not a semantic version", field="version")
    name = type(agent).__name__
    if not (overrides(agent, "execute") or overrides(agent, "stream")):
        raise InvalidArgument(f"{name} implements neither execute() nor stream()")
    # The server awaits execute() and iterates stream() with `async for`: a
    # plain `def` would fail every task (e.g. "object dict can't be used in
    # 'await' expression"), so refuse it before serving.
    if overrides(agent, "execute") and not inspect.iscoroutinefunction(agent.execute):
        raise InvalidArgument(
            f"{name}.execute must be a coroutine function: declare it with `async def execute(self, task)`",
            field="execute",
        )
    if overrides(agent, "stream") and not inspect.isasyncgenfunction(agent.stream):
        raise InvalidArgument(
            f"{name}.stream must be an async generator function: declare it with `async def stream(self, task)` "
            "and `yield` its events",
            field="stream",
        )


def crash_result(err: BaseException) -> Result:
    """The failed result that stands for an unexpected exception."""
    return Result.failure(AGENT_ERROR, f"{type(err).__name__}: {err}")


def as_result(out: Any) -> Result:
    """Turn what `execute` returned into a Result."""
    return out if isinstance(out, Result) else Result.ok(out)


async def run_execute(agent: Agent, task: Task) -> Result:
    """Call `agent.execute` and turn every outcome into a Result (never raises,
    except for cancellation)."""
    try:
        return as_result(await agent.execute(task))
    except TaskFailed as err:
        return err.to_result()
    except Exception as err:
        log.exception("agent %s failed on task %s", agent.id, task.id)
        return crash_result(err)


async def stream_events(agent: Agent, task: Task) -> AsyncGenerator[StreamEvent, None]:
    """Normalize `agent.stream(task)`: Progress and Partial events, then exactly
    one final Result (never raises, except for cancellation)."""
    partials: list[JSON] = []
    gen = agent.stream(task)
    try:
        async for item in gen:
            if isinstance(item, Result):
                yield item
                return
            if isinstance(item, Progress):
                yield item
                continue
            part = item if isinstance(item, Partial) else Partial(item)
            partials.append(part.data)
            yield part
    except TaskFailed as err:
        yield err.to_result()
        return
    except Exception as err:
        log.exception("agent %s failed streaming task %s", agent.id, task.id)
        yield crash_result(err)
        return
    finally:
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()
    yield Result.ok(partials)


def with_metadata(result: Result, metadata: ResultMetadata) -> Result:
    """`result` with unset metadata fields taken from `metadata`."""
    own = result.metadata
    merged = ResultMetadata(
        latency=own.latency if own.latency is not None else metadata.latency,
        agent_id=own.agent_id or metadata.agent_id,
        agent_version=own.agent_version or metadata.agent_version,
        instance_id=own.instance_id or metadata.instance_id,
        attempts=own.attempts or metadata.attempts,
        task_id=own.task_id or metadata.task_id,
    )
    return replace(result, metadata=merged)
