"""Typed asyncio clients for the Registry (and its RbacService, TokenService, AuditService, QuotaService), the Router,
the Scheduler, the Health service and any Agent.

Each client owns one `grpc.aio` channel and is an async context manager::

    async with RouterClient("127.0.0.1:50052") as router:
        result = await router.execute("echo", {"text": "hi"}, timeout=timedelta(seconds=2))

One rule for return types: task values (`Task`, `Result`, `Progress`,
`Partial`) are the SDK's dataclasses; everything else (agent definitions,
instances, list responses, describe/metrics/stats) is the protobuf message
from `sutradhar.v1`. Options are keyword-only; durations are `timedelta`,
except that every `timeout` also takes a number of seconds (``timeout=5``).
Every failed call raises the matching `SutradharError` (see `from_rpc_error`).
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline of one call, passed to grpc, not an asyncio timeout
from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import grpc

from sutradhar import _tracing
from sutradhar._agent import Result, StreamEvent, Task, TaskContext
from sutradhar._convert import event_from_proto, result_from_proto, task_to_proto
from sutradhar._credentials import Credentials, default_credentials, open_channel
from sutradhar._errors import Internal, from_rpc_error
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES, reconnect_options
from sutradhar._identity import SpiffeId
from sutradhar._labels import validate_label_key, validate_label_value
from sutradhar._tls import TlsSource
from sutradhar._values import JSON, from_duration, to_duration
from sutradhar.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    health_pb2,
    health_pb2_grpc,
    quota_pb2,
    quota_pb2_grpc,
    ratelimit_pb2,
    ratelimit_pb2_grpc,
    rbac_pb2,
    rbac_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)

T = TypeVar("T")

DEFAULT_NAMESPACE = "default"


Timeout = timedelta | float | None
"""A call's timeout: a `timedelta`, a number of seconds (int or float), or None for none."""


def as_timedelta(timeout: Timeout) -> timedelta | None:
    """`timeout` as a timedelta (numbers are seconds); TypeError for anything else."""
    if timeout is None or isinstance(timeout, timedelta):
        return timeout
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return timedelta(seconds=timeout)
    raise TypeError(f"timeout must be a timedelta or seconds (int or float), not {type(timeout).__name__}")


def _seconds(timeout: Timeout) -> float | None:
    """`timeout` in seconds (0 at the least), None for none; TypeError as `as_timedelta`."""
    kind = type(timeout)
    if kind is float or kind is int:  # the common case, without building a timedelta
        return max(float(timeout), 0.0)  # type: ignore[arg-type]
    delta = as_timedelta(timeout)
    return None if delta is None else max(delta.total_seconds(), 0.0)


