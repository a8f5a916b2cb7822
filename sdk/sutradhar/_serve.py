"""Serving an `Agent`: the AgentService servicer, `AgentServer` and `serve()`.

`AgentServer` hosts one agent on a `GrpcHost` (AgentService, grpc.health.v1,
reflection). With a registry address it also registers the instance under a
lease and keeps it alive (see `_registration`). `stop()` drains: health goes
NOT_SERVING, the registry hears DRAINING, new tasks get UNAVAILABLE
"draining", in-flight tasks get up to `grace` to finish, then the instance is
deregistered and the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc

from sutradhar import _tracing
from sutradhar._access_review import AccessReviews
from sutradhar._agent import (
    Agent,
    Result,
    ResultMetadata,
    Task,
    crash_result,
    overrides,
    run_execute,
    stream_events,
    validate_agent,
    with_metadata,
)
from sutradhar._aio import wait_set
from sutradhar._bootstrap import Bootstrap
from sutradhar._clients import RegistryClient
from sutradhar._convert import event_to_proto, result_to_proto, task_from_proto
from sutradhar._credentials import Credentials
from sutradhar._errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, Unavailable
from sutradhar._event_loop import loop_factory
from sutradhar._hosting import (
    GrpcHost,
    install_signal_handlers,
)
from sutradhar._identity import AGENT
from sutradhar._labels import METRICS_PORT_LABEL
from sutradhar._log_context import LogContext, set_context, trace_context_of, trace_from_traceparent
from sutradhar._logs import announce, configure_logging
from sutradhar._mesh_callers import MeshCallers
from sutradhar._metrics import TaskMetrics
from sutradhar._registration import Registration
from sutradhar._serve_settings import ServeSettings, serve_settings
from sutradhar._tls import TlsSource
from sutradhar._values import to_duration
from sutradhar.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)

AGENT_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
#: The traced methods, named as the RPC semantic conventions name spans (``rpc.method``).
EXECUTE_METHOD = f"{AGENT_SERVICE}/Execute"
EXECUTE_STREAM_METHOD = f"{AGENT_SERVICE}/ExecuteStream"


def _start_tracing(service: str) -> None:
    """Turn tracing on when ``OTEL_*`` asks for it (`sutradhar._tracing.setup`). A malformed
    ``OTEL_*`` value stops the agent (FailedPrecondition); without OpenTelemetry installed
    (the ``tracing`` extra) the agent serves untraced and says why once."""
    try:
        _tracing.setup(service)
    except ValueError as err:
        raise FailedPrecondition(str(err)) from None
    except ImportError as err:
        log.warning("serving without tracing: %s", err)


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """AgentService over one `Agent`: decode, run, count, encode."""

    def __init__(self, agent: Agent, *, instance_id: str, metrics: TaskMetrics | None = None,
                 namespace: str = "") -> None:
        self.agent = agent
        self.instance_id = instance_id
        self.namespace = namespace
        self.metrics = metrics or TaskMetrics()
        self.prometheus: Any = None
        """The agent's AgentPrometheus (sutradhar._prometheus) when it serves /metrics."""
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    # -- bookkeeping -------------------------------------------------------

    def _admit(self, context: grpc.aio.ServicerContext) -> None:
        if self.draining:
            raise Unavailable(
                f"agent {self.agent.id} instance {self.instance_id} is draining; send the task to another instance"
            )

    def _begin(self) -> float:
        self.metrics.begin()
        self._idle.clear()
        return time.perf_counter()

    def _end(self, started: float, ok: bool, task_type: str = "") -> None:
        seconds = time.perf_counter() - started
        self.metrics.end(timedelta(seconds=seconds), ok=ok)
        if self.prometheus is not None:
            self.prometheus.task_done(task_type, ok, seconds)
        if self.metrics.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, limit: timedelta) -> bool:
        """Wait until no task runs (at most `limit`); True when idle."""
        return await wait_set(self._idle, limit)

    @staticmethod
    def _deadline(context: grpc.aio.ServicerContext, task: Task) -> float | None:
        """The earlier of the gRPC deadline and the task's own, in loop time."""
        candidates: list[float] = []
        remaining = context.time_remaining()
        if remaining is not None:
            candidates.append(remaining)
        task_remaining = task.context.time_remaining()
        if task_remaining is not None:
            candidates.append(task_remaining.total_seconds())
        if not candidates:
            return None
        return asyncio.get_running_loop().time() + min(candidates)

    def _unexpired_deadline(self, context: grpc.aio.ServicerContext, task: Task) -> float | None:
        """`_deadline`, or DeadlineExceeded when it has passed already: asyncio
        cancels only at an await, so an agent that never awaits would run the
        task to completion for a caller that has given up."""
        deadline = self._deadline(context, task)
        if deadline is not None and deadline <= asyncio.get_running_loop().time():
            raise DeadlineExceeded(f"task {task.id} reached agent {self.agent.id} after its deadline had passed")
        return deadline

    def _traced_deadline(self, context: grpc.aio.ServicerContext, task: Task, span: Any) -> float | None:
        """`_unexpired_deadline`, ending the call's span (if any) when the deadline has passed already."""
        try:
            return self._unexpired_deadline(context, task)
        except DeadlineExceeded as err:
            if span is not None:
                _tracing.end_task_span(span, err, False)
            raise

    def _task(self, request: agent_pb2.ExecuteRequest | agent_pb2.ExecuteStreamRequest) -> Task:
        """The request's task (with an id), or INVALID_ARGUMENT when the agent
        declares `task_types` and the task's non-empty type is not one of them:
        like an undecodable request, a task the agent cannot run at all."""
        task = task_from_proto(request.task)
        accepted = list(self.agent.task_types)
        if task.type and accepted and task.type not in accepted:
            raise InvalidArgument(
                f"agent {self.agent.id} does not accept task type {task.type!r}; "
                f"it accepts {', '.join(repr(t) for t in accepted)} (or an empty type)",
                field="task.type",
            )
        return task if task.id else replace(task, id=uuid.uuid4().hex)

    def _log_context(self, task: Task, context: grpc.aio.ServicerContext, method: str) -> Any:
        """Start the call's SERVER span when tracing is on (`sutradhar._tracing`; None when off)
        and name the task in every log line written while it runs (`sutradhar._log_context`):
        its request id (the caller's, else the task id), the agent, instance and namespace, and
        the trace: the span's, else that of the call's ``traceparent`` metadata (the router's
        attempt) or else the task's traceparent (`trace_context_of`; the span carries the
        ``tracestate`` that goes with it). The call runs in a task of its own, so both end with it."""
        traceparent, tracestate = trace_context_of(
            context.invocation_metadata(), task.context.traceparent, task.context.tracestate)
        span = _tracing.start_task_span(method, traceparent, tracestate=tracestate, namespace=self.namespace,
                                        agent=self.agent.id, instance=self.instance_id, task_type=task.type)
        trace_id, span_id = _tracing.current_ids() if span is not None else trace_from_traceparent(traceparent)
        set_context(LogContext(
            request_id=task.context.request_id or task.id, task_id=task.id, trace_id=trace_id, span_id=span_id,
            namespace=self.namespace, agent=self.agent.id, instance=self.instance_id,
        ))
        return span

    def _final(self, result: Result, task: Task, started: float) -> tuple[agent_pb2.Result, bool]:
        meta = ResultMetadata(
            latency=timedelta(seconds=time.perf_counter() - started),
            agent_id=self.agent.id,
            agent_version=self.agent.version,
            instance_id=self.instance_id,
            task_id=task.id,
        )
        result = with_metadata(result, meta)
        try:
            return result_to_proto(result), result.success
        except TypeError as err:
            bad = with_metadata(crash_result(TypeError(f"result data is not JSON-like: {err}")), meta)
            return result_to_proto(bad), False

    # -- RPCs --------------------------------------------------------------

    async def Describe(
        self, request: agent_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DescribeResponse:
        agent = self.agent
        return agent_pb2.DescribeResponse(
            id=agent.id,
            type=agent.type,
            version=agent.version,
            capabilities=list(agent.capabilities),
            description=agent.description,
            task_types=list(agent.task_types),
            streaming=overrides(agent, "stream"),
        )

    async def Execute(
        self, request: agent_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ExecuteResponse:
        self._admit(context)
        task = self._task(request)
        span = self._log_context(task, context, EXECUTE_METHOD)
        deadline = self._traced_deadline(context, task, span)
        started = self._begin()
        ok = False
        failure: BaseException | None = None
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    result = await run_execute(self.agent, task)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"task {task.id} on agent {self.agent.id} did not finish before its deadline"
                ) from None
            msg, ok = self._final(result, task, started)
            return agent_pb2.ExecuteResponse(result=msg)
        except BaseException as err:
            failure = err
            raise
        finally:
            self._end(started, ok, task.type)
            if span is not None:
                _tracing.end_task_span(span, failure, ok)

    async def ExecuteStream(
        self, request: agent_pb2.ExecuteStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.ExecuteStreamResponse]:
        self._admit(context)
        task = self._task(request)
        span = self._log_context(task, context, EXECUTE_STREAM_METHOD)
        deadline = self._traced_deadline(context, task, span)
        started = self._begin()
        ok = False
        failure: BaseException | None = None
        events = stream_events(self.agent, task)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(events)
                except TimeoutError:
                    raise DeadlineExceeded(
                        f"streamed task {task.id} on agent {self.agent.id} did not finish before its deadline"
                    ) from None
                except StopAsyncIteration:  # pragma: no cover - stream_events always ends with a Result
                    return
                if isinstance(event, Result):
                    msg, ok = self._final(event, task, started)
                    yield agent_pb2.ExecuteStreamResponse(result=msg)
                    return
                try:
                    out = event_to_proto(event)
                except TypeError as err:
                    bad = crash_result(TypeError(f"partial data is not JSON-like: {err}"))
                    msg, ok = self._final(bad, task, started)
                    yield agent_pb2.ExecuteStreamResponse(result=msg)
                    return
                yield out
        except BaseException as err:
            failure = err
            raise
        finally:
            await events.aclose()
            self._end(started, ok, task.type)
            if span is not None:
                _tracing.end_task_span(span, failure, ok)

    async def Metrics(
        self, request: agent_pb2.MetricsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.MetricsResponse:
        snap = self.metrics.snapshot()
        try:
            custom = {str(k): float(v) for k, v in self.agent.custom_metrics().items()}
        except Exception:
            log.exception("custom_metrics() of agent %s failed", self.agent.id)
            custom = {}
        return agent_pb2.MetricsResponse(
            requests_total=snap.requests_total,
            errors_total=snap.errors_total,
            in_flight=snap.in_flight,
            uptime=to_duration(snap.uptime),
            latency_p50=to_duration(snap.latency_p50),
            latency_p99=to_duration(snap.latency_p99),
            custom=custom,
        )


class AgentServer:
    """Serves one agent; registers it when given a registry address.

    Use `async with AgentServer(agent) as server:` (or `start()`/`stop()`);
    `server.address` is where it listens (port 0 picks a free port).
    """

    def __init__(
        self,
        agent: Agent,
        *,
        host: str | None = None,
        port: int | None = None,
        metrics_port: int | None = None,
        metrics_optional: bool | None = None,
        registry: str | None = None,
        namespace: str | None = None,
        instance_id: str | None = None,
        advertise: str | None = None,
        labels: Mapping[str, str] | None = None,
        ttl: timedelta | None = None,
        grace: timedelta | None = None,
        register_agent: bool | None = None,
        health_period: timedelta | None = None,
        max_message_bytes: int | None = None,
        tls_cert_file: Path | None = None,
        tls_key_file: Path | None = None,
        tls_ca_file: Path | None = None,
        trust_domain: str | None = None,
        insecure: bool | None = None,
        bootstrap: str | None = None,
        bootstrap_token_file: Path | None = None,
        settings: ServeSettings | None = None,
    ) -> None:
        """Options left None are `settings`' (default: `ServeSettings()`, whose
        fields document each option and its default). Unlike `serve()`, the
        environment is not read: call `serve_settings()` for that. The
        settings' `agent_id` / `agent_version` replace the agent's (see `apply_identity`).

        The agent serves mutual TLS with `tls_cert_file` / `tls_key_file` / `tls_ca_file`
        and then takes AgentService calls from the mesh's router, health and scheduler only
        (`sutradhar._mesh_callers`); with `bootstrap` and `bootstrap_token_file` (and
        `tls_ca_file`) instead of certificate files, `start()` first exchanges the token for a
        certificate (`sutradhar._bootstrap`) and renews it while serving; with `insecure`
        (loopback only) it serves plaintext. One of these is required: FailedPrecondition says
        how to fix it."""
        settings = replace(settings or ServeSettings(), **given(
            host=host, port=port, metrics_port=metrics_port, metrics_optional=metrics_optional, registry=registry,
            namespace=namespace, instance_id=instance_id,
            advertise=advertise, labels=labels, ttl=ttl, grace=grace, register_agent=register_agent,
            health_period=health_period, max_message_bytes=max_message_bytes, tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file, tls_ca_file=tls_ca_file, trust_domain=trust_domain, insecure=insecure,
            bootstrap=bootstrap, bootstrap_token_file=bootstrap_token_file,
        ))
        self.settings = settings
        """The options this server runs with."""
        apply_identity(agent, settings.agent_id, settings.agent_version)
        validate_agent(agent)
        self.agent = agent
        self._bootstrap = settings.bootstrap_settings(f"agent {agent.id}")
        self.tls: TlsSource | None = None if self._bootstrap is not None else settings.tls_source(
            f"agent {agent.id}", "127.0.0.1" if settings.published_on_loopback else settings.host
        )
        """The agent's certificate (None: insecure, or not bootstrapped yet)."""
        secured = self.tls is not None or self._bootstrap is not None
        certified = self.tls.identity.instance_id if self.tls is not None else ""
        self.instance_id = settings.instance_id or certified or f"{agent.id}-{uuid.uuid4().hex[:8]}"
        self.namespace = settings.namespace
        self.grace = settings.grace
        self._advertise = settings.advertise
        self._registry_address = settings.registry
        self._labels = dict(settings.labels)
        self._ttl = settings.ttl
        self._register_agent = settings.register_agent
        self._health_period = settings.health_period
        review_at = settings.access_review or settings.registry
        self.access_reviews: AccessReviews | None = AccessReviews(
            review_at, lambda: self.tls, agent=f"agent {agent.id}") if secured and review_at else None
        """Who answers about callers that are not mesh services (None: they are refused)."""
        self._host = GrpcHost(
            service_names=[AGENT_SERVICE], host=settings.host, port=settings.port,
            max_message_bytes=settings.max_message_bytes, tls=self.tls,
            middleware=[MeshCallers(settings.trust_domain, agent=f"agent {agent.id}", reviews=self.access_reviews)]
            if secured else [],
        )
        self.servicer = AgentServicer(agent, instance_id=self.instance_id, namespace=self.namespace)
        self._metrics_port = settings.metrics_port
        self.metrics_url: str | None = None
        """URL of the agent's /metrics once started with a metrics port, else None."""
        self.metrics_port: int | None = None
        """The bound port of the agent's /metrics once it serves one, else None."""
        self._host.add_servicer(agent_pb2_grpc.add_AgentServiceServicer_to_server, self.servicer)
        self.registration: Registration | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._serving = False
        self._started = False
        self._stopped = False

    @property
    def port(self) -> int:
        """The bound port (after `start()`)."""
        return self._host.port

    @property
    def address(self) -> str:
        """"host:port" the server listens on (after `start()`)."""
        return self._host.address

    @property
    def endpoint(self) -> str:
        """The endpoint registered for this instance: `advertise` or the address."""
        if self._advertise:
            return self._advertise
        host = "127.0.0.1" if self._host.host in ("0.0.0.0", "", "[::]", "::") else self._host.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Bind, run `on_start`, report SERVING, then register (when configured)."""
        if self._started:
            return
        if self._bootstrap is not None and self.tls is None:
            await self._obtain_certificate(self._bootstrap)
        self._started = True
        _start_tracing(self.agent.id)
        await self._host.start()
        if self._metrics_port is not None:
            try:
                self._start_metrics(self._metrics_port)
            except BaseException:
                await self._host.stop(timedelta(0))
                raise
        try:
            await self.agent.on_start()
        except BaseException:
            await self._host.stop(timedelta(0))
            raise
        healthy = await self._check_health()
        await self._set_serving(healthy)
        if self._registry_address:
            tls = self.tls
            self.registration = Registration(
                # its own certificate, never the credential file of whoever started it
                client=RegistryClient(self._registry_address, credentials=Credentials(tls=tls)),
                identity=str(tls.identity) if tls is not None else "",
                agent=self.agent,
                instance_id=self.instance_id,
                endpoint=self.endpoint,
                namespace=self.namespace,
                labels={**self._labels, **({METRICS_PORT_LABEL: str(self.metrics_port)}
                                           if self.metrics_port is not None else {})},
                ttl=self._ttl,
                register_agent=self._register_agent,
                healthy=lambda: self._serving,
            )
            try:
                await self.registration.start()
            except BaseException:
                await self.stop(timedelta(0))
                raise
            self._tasks.append(asyncio.create_task(self.registration.run(), name="sutradhar-keepalive"))
        if overrides(self.agent, "check_health"):
            self._tasks.append(asyncio.create_task(self._health_loop(), name="sutradhar-health"))

    def _start_metrics(self, port: int) -> None:
        """Serve the agent's /metrics on `port`; with `metrics_optional`, a missing prometheus-client or a
        port that cannot be bound is logged and the agent serves without it."""
        from sutradhar._prometheus import AgentPrometheus

        servicer = self.servicer
        host = self.settings.host
        try:
            prometheus = AgentPrometheus(agent=self.agent.id, namespace=self.namespace,
                                         task_types=list(self.agent.task_types),
                                         in_flight=lambda: servicer.metrics.in_flight)
            endpoint = prometheus.serve(host, port)
        except (FailedPrecondition, OSError) as err:
            if not self.settings.metrics_optional:
                raise
            reason = err.strerror if isinstance(err, OSError) else str(err)
            log.warning("agent %s serves no /metrics: %s", self.agent.id, reason)
            return
        self.metrics_url = endpoint.url
        self.metrics_port = endpoint.port
        servicer.prometheus = prometheus

    async def _obtain_certificate(self, bootstrap: Bootstrap) -> None:
        """Exchange the bootstrap token for this agent's certificate; keep it renewed."""
        source = await bootstrap.source()
        identity = source.identity
        if identity.kind == AGENT and identity.agent_id != self.agent.id:
            raise FailedPrecondition(
                f"agent {self.agent.id}: the bootstrap token is for agent {identity.agent_id!r} ({identity}); "
                f"use a token minted with `sutradhar token create --agent {self.agent.id}`"
            )
        self.tls = source
        self._host.tls = source
        self._tasks.append(asyncio.create_task(source.run(), name="sutradhar-certificate-renewal"))
        log.info("agent %s obtained a certificate for %s, valid until %s", self.agent.id, identity,
                 source.current().not_after.isoformat())

    async def _check_health(self) -> bool:
        """One poll of `check_health`, with the health period as its timeout:
        a timeout or an exception counts as unhealthy (logged with its type)."""
        limit = self._health_period.total_seconds()
        try:
            async with asyncio.timeout(limit):
                return bool(await self.agent.check_health())
        except TimeoutError:
            log.warning(
                "check_health() of agent %s failed: TimeoutError: timed out after %gs; reporting NOT_SERVING",
                self.agent.id, limit,
            )
            return False
        except Exception as err:
            log.warning(
                "check_health() of agent %s failed: %s: %r; reporting NOT_SERVING",
                self.agent.id, type(err).__name__, err,
            )
            return False

    async def _set_serving(self, serving: bool) -> None:
        if serving != self._serving:
            self._serving = serving
            await self._host.set_serving(serving)

    async def _health_loop(self) -> None:
        while not self.servicer.draining:
            await asyncio.sleep(self._health_period.total_seconds())
            healthy = await self._check_health()
            if not self.servicer.draining:
                await self._set_serving(healthy)

    async def stop(self, grace: timedelta | None = None) -> None:
        """Drain and stop: NOT_SERVING, DRAINING in the registry, refuse new
        tasks, wait up to `grace` for in-flight ones, deregister, stop."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        grace = self.grace if grace is None else grace
        self.servicer.draining = True
        await self._host.set_serving(False)
        self._serving = False
        if self.registration is not None:
            await self.registration.drain()
        if not await self.servicer.wait_idle(grace):
            log.warning(
                "agent %s: %d task(s) still running after %.1fs grace; cancelling them",
                self.agent.id, self.servicer.metrics.in_flight, grace.total_seconds(),
            )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.registration is not None:
            await self.registration.deregister()
            await self.registration.client.close()
        await self._host.stop(timedelta(seconds=0.2))
        if self.access_reviews is not None:
            await self.access_reviews.close()
        if self.servicer.prometheus is not None:
            self.servicer.prometheus.close()
        try:
            await self.agent.on_stop()
        except Exception:
            log.exception("on_stop() of agent %s failed", self.agent.id)

    async def run_until_signal(self) -> None:
        """Start, announce, serve until SIGTERM/SIGINT, then drain and stop."""
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await self.start()
        announce(__name__, f"agent {self.agent.id} listening on {self.address}", address=self.address,
                 agent=self.agent.id, instance=self.instance_id, namespace=self.namespace)
        if self.metrics_url:
            announce(__name__, f"agent {self.agent.id} metrics on {self.metrics_url}")
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def given(**options: Any) -> dict[str, Any]:
    """The keyword arguments that are not None: the options a caller set."""
    return {name: value for name, value in options.items() if value is not None}


def apply_identity(agent: Agent, agent_id: str | None = None, agent_version: str | None = None) -> Agent:
    """Make `agent` report `agent_id` / `agent_version` (when given) instead of
    its class's `id` / `version`, in Describe, result metadata and the
    registry. Only the instance changes: its class, and so the command that
    starts another replica of it, stays the author's. Returns `agent`."""
    for name, value in (("id", agent_id), ("version", agent_version)):
        if value:
            setattr(agent, name, value)
    return agent


def serve(
    agent: Agent,
    *,
    host: str | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
    metrics_optional: bool | None = None,
    registry: str | None = None,
    namespace: str | None = None,
    instance_id: str | None = None,
    advertise: str | None = None,
    agent_id: str | None = None,
    agent_version: str | None = None,
    labels: Mapping[str, str] | None = None,
    ttl: timedelta | None = None,
    grace: timedelta | None = None,
    register_agent: bool | None = None,
    health_period: timedelta | None = None,
    max_message_bytes: int | None = None,
    event_loop: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    tls_cert_file: Path | None = None,
    tls_key_file: Path | None = None,
    tls_ca_file: Path | None = None,
    trust_domain: str | None = None,
    insecure: bool | None = None,
    published_on_loopback: bool | None = None,
    bootstrap: str | None = None,
    bootstrap_token_file: Path | None = None,
    access_review: str | None = None,
    settings: ServeSettings | None = None,
) -> None:
    """Serve `agent` until SIGTERM/SIGINT, then drain and return.

    Blocks (runs its own event loop: `event_loop`, uvloop when installed). Prints one line to stderr once serving:
    ``agent <id> listening on HOST:PORT``. Each option is a field of
    `ServeSettings` (which documents it and its default); options left None
    fall back to the same environment variables as ``python -m
    sutradhar.serve`` (SUTRADHAR_HOST, _PORT, _REGISTRY, _NAMESPACE,
    _INSTANCE_ID, _ADVERTISE, _AGENT_ID, _AGENT_VERSION, _LABELS, _TTL, ...;
    see `serve_settings`), so ``python agent.py`` runs under the scheduler
    exactly like the module entry point. Given `settings` (complete, e.g.
    parsed from flags), the environment is not read again and the keyword
    arguments override it. `agent_id` / `agent_version` replace the class's
    `id` / `version` in what the agent reports. With a registry, the instance
    is registered under a lease of `ttl` and deregistered on shutdown. Inside
    a running event loop use `AgentServer(...).run_until_signal()` instead.
    """
    options = given(
        host=host, port=port, metrics_port=metrics_port, metrics_optional=metrics_optional, registry=registry,
        namespace=namespace, instance_id=instance_id,
        advertise=advertise, agent_id=agent_id, agent_version=agent_version, labels=labels, ttl=ttl,
        grace=grace, register_agent=register_agent, health_period=health_period,
        max_message_bytes=max_message_bytes, event_loop=event_loop, log_level=log_level, log_format=log_format,
        tls_cert_file=tls_cert_file, tls_key_file=tls_key_file, tls_ca_file=tls_ca_file, trust_domain=trust_domain,
        insecure=insecure,
        published_on_loopback=published_on_loopback, bootstrap=bootstrap, bootstrap_token_file=bootstrap_token_file,
        access_review=access_review,
    )
    settings = replace(settings, **options) if settings is not None else serve_settings(**options)
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level, settings.log_format, service=settings.agent_id or agent.id,
                          quiet_libraries=False)

    factory, _ = loop_factory(settings.event_loop)  # InvalidArgument, saying how to fix, for uvloop not installed

    async def main() -> None:
        server = AgentServer(agent, settings=settings)
        await server.run_until_signal()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
