"""`DirectClient`: a `RouterClient` that routes each call itself, with no router hop.

It watches the registry over gRPC (`RegistryService.Watch`, resumed after a
disconnect, listed again after a compaction) into its own `View` of agents, their
routing policies and instances, and sends each task straight to the instance the
router would have picked, through the router's own engine (`sutradhar._route_engine`):
the same selector, per-agent policy, strategies, circuit breakers, outlier ejection,
retries on another instance within the deadline and the retry budget, hedging and
streaming with cancellation. Results carry the same metadata (instance id,
attempts) as routed ones; errors are the same `SutradharError`s with the same
messages.

A call goes to the router instead (counted in `stats()` under its reason) when the
client cannot route it with the router's semantics:

- ``not-synced``: the view has not had its first full list from the registry yet (or
  the watch is refused: `DirectStats.watch_error` says why);
- ``token-only``: the credentials hold a bearer token and no certificate: an agent
  authenticates its callers by their certificates (mutual TLS), so only the router,
  which checks tokens, takes the call;
- ``other-namespace``: the client watches one namespace (`namespace=`) and the call
  names another;
- ``container-replica``: in a secured mesh, an instance of the pool is a container
  replica, which cannot reach the registry to review a direct caller and so takes
  calls from the mesh's services only (docs/security.md, "Who may call an agent");
- ``in-process``: an instance of the pool runs inside the router;
- ``http-without-httpx``: an HTTP agent, and httpx (the ``mesh`` extra) is not installed;
- ``rate-limited``: the agent's policy or a RateLimit of its namespace limits it (the
  router holds the shared buckets).

In a secured mesh the client calls agents over mutual TLS with its own certificate
(`Credentials.tls`), requiring each instance to present the identity it registered, as
the router does (`sutradhar._mesh_dialer.MeshDialer`); the agent asks the registry
whether the certificate's identity may ``execute`` it (an access review, the router's
own rule, cached 10 s by the agent: `sutradhar._access_review`), so a caller without
the binding gets PERMISSION_DENIED from the agent, naming it, as the router would
answer, and a revoked binding takes effect within 10 s.

With tracing on in the caller's process (`sutradhar.setup_tracing`, the ``tracing`` extra, or
the application's own OpenTelemetry tracer provider, installed before the client is made), each
direct call is traced as the router traces a routed one (`sutradhar._route_tracing`, one
definition for both): under the caller's current OpenTelemetry span, else the task's
``traceparent``, sampled as the configured sampler decides; sampled, an INTERNAL span of the
call (``sutradhar.v1.RouterService/Execute``) with a CLIENT span per attempt, each attempt's
context sent to the agent as ``traceparent`` metadata; unsampled, no span, and the caller's
context (or a new unsampled one) goes to every attempt. With tracing off nothing of it runs.

The rest of the mesh still sees the direct calls: every `REPORT_PERIOD` the client
reports each instance's load window (average in flight, calls per second, and whether its
breaker is open or it ejects the instance; the router's `Backend.take_load`) and its recent
latency (p50, p99) to the registry (`ReportLoad`),
which writes it beside the routers' under a lease that lapses shortly after the client's
last report, so the autoscaler counts it and `sutradhar stats` / `top` show it (the
router's `GetStats` reads the records back).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import logging
import re
import socket
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Self

from google.protobuf.message import DecodeError

from sutradhar import _tracing
from sutradhar._agent import Result, StreamEvent, Task
from sutradhar._aio import cancel_until_done
from sutradhar._clients import RegistryClient, RouterClient, Timeout, _seconds
from sutradhar._convert import event_from_proto, result_from_proto, task_to_proto, unix_seconds
from sutradhar._credentials import open_channel
from sutradhar._errors import SutradharError, error_for_code
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES
from sutradhar._mesh_dialer import MeshDialer
from sutradhar._names import ALL_NAMESPACES
from sutradhar._route_engine import Engine, PlainDialer, instance_stats, is_http, named_attempt_error
from sutradhar._route_tracing import CallTrace, DirectTracing, Forward
from sutradhar._route_transports import invalid_response
from sutradhar._route_watch import RegistryWatcher
from sutradhar._routing import wire
from sutradhar._routing.backend import Backend, is_in_process
from sutradhar._routing.selection import Pool
from sutradhar._routing.view import View
from sutradhar._values import to_duration
from sutradhar.v1 import agent_pb2, ratelimit_pb2, registry_pb2, router_pb2

log = logging.getLogger(__name__)

#: How often the load of direct calls is reported to the registry.
REPORT_PERIOD = timedelta(seconds=1)

#: Selectors (and their refusals) a client keeps; a client sends the same few again and again.
SELECTOR_CACHE_SIZE = 1024

#: Why a call went to the router (the keys of `DirectStats.fallbacks`).
NOT_SYNCED = "not-synced"
TOKEN_ONLY = "token-only"
OTHER_NAMESPACE = "other-namespace"
CONTAINER_REPLICA = "container-replica"
IN_PROCESS = "in-process"
HTTP_WITHOUT_HTTPX = "http-without-httpx"
RATE_LIMITED = "rate-limited"


@dataclass(frozen=True)
class DirectStats:
    """What a `DirectClient` did: calls it routed itself, calls it left to the router by
    reason, whether its view is synced with the registry, and what it observed of each
    instance it knows (the router's `GetStats` form: in-flight, requests, errors, latency,
    breaker, ejection)."""

    direct: int
    fallbacks: dict[str, int] = field(default_factory=dict)
    synced: bool = False
    instances: list[router_pb2.InstanceStats] = field(default_factory=list)
    load_reports: int = 0
    """Load reports the registry accepted."""
    load_report_error: str = ""
    """Why the last load report failed ("" after a good one)."""
    watch_error: str = ""
    """Why the last watch of the registry failed ("" while it runs), e.g. PERMISSION_DENIED."""

    @property
    def routed(self) -> int:
        """Calls that went through the router."""
        return sum(self.fallbacks.values())


def reporter_id() -> str:
    """A DNS-1123 label naming this client in its load records: host name and a random suffix."""
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")[:40]
    return f"{host or 'client'}-{uuid.uuid4().hex[:12]}"


@functools.lru_cache(maxsize=1024)
def _namespace_of(selector_bytes: bytes) -> str:
    """The namespace a serialized Selector names ("default" when empty); cached, as callers
    send the same few selectors again and again."""
    try:
        return router_pb2.Selector.FromString(selector_bytes).namespace or "default"
    except DecodeError:  # not ours to report: the router answers INVALID_ARGUMENT for it
        return ""


class _LimitedNamespaces:
    """The namespaces that hold a RateLimit (fed by the watch): their calls go to the router."""

    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {}
        self.version = 0
        """Moves on every change (what was decided from `names` is stale then)."""

    def put(self, limit: ratelimit_pb2.RateLimit, now: float) -> None:
        self.names.setdefault(limit.namespace or "default", set()).add(limit.name)
        self.version += 1

    def delete(self, namespace: str, name: str) -> None:
        held = self.names.get(namespace or "default")
        if held is not None:
            held.discard(name)
            if not held:
                del self.names[namespace or "default"]
        self.version += 1

    def replace(self, limits: list[ratelimit_pb2.RateLimit], now: float) -> None:
        self.names.clear()
        for limit in limits:
            self.put(limit, now)
        self.version += 1


class DirectClient(RouterClient):
    """Routes tasks itself, straight to agent instances, with the router's semantics::

        async with DirectClient("127.0.0.1:50052", registry="127.0.0.1:50051") as client:
            await client.wait_synced(timeout=5)
            result = await client.execute("echo", {"text": "hi"}, timeout=2)

    `address` is the router, used for what the client cannot route itself (see the
    module's docstring and `stats()`); `registry` is the registry it watches, with the
    same credentials; `namespace` what it watches: "*" (every namespace, which needs
    `watch` cluster-wide) or the one namespace a caller may watch, whose agents it then
    calls directly (calls to other namespaces go to the router). `execute`,
    `execute_stream` and `get_stats` (the router's) are `RouterClient`'s. Gives up
    nothing a routed call has: a call it cannot route with the router's semantics goes
    to the router.
    """

    def __init__(self, address: str, *, registry: str, namespace: str = ALL_NAMESPACES, **options: Any) -> None:
        super().__init__(address, **options)
        self.registry = registry
        self.namespace = namespace
        self._max_message_bytes = int(options.get("max_message_bytes") or DEFAULT_MAX_MESSAGE_BYTES)
        self.view = View(on_removed=self._discard)
        tls = self.credentials.tls
        self._secured = not self.credentials.is_insecure
        dial = PlainDialer(self.view, self._max_message_bytes) if tls is None else \
            MeshDialer(self.view, self._max_message_bytes, tls)
        self.engine = Engine(self.view, max_message_bytes=self._max_message_bytes, dial=dial)
        self._limited = _LimitedNamespaces()
        self._refusal = TOKEN_ONLY if self._secured and tls is None else ""
        self.watcher: RegistryWatcher | None = None
        if not self._refusal:
            expected = self.credentials.expected("registry")
            self.watcher = RegistryWatcher(
                self.view, registry, limiter=self._limited, namespace=namespace,
                channel=lambda: open_channel(registry, self.credentials, expected=expected),
            )
        self.reporter_id = reporter_id()
        self._registry = RegistryClient(registry, credentials=self.credentials) if self.watcher is not None else None
        self._reports = 0
        self._report_error = ""
        self._watch: asyncio.Task[None] | None = None
        self._report: asyncio.Task[None] | None = None
        self._direct = 0
        self._fallbacks: Counter[str] = Counter()
        self._httpx = importlib.util.find_spec("httpx") is not None
        self._selectors: dict[int, tuple[router_pb2.Selector, bytes]] = {}
        self._reasons: dict[bytes, tuple[tuple[int, int], str]] = {}
        self._tracing: DirectTracing | None = None

    def _discard(self, backend: Any) -> None:
        self.engine.discard(backend)

    def _start(self) -> None:
        if self.watcher is not None and self._watch is None:
            loop = asyncio.get_running_loop()
            self._watch = loop.create_task(self.watcher.run(), name="direct-client-watch")
            self._report = loop.create_task(self._report_loop(), name="direct-client-load")

    async def report_load(self) -> int:
        """Report one load window of every instance this client called (one `ReportLoad` per
        namespace); how many instances were reported. Run every `REPORT_PERIOD` by the client."""
        if self._registry is None:
            return 0
        now = self.engine.clock()
        by_namespace: dict[str, list[registry_pb2.InstanceLoad]] = {}
        for backend in list(self.view.backends.values()):
            sample = backend.take_load(now)
            if sample is not None:
                p50, p99 = backend.percentiles()
                by_namespace.setdefault(backend.namespace, []).append(registry_pb2.InstanceLoad(
                    instance_id=backend.instance_id, agent_id=backend.agent_id, in_flight=sample.in_flight,
                    rps=sample.rps, latency_p50=to_duration(timedelta(seconds=p50)),
                    latency_p99=to_duration(timedelta(seconds=p99)), breaker_open=sample.breaker_open,
                    ejected=sample.ejected))
        for namespace, loads in by_namespace.items():
            await self._registry.report_load(self.reporter_id, loads, namespace=namespace, timeout=5)
            self._reports += 1
        return sum(len(loads) for loads in by_namespace.values())

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_PERIOD.total_seconds())
            try:
                await self.report_load()
                self._report_error = ""
            except SutradharError as err:  # the registry's trouble never fails a call
                if not self._report_error:
                    log.warning("cannot report the load of direct calls to the registry at %s: %s",
                                self.registry, err)
                self._report_error = str(err)

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def wait_synced(self, *, timeout: Timeout = None) -> bool:  # noqa: ASYNC109 - a bound, as elsewhere
        """Wait until the view holds the registry's full list (True), or for `timeout`
        (a timedelta or seconds; False when it passes). Calls made before go to the router. False at once when the
        client never routes itself (a token without a certificate)."""
        if self.watcher is None:
            return False
        self._start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_seconds(timeout)):
                await self.watcher.synced.wait()
        return self.watcher.synced.is_set()

    def stats(self, *, namespace: str = "", agent_type: str = "") -> DirectStats:
        """Calls routed directly, calls sent to the router by reason, whether the view is synced,
        and the instances (of `namespace` and `agent_type`, when given) as this client sees them."""
        return DirectStats(direct=self._direct, fallbacks=dict(self._fallbacks), synced=self.view.synced,
                           instances=instance_stats(self.view, self.engine.clock(), namespace, agent_type),
                           load_reports=self._reports, load_report_error=self._report_error,
                           watch_error=self.watcher.error if self.watcher is not None else "")

    async def close(self) -> None:
        """Stop watching, close the channels to agents and to the router."""
        await cancel_until_done(task for task in (self._watch, self._report) if task is not None)
        self._watch = self._report = None
        await self.engine.close()
        if self._registry is not None:
            await self._registry.close()
        await super().close()

    # -- routing ----------------------------------------------------------

    def _fallback_reason(self, pool: Pool) -> str:
        if pool.policy.rate_limit is not None or pool.namespace in self._limited.names:
            return RATE_LIMITED
        for backend in pool.backends:
            if is_in_process(backend):
                return IN_PROCESS
            if self._secured and backend.runtime == "container":
                return CONTAINER_REPLICA
            if not self._httpx and is_http(backend):
                return HTTP_WITHOUT_HTTPX
        return ""

    def _selector_bytes(self, selector: router_pb2.Selector) -> bytes:
        """`selector` serialized deterministically (the engine's pool key), kept per selector
        object: `RouterClient` passes the same few, built once (`_route_of`)."""
        kept = self._selectors.get(id(selector))
        if kept is not None and kept[0] is selector:
            return kept[1]
        data = selector.SerializeToString(deterministic=True)
        if len(self._selectors) >= SELECTOR_CACHE_SIZE:
            self._selectors.clear()
        self._selectors[id(selector)] = (selector, data)  # holding it keeps its id from being reused
        return data

    def _refusal_of(self, selector_bytes: bytes) -> str:
        """Why a call of this selector must go to the router ("" when this client routes it),
        kept per view generation and RateLimit change."""
        key = (self.view.generation, self._limited.version)
        kept = self._reasons.get(selector_bytes)
        if kept is not None and kept[0] == key:
            return kept[1]
        reason = OTHER_NAMESPACE if self.namespace != ALL_NAMESPACES and \
            _namespace_of(selector_bytes) != self.namespace else ""
        if not reason:
            try:
                reason = self._fallback_reason(self.engine.pool(selector_bytes))
            except SutradharError:
                reason = ""  # the engine raises the selector's error from its cache, as the router would
        if len(self._reasons) >= SELECTOR_CACHE_SIZE:
            self._reasons.clear()
        self._reasons[selector_bytes] = (key, reason)
        return reason

    def _route(self, task: Task, selector: router_pb2.Selector, options: router_pb2.RouteOptions,
               request_type: type[agent_pb2.ExecuteRequest | agent_pb2.ExecuteStreamRequest],
               ) -> wire.RouteRequest | None:
        """The task as the engine takes it, or None (counted) when the router must take it.

        The task is written once, as a `request_type` (ExecuteRequest or ExecuteStreamRequest:
        the task is field 1 of both), whose bytes are the field-1 record the engine sends; its id,
        type, deadline and trace context come from `task` itself."""
        self._start()
        reason = self._refusal or ("" if self.view.synced else NOT_SYNCED)
        selector_bytes = b""
        if not reason:
            selector_bytes = self._selector_bytes(selector)
            reason = self._refusal_of(selector_bytes)
        if reason:
            self._fallbacks[reason] += 1
            return None
        request = request_type()
        task_to_proto(task, request.task)  # InvalidArgument for a payload that is not JSON-like
        self._direct += 1
        context = task.context
        deadline = context.deadline
        return wire.RouteRequest(
            request.SerializeToString(), selector_bytes, options, task.id, task.type,
            unix_seconds(deadline) if deadline is not None else 0.0, context.traceparent or "",
            context.tracestate or "",
        )

    async def _send(
        self, task: Task, selector: router_pb2.Selector, options: router_pb2.RouteOptions, grpc_timeout: float | None
    ) -> Result:
        route = self._route(task, selector, options, agent_pb2.ExecuteRequest)
        if route is None:
            return await super()._send(task, selector, options, grpc_timeout)
        state = _tracing.active()
        if state is None:
            return await self.engine.execute(route, grpc_timeout, None, self._result)
        return await self._execute_traced(self._trace(state, route), route, grpc_timeout)

    def _result(self, data: bytes, backend: Backend, attempts: int, assigned_id: str) -> Result:
        """The agent's answer as a Result, carrying the metadata a router would splice into it
        (`Engine.metadata_fields`): decoded once, nothing sent on. UNAVAILABLE naming the instance
        when the agent's data does not parse (the engine's check of the answer leaves it undecoded)."""
        try:
            result = agent_pb2.ExecuteResponse.FromString(data).result
        except DecodeError as err:
            failed = named_attempt_error(backend, invalid_response(data, err))
            raise error_for_code(failed.code, failed.message) from None
        result.metadata.MergeFromString(self.engine.metadata_fields(backend, attempts, assigned_id))
        return result_from_proto(result)

    def _trace(self, state: Any, route: wire.RouteRequest, stream: bool = False) -> Forward | CallTrace:
        """The trace of one direct call while tracing is on (`sutradhar._route_tracing.DirectTracing`)."""
        tracing = self._tracing
        if tracing is None or tracing.state is not state:
            tracing = self._tracing = DirectTracing(state)
        return tracing.start(route.task_traceparent, route.task_tracestate, stream)

    async def _execute_traced(self, trace: Forward | CallTrace, route: wire.RouteRequest,
                              grpc_timeout: float | None) -> Result:
        """`engine.execute` under `trace`: sampled, the call's span ends with the call's outcome."""
        if not isinstance(trace, CallTrace):
            return await self.engine.execute(route, grpc_timeout, trace, self._result)
        failure: BaseException | None = None
        try:
            return await self.engine.execute(route, grpc_timeout, trace, self._result)
        except BaseException as err:
            failure = err
            raise
        finally:
            trace.end(failure)

    async def _send_stream(
        self, task: Task, selector: router_pb2.Selector, options: router_pb2.RouteOptions, grpc_timeout: float | None
    ) -> AsyncGenerator[StreamEvent, None]:
        route = self._route(task, selector, options, agent_pb2.ExecuteStreamRequest)
        if route is None:
            events = super()._send_stream(task, selector, options, grpc_timeout)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()
            return
        state = _tracing.active()
        trace = None if state is None else self._trace(state, route, stream=True)
        stream = self.engine.execute_stream(route, grpc_timeout, trace, agent_pb2.ExecuteStreamResponse.FromString)
        failure: BaseException | None = None
        try:
            async for message in stream:
                yield event_from_proto(message)
        except GeneratorExit:  # the caller left the stream early
            failure = asyncio.CancelledError("the caller left the stream")
            raise
        except BaseException as err:
            failure = err
            raise
        finally:
            await stream.aclose()  # leaving early cancels the agent call
            if isinstance(trace, CallTrace):  # sampled: the call's span ends with the stream
                trace.end(failure)