def label_selector(labels: str | Mapping[str, str] | None) -> str:
    """A label selector string from a selector string or an equality mapping.

    Mapping keys and values must be valid Kubernetes label keys and values:
    a value such as "gold,env=dev" would otherwise change the selector
    (``tier=gold,env=dev``), so it raises InvalidArgument naming the label.
    """
    if labels is None:
        return ""
    if isinstance(labels, str):
        return labels
    for key in sorted(labels):
        validate_label_key(key, field=f"labels[{key!r}]")
        validate_label_value(labels[key], field=f"labels[{key!r}]")
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def new_task_id() -> str:
    """A random task id: 32 hex digits, the same as ``uuid.uuid4().hex`` (version 4, RFC 4122
    variant), without building a UUID object (which costs more than the rest of a task's id)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def make_task(
    payload: JSON,
    *,
    task_type: str,
    task_id: str | None,
    context: TaskContext | None,
    timeout: Timeout,
) -> Task:
    """A Task with an id and, when `timeout` is given and the context has no
    deadline, the absolute deadline it implies; while tracing is on and the context has no
    ``traceparent``, the current span's ``traceparent`` and ``tracestate``
    (`sutradhar._tracing.current_trace_context`)."""
    timeout = as_timedelta(timeout)
    if timeout is None:
        ctx = context or TaskContext()
    elif context is None:
        ctx = TaskContext(deadline=datetime.now(UTC) + timeout)
    elif context.deadline is None:
        ctx = TaskContext(
            session_id=context.session_id,
            user_id=context.user_id,
            request_id=context.request_id,
            deadline=datetime.now(UTC) + timeout,
            traceparent=context.traceparent,
            tracestate=context.tracestate,
            attributes=context.attributes,
        )
    else:
        ctx = context
    if not ctx.traceparent:
        current, state = _tracing.current_trace_context()  # "" while tracing is off
        if current:  # the pair: a tracestate without a traceparent means nothing (W3C)
            ctx = dataclasses.replace(ctx, traceparent=current, tracestate=state)
    return Task(id=task_id or new_task_id(), type=task_type, payload=payload, context=ctx)


def _grpc_timeout(task: Task, timeout: Timeout) -> float | None:
    if timeout is not None:
        return _seconds(timeout)
    remaining = task.context.time_remaining()
    return _seconds(remaining)


#: How much later than the task's own deadline a call through the router times
#: out on the client: the task carries its deadline, so the router's
#: DEADLINE_EXCEEDED (naming the instance and the attempts) arrives before the
#: client's timer would end the call with a bare "Deadline Exceeded".
ROUTER_DEADLINE_MARGIN = timedelta(seconds=1)


def _router_grpc_timeout(task: Task, timeout: Timeout) -> float | None:
    base = _grpc_timeout(task, timeout)
    return None if base is None else base + ROUTER_DEADLINE_MARGIN.total_seconds()


class _Client:
    """One grpc.aio channel to `address`, closed on exit.

    What it presents: `tls` (a certificate; the channel is mutual TLS and, with
    `expected`, the handshake checks the server is that identity) and/or `token`
    (a bearer token sent on every call, never logged), or `credentials` holding
    those, or by default the current context of the credential file
    (`sutradhar._credentials`, written by `sutradhar up`), where the expected
    identity is the mesh service this client talks to. A token without a
    certificate goes to a service's token port over server-authenticated TLS; with
    nothing (an insecure mesh) the channel is plaintext. Each client names its
    generated stub class (`_STUB`), made over the channel as `_stub`, and the
    service it talks to (`_SERVICE`).
    """

    _STUB: ClassVar[type[Any] | None] = None
    _SERVICE: ClassVar[str | None] = None
    #: Whether the client runs tasks, whose context carries the caller's trace: made while the
    #: application has a tracer provider of its own, it turns tracing on with it (`_tracing.adopt`).
    _RUNS_TASKS: ClassVar[bool] = False

    def __init__(
        self,
        address: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        tls: TlsSource | None = None,
        expected: SpiffeId | None = None,
        token: str | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.address = address
        if tls is not None or token is not None:
            credentials = Credentials(tls=tls, token=token)
        elif credentials is None:
            credentials = default_credentials()
        if expected is None and self._SERVICE is not None and not credentials.is_insecure:
            expected = credentials.expected(self._SERVICE)
        self.credentials = credentials
        self.tls = credentials.tls
        self.expected = expected
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # A restarted service is reached again within a second, well
            # inside an instance's lease.
            *reconnect_options(connect_timeout=timedelta(milliseconds=200)),
        ]
        self._channel: grpc.aio.Channel = open_channel(address, credentials, options=options, expected=expected)
        if self._STUB is not None:
            self._stub = self._STUB(self._channel)
        if self._RUNS_TASKS:
            _tracing.adopt()

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel (for stubs this client does not wrap)."""
        return self._channel

    async def close(self) -> None:
        """Close the channel; calls in progress are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            response = await call
        except grpc.RpcError as err:
            raise from_rpc_error(err, tls=not self.credentials.is_insecure) from None
        if response is None:
            raise self._undecodable()
        return response

    async def _iterate(self, call: Any) -> AsyncIterator[Any]:
        try:
            async for item in call:
                if item is None:
                    raise self._undecodable()
                yield item
        except grpc.RpcError as err:
            raise from_rpc_error(err, tls=not self.credentials.is_insecure) from None
        finally:
            call.cancel()

    def _undecodable(self) -> Internal:
        """The error for an answer that does not decode as the method's response: INTERNAL, gRPC's
        code for a response that does not parse (grpc-js, grpc-go and grpc-java raise it themselves).
        grpc.aio logs the decoding error ("Exception deserializing message!") and hands back None
        instead."""
        service = self._STUB.__name__.removesuffix("Stub") if self._STUB is not None else "the service"
        return Internal(
            f"{self.address} answered a message that is not a valid response of sutradhar.v1.{service} "
            "(gRPC logged why it does not decode); is that address this service, and of a compatible version?"
        )


class AgentClient(_Client):
    """Talks to one agent replica directly (AgentService)."""

    _STUB = agent_pb2_grpc.AgentServiceStub
    _RUNS_TASKS = True
    _stub: agent_pb2_grpc.AgentServiceStub

    async def describe(self, *, timeout: Timeout = None) -> agent_pb2.DescribeResponse:
        """The agent's identity and capabilities."""
        return await self._call(self._stub.Describe(agent_pb2.DescribeRequest(), timeout=_seconds(timeout)))

    async def execute(
        self,
        payload: JSON = None,
        *,
        task_type: str = "",
        task_id: str | None = None,
        context: TaskContext | None = None,
        timeout: Timeout = None,
    ) -> Result:
        """Run one task; application failures come back as a failed Result."""
        task = make_task(payload, task_type=task_type, task_id=task_id, context=context, timeout=timeout)
        request = agent_pb2.ExecuteRequest()
        task_to_proto(task, request.task)
        response = await self._call(self._stub.Execute(request, timeout=_grpc_timeout(task, timeout)))
        return result_from_proto(response.result)

    async def execute_stream(
        self,
        payload: JSON = None,
        *,
        task_type: str = "",
        task_id: str | None = None,
        context: TaskContext | None = None,
        timeout: Timeout = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Run one task with streamed events: Progress, Partial, then one Result.
        Leaving the loop early cancels the task on the agent."""
        task = make_task(payload, task_type=task_type, task_id=task_id, context=context, timeout=timeout)
        request = agent_pb2.ExecuteStreamRequest()
        task_to_proto(task, request.task)
        call = self._stub.ExecuteStream(request, timeout=_grpc_timeout(task, timeout))
        async for msg in self._iterate(call):
            yield event_from_proto(msg)

    async def metrics(self, *, timeout: Timeout = None) -> agent_pb2.MetricsResponse:
        """The replica's counters."""
        return await self._call(self._stub.Metrics(agent_pb2.MetricsRequest(), timeout=_seconds(timeout)))


#: Distinct (selector, options) argument sets kept built for `RouterClient` calls; past it, the cache starts over.
ROUTE_CACHE_SIZE = 256
_ROUTES: dict[tuple[Any, ...], tuple[router_pb2.Selector, router_pb2.RouteOptions]] = {}


class RouterClient(_Client):
    """Routes tasks through a Sutradhar router (RouterService)."""

    _STUB = router_pb2_grpc.RouterServiceStub
    _SERVICE = "router"
    _RUNS_TASKS = True
    _stub: router_pb2_grpc.RouterServiceStub

    @staticmethod
    def _options(strategy: str, max_attempts: int, route_timeout: Timeout) -> router_pb2.RouteOptions:
        opts = router_pb2.RouteOptions(strategy=strategy, max_attempts=max_attempts)
        delta = as_timedelta(route_timeout)
        if delta is not None:
            opts.timeout.CopyFrom(to_duration(delta))
        return opts

    @classmethod
    def _route_of(
        cls,
        namespace: str,
        agent_type: str,
        version_range: str,
        capabilities: Sequence[str],
        labels: str | Mapping[str, str] | None,
        agent_id: str,
        strategy: str,
        max_attempts: int,
        route_timeout: Timeout,
    ) -> tuple[router_pb2.Selector, router_pb2.RouteOptions]:
        """The Selector and RouteOptions of a call, built once per distinct set of arguments
        (a caller sends the same few over and over) and kept in `_ROUTES` (bounded; the
        messages are copied into each request, never changed). Labels given as a mapping
        (not a key) build them anew; bad arguments raise what building them raises, and are
        never kept."""
        try:
            key = (namespace, agent_type, version_range, tuple(capabilities), labels, agent_id, strategy,
                   max_attempts, route_timeout)
            found = _ROUTES.get(key)
        except TypeError:  # unhashable: labels given as a mapping
            key, found = None, None
        if found is None:
            selector = router_pb2.Selector(
                namespace=namespace,
                agent_type=agent_type,
                version_range=version_range,
                capabilities=list(capabilities),
                label_selector=label_selector(labels),
                agent_id=agent_id,
            )
            found = (selector, cls._options(strategy, max_attempts, route_timeout))
            if key is not None:
                if len(_ROUTES) >= ROUTE_CACHE_SIZE:
                    _ROUTES.clear()
                _ROUTES[key] = found
        return found

    async def execute(
        self,
        agent_type: str,
        payload: JSON = None,
        *,
        task_type: str = "",
        namespace: str = "",
        version_range: str = "",
        capabilities: Sequence[str] = (),
        labels: str | Mapping[str, str] | None = None,
        agent_id: str = "",
        strategy: str = "",
        max_attempts: int = 0,
        task_id: str | None = None,
        context: TaskContext | None = None,
        timeout: Timeout = None,
    ) -> Result:
        """Route one task to an instance of `agent_type` and return its Result.

        `labels` is a label selector ("tier=gold,env!=dev") or a mapping of
        required label values. UNAVAILABLE (`Unavailable`) when no healthy
        instance matches; `FailedPrecondition` when a constraint excludes all.
        """
        task = make_task(payload, task_type=task_type, task_id=task_id, context=context, timeout=timeout)
        selector, options = self._route_of(
            namespace, agent_type, version_range, capabilities, labels, agent_id, strategy, max_attempts, timeout)
        return await self._send(task, selector, options, _router_grpc_timeout(task, timeout))

    async def execute_stream(
        self,
        agent_type: str,
        payload: JSON = None,
        *,
        task_type: str = "",
        namespace: str = "",
        version_range: str = "",
        capabilities: Sequence[str] = (),
        labels: str | Mapping[str, str] | None = None,
        agent_id: str = "",
        strategy: str = "",
        max_attempts: int = 0,
        task_id: str | None = None,
        context: TaskContext | None = None,
        timeout: Timeout = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Route one streamed task: yields Progress, Partial, then one Result.
        Leaving the loop early cancels the agent call. Options as for `execute`."""
        task = make_task(payload, task_type=task_type, task_id=task_id, context=context, timeout=timeout)
        selector, options = self._route_of(
            namespace, agent_type, version_range, capabilities, labels, agent_id, strategy, max_attempts, timeout)
        events = self._send_stream(task, selector, options, _router_grpc_timeout(task, timeout))
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _send(
        self, task: Task, selector: router_pb2.Selector, options: router_pb2.RouteOptions, grpc_timeout: float | None
    ) -> Result:
        """Send one task to the router with its selector and options; its Result (`DirectClient`
        routes it itself when it can)."""
        request = router_pb2.RouterServiceExecuteRequest(selector=selector, options=options)
        task_to_proto(task, request.task)
        response = await self._call(self._stub.Execute(request, timeout=grpc_timeout))
        return result_from_proto(response.result)

    async def _send_stream(
        self, task: Task, selector: router_pb2.Selector, options: router_pb2.RouteOptions, grpc_timeout: float | None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Send one streamed task to the router; its events (`DirectClient` routes it itself when it can)."""
        request = router_pb2.RouterServiceExecuteStreamRequest(selector=selector, options=options)
        task_to_proto(task, request.task)
        async for msg in self._iterate(self._stub.ExecuteStream(request, timeout=grpc_timeout)):
            yield event_from_proto(msg)

    async def get_stats(
        self, *, namespace: str = "", agent_type: str = "", timeout: Timeout = None
    ) -> router_pb2.GetStatsResponse:
        """The router's per-instance statistics."""
        return await self._call(
            self._stub.GetStats(
                router_pb2.GetStatsRequest(namespace=namespace, agent_type=agent_type), timeout=_seconds(timeout)
            )
        )


class RegistryClient(_Client):
    """Agent definitions and live instances (RegistryService)."""

    _STUB = registry_pb2_grpc.RegistryServiceStub
    _SERVICE = "registry"
    _stub: registry_pb2_grpc.RegistryServiceStub

    async def register_agent(
        self, agent: registry_pb2.Agent, *, timeout: Timeout = None
    ) -> registry_pb2.Agent:
        """Create an agent definition; `AlreadyExists` when the id is taken."""
        response = await self._call(
            self._stub.RegisterAgent(registry_pb2.RegisterAgentRequest(agent=agent), timeout=_seconds(timeout))
        )
        return response.agent

    async def update_agent(
        self, agent: registry_pb2.Agent, *, allow_missing: bool = False, timeout: Timeout = None
    ) -> registry_pb2.Agent:
        """Replace an agent definition (`Conflict` on a stale resource_version)."""
        response = await self._call(
            self._stub.UpdateAgent(
                registry_pb2.UpdateAgentRequest(agent=agent, allow_missing=allow_missing), timeout=_seconds(timeout)
            )
        )
        return response.agent

    async def get_agent(
        self, id: str, *, namespace: str = "", timeout: Timeout = None
    ) -> registry_pb2.Agent:
        """One agent definition; `NotFound` when missing."""
        response = await self._call(
            self._stub.GetAgent(registry_pb2.GetAgentRequest(namespace=namespace, id=id), timeout=_seconds(timeout))
        )
        return response.agent

    async def list_agents(
        self,
        *,
        namespace: str = "",
        type: str = "",
        capabilities: Sequence[str] = (),
        labels: str | Mapping[str, str] | None = None,
        version_range: str = "",
        runtime: str = "",
        timeout: Timeout = None,
    ) -> registry_pb2.ListAgentsResponse:
        """Agents matching every filter, with the revision to watch from."""
        request = registry_pb2.ListAgentsRequest(
            namespace=namespace,
            type=type,
            capabilities=list(capabilities),
            label_selector=label_selector(labels),
            version_range=version_range,
            runtime=runtime,
        )
        return await self._call(self._stub.ListAgents(request, timeout=_seconds(timeout)))

    async def deregister_agent(
        self, id: str, *, namespace: str = "", force: bool = False, timeout: Timeout = None
    ) -> registry_pb2.Agent:
        """Delete an agent definition (with its instances when `force`)."""
        response = await self._call(
            self._stub.DeregisterAgent(
                registry_pb2.DeregisterAgentRequest(namespace=namespace, id=id, force=force),
                timeout=_seconds(timeout),
            )
        )
        return response.agent

    async def register_instance(
        self,
        instance: registry_pb2.Instance,
        *,
        ttl: timedelta = timedelta(seconds=10),
        replace: bool = False,
        timeout: Timeout = None,
    ) -> registry_pb2.Instance:
        """Record a live replica under a new lease of `ttl`; keep it alive with
        `keep_alive_instance` within every TTL."""
        request = registry_pb2.RegisterInstanceRequest(instance=instance, ttl=to_duration(ttl), replace=replace)
        response = await self._call(self._stub.RegisterInstance(request, timeout=_seconds(timeout)))
        return response.instance

    async def keep_alive_instance(
        self, id: str, lease_id: int, *, namespace: str = "", timeout: Timeout = None
    ) -> timedelta:
        """Renew an instance's lease; returns the remaining TTL. `NotFound`
        when the lease lapsed (register again)."""
        response = await self._call(
            self._stub.KeepAliveInstance(
                registry_pb2.KeepAliveInstanceRequest(namespace=namespace, id=id, lease_id=lease_id),
                timeout=_seconds(timeout),
            )
        )
        return from_duration(response.ttl, timedelta(0)) or timedelta(0)

    async def update_instance_state(
        self,
        id: str,
        state: registry_pb2.InstanceState,
        *,
        namespace: str = "",
        timeout: Timeout = None,
    ) -> registry_pb2.Instance:
        """Change an instance's routable state (e.g. INSTANCE_STATE_DRAINING)."""
        response = await self._call(
            self._stub.UpdateInstanceState(
                registry_pb2.UpdateInstanceStateRequest(namespace=namespace, id=id, state=state),
                timeout=_seconds(timeout),
            )
        )
        return response.instance

    async def get_instance(
        self, id: str, *, namespace: str = "", timeout: Timeout = None
    ) -> registry_pb2.Instance:
        """One instance; `NotFound` when missing (or its lease lapsed)."""
        response = await self._call(
            self._stub.GetInstance(
                registry_pb2.GetInstanceRequest(namespace=namespace, id=id), timeout=_seconds(timeout)
            )
        )
        return response.instance

    async def list_instances(
        self,
        *,
        namespace: str = "",
        agent_id: str = "",
        state: registry_pb2.InstanceState = registry_pb2.INSTANCE_STATE_UNSPECIFIED,
        labels: str | Mapping[str, str] | None = None,
        timeout: Timeout = None,
    ) -> registry_pb2.ListInstancesResponse:
        """Instances matching every filter, with the revision read at."""
        request = registry_pb2.ListInstancesRequest(
            namespace=namespace, agent_id=agent_id, state=state, label_selector=label_selector(labels)
        )
        return await self._call(self._stub.ListInstances(request, timeout=_seconds(timeout)))

    async def deregister_instance(
        self, id: str, *, namespace: str = "", timeout: Timeout = None
    ) -> None:
        """Delete an instance and revoke its lease."""
        await self._call(
            self._stub.DeregisterInstance(
                registry_pb2.DeregisterInstanceRequest(namespace=namespace, id=id), timeout=_seconds(timeout)
            )
        )

    async def report_load(
        self, reporter_id: str, loads: Sequence[registry_pb2.InstanceLoad], *, namespace: str = "",
        timeout: Timeout = None,
    ) -> timedelta:
        """Record the load this caller observed of instances of `namespace` (what a
        `DirectClient` does every second while it sends calls); how long the records last
        without another report. `ResourceExhausted` when reported again within 500 ms."""
        response = await self._call(self._stub.ReportLoad(
            registry_pb2.ReportLoadRequest(namespace=namespace, reporter_id=reporter_id, loads=list(loads)),
            timeout=_seconds(timeout)))
        ttl: timedelta = response.ttl.ToTimedelta()
        return ttl

    async def watch(
        self,
        *,
        namespace: str = "",
        kinds: Sequence[registry_pb2.ResourceKind] = (),
        start_revision: int = 0,
        include_initial: bool = False,
    ) -> AsyncGenerator[registry_pb2.WatchResponse, None]:
        """Stream batches of changes; resume with `start_revision` = last
        seen revision + 1 (`OutOfRange` when compacted away)."""
        call = self._stub.Watch(
            registry_pb2.WatchRequest(
                namespace=namespace,
                kinds=list(kinds),
                start_revision=start_revision,
                include_initial=include_initial,
            )
        )
        async for response in self._iterate(call):
            yield response


class SchedulerClient(_Client):
    """Deployments, rollouts and replica logs (SchedulerService)."""

    _STUB = scheduler_pb2_grpc.SchedulerServiceStub
    _SERVICE = "scheduler"
    _stub: scheduler_pb2_grpc.SchedulerServiceStub

    async def create_deployment(
        self, deployment: scheduler_pb2.Deployment, *, timeout: Timeout = None
    ) -> scheduler_pb2.Deployment:
        """Create a deployment; `AlreadyExists` when the name is taken."""
        response = await self._call(
            self._stub.CreateDeployment(
                scheduler_pb2.CreateDeploymentRequest(deployment=deployment), timeout=_seconds(timeout)
            )
        )
        return response.deployment

    async def apply_deployment(
        self, deployment: scheduler_pb2.Deployment, *, timeout: Timeout = None
    ) -> scheduler_pb2.ApplyDeploymentResponse:
        """Create the deployment or replace its spec (like `kubectl apply`);
        the response says which (`created`)."""
        return await self._call(
            self._stub.ApplyDeployment(
                scheduler_pb2.ApplyDeploymentRequest(deployment=deployment), timeout=_seconds(timeout)
            )
        )

    async def get_deployment(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> scheduler_pb2.Deployment:
        """One deployment with its status; `NotFound` when missing."""
        response = await self._call(
            self._stub.GetDeployment(
                scheduler_pb2.GetDeploymentRequest(namespace=namespace, name=name), timeout=_seconds(timeout)
            )
        )
        return response.deployment

    async def list_deployments(
        self, *, namespace: str = "", timeout: Timeout = None
    ) -> scheduler_pb2.ListDeploymentsResponse:
        """Deployments of `namespace` ("*" for all), with the revision read at."""
        return await self._call(
            self._stub.ListDeployments(
                scheduler_pb2.ListDeploymentsRequest(namespace=namespace), timeout=_seconds(timeout)
            )
        )

    async def update_deployment(
        self, deployment: scheduler_pb2.Deployment, *, timeout: Timeout = None
    ) -> scheduler_pb2.Deployment:
        """Replace a deployment's spec (`Conflict` on a stale resource_version)."""
        response = await self._call(
            self._stub.UpdateDeployment(
                scheduler_pb2.UpdateDeploymentRequest(deployment=deployment), timeout=_seconds(timeout)
            )
        )
        return response.deployment

    async def scale_deployment(
        self, name: str, replicas: int, *, namespace: str = "", timeout: Timeout = None
    ) -> scheduler_pb2.Deployment:
        """Set a deployment's replica count."""
        response = await self._call(
            self._stub.ScaleDeployment(
                scheduler_pb2.ScaleDeploymentRequest(namespace=namespace, name=name, replicas=replicas),
                timeout=_seconds(timeout),
            )
        )
        return response.deployment

    async def delete_deployment(
        self, name: str, *, namespace: str = "", wait: bool = False, timeout: Timeout = None
    ) -> scheduler_pb2.Deployment:
        """Delete a deployment; with `wait`, return once every replica has stopped."""
        response = await self._call(
            self._stub.DeleteDeployment(
                scheduler_pb2.DeleteDeploymentRequest(namespace=namespace, name=name, wait=wait),
                timeout=_seconds(timeout),
            )
        )
        return response.deployment

    async def pause_rollout(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> scheduler_pb2.Deployment:
        """Pause a deployment's rollout."""
        response = await self._call(
            self._stub.PauseRollout(
                scheduler_pb2.PauseRolloutRequest(namespace=namespace, name=name), timeout=_seconds(timeout)
            )
        )
        return response.deployment

    async def resume_rollout(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> scheduler_pb2.Deployment:
        """Resume a paused rollout."""
        response = await self._call(
            self._stub.ResumeRollout(
                scheduler_pb2.ResumeRolloutRequest(namespace=namespace, name=name), timeout=_seconds(timeout)
            )
        )
        return response.deployment

    async def undo_rollout(
        self, name: str, *, namespace: str = "", to_revision: str = "", timeout: Timeout = None
    ) -> scheduler_pb2.UndoRolloutResponse:
        """Roll back to the previous revision (or `to_revision`, a hash prefix);
        the response carries the deployment and the agent it now runs."""
        return await self._call(
            self._stub.UndoRollout(
                scheduler_pb2.UndoRolloutRequest(namespace=namespace, name=name, to_revision=to_revision),
                timeout=_seconds(timeout),
            )
        )

    async def watch_deployments(
        self, *, namespace: str = "", name: str = "", include_initial: bool = False
    ) -> AsyncGenerator[scheduler_pb2.WatchDeploymentsResponse, None]:
        """Stream deployment changes (of one deployment when `name` is given)."""
        call = self._stub.WatchDeployments(
            scheduler_pb2.WatchDeploymentsRequest(namespace=namespace, name=name, include_initial=include_initial)
        )
        async for response in self._iterate(call):
            yield response

    async def get_logs(
        self,
        name: str,
        *,
        namespace: str = "",
        replica: str = "",
        tail: int = 0,
        follow: bool = False,
        timeout: Timeout = None,
    ) -> AsyncGenerator[scheduler_pb2.GetLogsResponse, None]:
        """A deployment's replica log lines (the last `tail` per replica); with
        `follow`, new lines as they are written until the loop is left."""
        call = self._stub.GetLogs(
            scheduler_pb2.GetLogsRequest(namespace=namespace, name=name, replica=replica, tail=tail, follow=follow),
            timeout=_seconds(timeout),
        )
        async for response in self._iterate(call):
            yield response


class HealthClient(_Client):
    """Probe results, drain and enable, and health events (HealthService)."""

    _STUB = health_pb2_grpc.HealthServiceStub
    _SERVICE = "health"
    _stub: health_pb2_grpc.HealthServiceStub

    async def get_agent_health(
        self, agent_id: str, *, namespace: str = "", timeout: Timeout = None
    ) -> health_pb2.AgentHealth:
        """One agent's aggregate health with its instances and their probe records."""
        response = await self._call(
            self._stub.GetAgentHealth(
                health_pb2.GetAgentHealthRequest(namespace=namespace, agent_id=agent_id), timeout=_seconds(timeout)
            )
        )
        return response.health

    async def list_agent_health(
        self, *, namespace: str = "", include_instances: bool = False, timeout: Timeout = None
    ) -> health_pb2.ListAgentHealthResponse:
        """Every agent's aggregate health (with their instances when `include_instances`)."""
        return await self._call(
            self._stub.ListAgentHealth(
                health_pb2.ListAgentHealthRequest(namespace=namespace, include_instances=include_instances),
                timeout=_seconds(timeout),
            )
        )

    async def get_instance_health(
        self, instance_id: str, *, namespace: str = "", timeout: Timeout = None
    ) -> registry_pb2.Instance:
        """One instance with its probe records; `NotFound` when missing."""
        response = await self._call(
            self._stub.GetInstanceHealth(
                health_pb2.GetInstanceHealthRequest(namespace=namespace, instance_id=instance_id),
                timeout=_seconds(timeout),
            )
        )
        return response.instance

    async def drain_instance(
        self, instance_id: str, *, namespace: str = "", timeout: Timeout = None
    ) -> registry_pb2.Instance:
        """No new tasks to the instance; tasks in flight finish."""
        response = await self._call(
            self._stub.DrainInstance(
                health_pb2.DrainInstanceRequest(namespace=namespace, instance_id=instance_id),
                timeout=_seconds(timeout),
            )
        )
        return response.instance

    async def enable_instance(
        self, instance_id: str, *, namespace: str = "", timeout: Timeout = None
    ) -> registry_pb2.Instance:
        """Take a drained instance back (its state follows readiness again)."""
        response = await self._call(
            self._stub.EnableInstance(
                health_pb2.EnableInstanceRequest(namespace=namespace, instance_id=instance_id),
                timeout=_seconds(timeout),
            )
        )
        return response.instance

    async def watch_health(
        self, *, namespace: str = "", agent_id: str = "", include_current: bool = False
    ) -> AsyncGenerator[health_pb2.HealthEvent, None]:
        """Stream health events (of one agent when `agent_id` is given); with
        `include_current`, first the current instances, then SYNCED."""
        call = self._stub.WatchHealth(
            health_pb2.WatchHealthRequest(namespace=namespace, agent_id=agent_id, include_current=include_current)
        )
        async for response in self._iterate(call):
            yield response.event

    async def list_members(self, *, timeout: Timeout = None) -> health_pb2.ListMembersResponse:
        """The live health members, how many instances each probes, and which answered."""
        return await self._call(self._stub.ListMembers(health_pb2.ListMembersRequest(), timeout=_seconds(timeout)))


class TokenClient(_Client):
    """Mints, revokes and lists bearer tokens (TokenService, hosted by the registry)."""

    _STUB = tokens_pb2_grpc.TokenServiceStub
    _SERVICE = "registry"

    async def create_token(
        self,
        *,
        namespace: str = "",
        role: str = "",
        ttl: timedelta | None = None,
        agent_id: str = "",
        subject_name: str = "",
        description: str = "",
        timeout: Timeout = None,
    ) -> tokens_pb2.CreateTokenResponse:
        """A new token granting `role` in `namespace` (with `agent_id`: an agent's
        bootstrap token); the response holds the token, shown this once."""
        request = tokens_pb2.CreateTokenRequest(
            namespace=namespace, role=role, agent_id=agent_id, subject_name=subject_name, description=description
        )
        if ttl is not None:
            request.ttl.CopyFrom(to_duration(ttl))
        return await self._call(self._stub.CreateToken(request, timeout=_seconds(timeout)))

    async def revoke_token(self, id: str, *, namespace: str = "", timeout: Timeout = None) -> tokens_pb2.TokenRecord:
        """Revoke a token by id; returns its record with revoke_time set."""
        response = await self._call(
            self._stub.RevokeToken(tokens_pb2.RevokeTokenRequest(namespace=namespace, id=id), timeout=_seconds(timeout))
        )
        return response.record

    async def list_tokens(self, *, namespace: str = "", timeout: Timeout = None) -> tokens_pb2.ListTokensResponse:
        """Token records of `namespace` ("*" for all); never the tokens."""
        return await self._call(
            self._stub.ListTokens(tokens_pb2.ListTokensRequest(namespace=namespace), timeout=_seconds(timeout))
        )


class RbacClient(_Client):
    """RoleBindings and the built-in roles (RbacService, served by the registry)."""

    _STUB = rbac_pb2_grpc.RbacServiceStub
    _SERVICE = "registry"

    async def apply_role_binding(
        self, binding: rbac_pb2.RoleBinding, *, timeout: Timeout = None
    ) -> rbac_pb2.ApplyRoleBindingResponse:
        """Create the binding or replace its role and subjects; the response says which (`created`)."""
        return await self._call(
            self._stub.ApplyRoleBinding(
                rbac_pb2.ApplyRoleBindingRequest(binding=binding), timeout=_seconds(timeout)
            )
        )

    async def get_role_binding(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> rbac_pb2.RoleBinding:
        """One binding; `NotFound` when missing."""
        response = await self._call(
            self._stub.GetRoleBinding(
                rbac_pb2.GetRoleBindingRequest(namespace=namespace, name=name), timeout=_seconds(timeout)
            )
        )
        return response.binding

    async def list_role_bindings(
        self, *, namespace: str = "", timeout: Timeout = None
    ) -> rbac_pb2.ListRoleBindingsResponse:
        """Bindings of `namespace` ("*" for all), with the revision read at."""
        return await self._call(
            self._stub.ListRoleBindings(
                rbac_pb2.ListRoleBindingsRequest(namespace=namespace), timeout=_seconds(timeout)
            )
        )

    async def delete_role_binding(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> rbac_pb2.RoleBinding:
        """Delete a binding and return it; `NotFound` when missing."""
        response = await self._call(
            self._stub.DeleteRoleBinding(
                rbac_pb2.DeleteRoleBindingRequest(namespace=namespace, name=name), timeout=_seconds(timeout)
            )
        )
        return response.binding

    async def list_roles(self, *, namespace: str = "", timeout: Timeout = None) -> list[rbac_pb2.Role]:
        """The built-in roles and their rules."""
        response = await self._call(
            self._stub.ListRoles(rbac_pb2.ListRolesRequest(namespace=namespace), timeout=_seconds(timeout))
        )
        return list(response.roles)

    async def review_access(
        self, principal: str, *, namespace: str, name: str, verb: str = "execute", resource: str = "agents",
        timeout: Timeout = None,
    ) -> rbac_pb2.ReviewAccessResponse:
        """Whether `principal` (a SPIFFE ID) may `verb` `resource` `name` in `namespace`, as the router
        decides it: asked by an agent, about calls to itself (docs/rbac.md, "Access reviews")."""
        return await self._call(self._stub.ReviewAccess(
            rbac_pb2.ReviewAccessRequest(principal=principal, verb=verb, resource=resource, namespace=namespace,
                                         name=name),
            timeout=_seconds(timeout),
        ))


class RateLimitClient(_Client):
    """RateLimit objects (RateLimitService, served by the registry; routers enforce them)."""

    _STUB = ratelimit_pb2_grpc.RateLimitServiceStub
    _SERVICE = "registry"

    async def apply_rate_limit(
        self, rate_limit: ratelimit_pb2.RateLimit, *, timeout: Timeout = None
    ) -> ratelimit_pb2.ApplyRateLimitResponse:
        """Create the rate limit or replace its spec; the response says which (`created`)."""
        request = ratelimit_pb2.ApplyRateLimitRequest(rate_limit=rate_limit)
        return await self._call(self._stub.ApplyRateLimit(request, timeout=_seconds(timeout)))

    async def get_rate_limit(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> ratelimit_pb2.RateLimit:
        """One rate limit; `NotFound` when missing."""
        request = ratelimit_pb2.GetRateLimitRequest(namespace=namespace, name=name)
        return (await self._call(self._stub.GetRateLimit(request, timeout=_seconds(timeout)))).rate_limit

    async def list_rate_limits(
        self, *, namespace: str = "", timeout: Timeout = None
    ) -> ratelimit_pb2.ListRateLimitsResponse:
        """Rate limits of `namespace` ("*" for all), with the revision read at."""
        request = ratelimit_pb2.ListRateLimitsRequest(namespace=namespace)
        return await self._call(self._stub.ListRateLimits(request, timeout=_seconds(timeout)))

    async def delete_rate_limit(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> ratelimit_pb2.RateLimit:
        """Delete a rate limit and return it; `NotFound` when missing."""
        request = ratelimit_pb2.DeleteRateLimitRequest(namespace=namespace, name=name)
        return (await self._call(self._stub.DeleteRateLimit(request, timeout=_seconds(timeout)))).rate_limit


def _audit_filter(
    namespace: str, principal: str, verb: str, resource: str, decision: audit_pb2.AuditDecision,
    since: datetime | None,
) -> audit_pb2.AuditEventFilter:
    flt = audit_pb2.AuditEventFilter(
        namespace=namespace, principal=principal, verb=verb, resource=resource, decision=decision
    )
    if since is not None:
        flt.since.FromDatetime(since.astimezone(UTC))
    return flt


class AuditClient(_Client):
    """The audit log (AuditService, served by the registry): list and follow records.

    `namespace` "" means "default", "*" every namespace; `principal` is an
    accessor id or a SPIFFE ID (every token of it); `since` keeps calls
    received at or after that time.
    """

    _STUB = audit_pb2_grpc.AuditServiceStub
    _SERVICE = "registry"

    async def list_audit_events(
        self,
        *,
        namespace: str = "",
        principal: str = "",
        verb: str = "",
        resource: str = "",
        decision: audit_pb2.AuditDecision = audit_pb2.AUDIT_DECISION_UNSPECIFIED,
        since: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: Timeout = None,
    ) -> audit_pb2.ListAuditEventsResponse:
        """One page of matching records, oldest first; page on while `next_page_token` is set."""
        request = audit_pb2.ListAuditEventsRequest(
            filter=_audit_filter(namespace, principal, verb, resource, decision, since),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._call(self._stub.ListAuditEvents(request, timeout=_seconds(timeout)))

    async def watch_audit_events(
        self,
        *,
        namespace: str = "",
        principal: str = "",
        verb: str = "",
        resource: str = "",
        decision: audit_pb2.AuditDecision = audit_pb2.AUDIT_DECISION_UNSPECIFIED,
        since: datetime | None = None,
        include_initial: bool = False,
    ) -> AsyncGenerator[audit_pb2.WatchAuditEventsResponse, None]:
        """Stream matching records as they are written and completed; with
        `include_initial`, the kept ones first, then a response with `synced`."""
        call = self._stub.WatchAuditEvents(
            audit_pb2.WatchAuditEventsRequest(
                filter=_audit_filter(namespace, principal, verb, resource, decision, since),
                include_initial=include_initial,
            )
        )
        async for response in self._iterate(call):
            yield response


class QuotaClient(_Client):
    """ResourceQuotas of namespaces (QuotaService, served by the registry)."""

    _STUB = quota_pb2_grpc.QuotaServiceStub
    _SERVICE = "registry"

    async def apply_quota(
        self, quota: quota_pb2.ResourceQuota, *, timeout: Timeout = None
    ) -> quota_pb2.ApplyQuotaResponse:
        """Create the quota or replace its hard limits; the response says which (`created`)."""
        return await self._call(
            self._stub.ApplyQuota(quota_pb2.ApplyQuotaRequest(quota=quota), timeout=_seconds(timeout))
        )

    async def get_quota(self, name: str, *, namespace: str = "", timeout: Timeout = None) -> quota_pb2.ResourceQuota:
        """One quota with its live usage (`status.used`); `NotFound` when missing."""
        response = await self._call(
            self._stub.GetQuota(quota_pb2.GetQuotaRequest(namespace=namespace, name=name), timeout=_seconds(timeout))
        )
        return response.quota

    async def list_quotas(self, *, namespace: str = "", timeout: Timeout = None) -> quota_pb2.ListQuotasResponse:
        """Quotas of `namespace` ("*" for all), each with its live usage."""
        return await self._call(
            self._stub.ListQuotas(quota_pb2.ListQuotasRequest(namespace=namespace), timeout=_seconds(timeout))
        )

    async def delete_quota(
        self, name: str, *, namespace: str = "", timeout: Timeout = None
    ) -> quota_pb2.ResourceQuota:
        """Delete a quota and return it; `NotFound` when missing."""
        response = await self._call(
            self._stub.DeleteQuota(
                quota_pb2.DeleteQuotaRequest(namespace=namespace, name=name), timeout=_seconds(timeout)
            )
        )
        return response.quota
