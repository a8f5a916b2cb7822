"""Sutradhar SDK: write agents, serve them, and call the mesh.

Write an agent::

    from sutradhar import Agent, Task, serve

    class Echo(Agent):
        id = type = "echo"
        version = "1.0.0"

        async def execute(self, task: Task) -> object:
            return {"echo": task.payload}

    serve(Echo())

Call the mesh with `RouterClient` (or `DirectClient`, which routes each call
itself), `RegistryClient`, `SchedulerClient`,
`HealthClient` or `AgentClient`; test an agent with
`sutradhar.testing.run_agent`; check any agent, in any language, with
`python -m sutradhar.conformance HOST:PORT`.
"""

from sutradhar._agent import (
    Agent,
    Partial,
    Progress,
    Result,
    ResultMetadata,
    Task,
    TaskContext,
    TaskError,
    TaskFailed,
)
from sutradhar._clients import AgentClient, HealthClient, RegistryClient, RouterClient, SchedulerClient
from sutradhar._direct import DirectClient, DirectStats
from sutradhar._errors import (
    AlreadyExists,
    Cancelled,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    SutradharError,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from sutradhar._serve import AgentServer, serve
from sutradhar._tracing import setup as setup_tracing
from sutradhar._version import __version__

__all__ = [
    "Agent",
    "AgentClient",
    "AgentServer",
    "AlreadyExists",
    "Cancelled",
    "Conflict",
    "DeadlineExceeded",
    "DirectClient",
    "DirectStats",
    "FailedPrecondition",
    "HealthClient",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "Partial",
    "PermissionDenied",
    "Progress",
    "RegistryClient",
    "ResourceExhausted",
    "Result",
    "ResultMetadata",
    "RouterClient",
    "SchedulerClient",
    "SutradharError",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "from_rpc_error",
    "serve",
    "setup_tracing",
]
