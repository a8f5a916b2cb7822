"""The router's gRPC surface: `RouterConfig` and `RouterServer`.

The servicer is thin and byte-oriented: `Execute` and `ExecuteStream` are
registered with a request deserializer that only splits the request
(`wire.split_route_request` / `split_route_stream_request`) and an identity response serializer, so task
payloads and results pass through as bytes. Background work - the registry
watch, load publishing and router membership - runs in a TaskGroup owned by the server.

Rate limits (`ratelimits.RateLimiter`) are taken by the engine before an instance is
picked; a refusal leaves as RESOURCE_EXHAUSTED with the ``grpc-retry-pushback-ms``
trailer, set here. With etcd the router is a member under
``/sutradhar/v1/members/router/<router-id>`` (leased), and the number of live members
sizes the shared RateLimits' buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc

from sutradhar._aio import cancel_until_done, wait_set
from sutradhar._errors import SutradharError, Unavailable
from sutradhar._hosting import GrpcHost
from sutradhar._names import ALL_NAMESPACES, validate_dns_label, validate_namespace
from sutradhar._route_engine import Engine, PlainDialer, instance_stats
from sutradhar._route_watch import RegistryWatcher
from sutradhar._routing import wire
from sutradhar._routing.view import View
from sutradhar._token_bucket import RateLimited
from sutradhar.services.common.membership import Membership
from sutradhar.services.common.security import SecurityStack
from sutradhar.services.common.tracing import CallTrace, RouterTracing
from sutradhar.services.router.config import RouterConfig
from sutradhar.services.router.dial import MeshDialer
from sutradhar.services.router.load import LoadPublisher, LoadReader, add_reported_load
from sutradhar.services.router.ratelimits import RateLimiter
from sutradhar.v1 import router_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = "sutradhar.v1.RouterService"
#: Seconds between attempts to join, renew or follow the router members after a failure.
MEMBERSHIP_RETRY_S = 1.0


class RouterServer:
    """One router: gRPC server, engine, registry watch, load publisher.

    `clock` (monotonic seconds) is the router's one clock: breakers, ejections,
    retry budgets, load windows and the watcher's probe times; tests pass one
    they can advance.
    """

    def __init__(
        self, config: RouterConfig, *, view: View | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.router_id = config.router_id or f"router-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.view = view or View(on_removed=self._discard)
        self.tls = config.tls_source("router", config.host)
        self.limiter = RateLimiter(max_callers=config.rate_limit_max_callers)
        dial = PlainDialer(self.view, config.max_message_bytes) if self.tls is None \
            else MeshDialer(self.view, config.max_message_bytes, self.tls)
        self.engine = Engine(self.view, max_message_bytes=config.max_message_bytes, clock=clock, dial=dial,
                             limits=self.limiter)
        self._store: Any = None
        if config.etcd:
            from sutradhar.services.common.store import EtcdEndpoint, Store

            self._store = Store(EtcdEndpoint.parse(config.etcd), tls=self.tls)
        self.security = SecurityStack(config, self._store, service="router", mutation_limits=False)
        self.host = GrpcHost(
            service_names=[SERVICE_NAME], host=config.host, port=config.port,
            max_message_bytes=config.max_message_bytes, tls=self.tls, middleware=self.security.middleware,
            token_port=config.token_port,
        )
        self.watcher = RegistryWatcher(
            self.view, config.registry, clock=clock, tls=self.tls, trust_domain=config.trust_domain,
            limiter=self.limiter,
        ) if config.registry else None
        self.membership = Membership(
            self._store, self.router_id, ttl=config.membership_ttl, on_change=self._routers_changed, service="router",
        ) if self._store is not None else None
        self.publisher: LoadPublisher | None = None
        #: Reads every reporter's load records for GetStats (None without etcd).
        self.load_reader = LoadReader(self._store, self.router_id, max_age=config.load_period) \
            if self._store is not None else None
        #: Spans of routed calls; None while tracing is off (`sutradhar._tracing.setup`), set at `start`.
        self.tracing: RouterTracing | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._background: list[asyncio.Task[None]] = []
        self.metrics: Any = None
        self.metrics_endpoint: Any = None
        if config.metrics:
            from sutradhar._prometheus import MetricsEndpoint
            from sutradhar.services.common.metrics_router import RouterMetrics

            self.metrics = self.engine.metrics = RouterMetrics(self.view, clock=clock)
            self.metrics_endpoint = MetricsEndpoint(self.metrics.registry, config.host, config.metrics_port)
        self._add_handlers()

    def _discard(self, backend: Any) -> None:
        self.engine.discard(backend)
        if self.metrics is not None:
            self.metrics.forget(backend)

    @property
    def metrics_url(self) -> str | None:
        """URL of /metrics once started, None with metrics off."""
        return self.metrics_endpoint.url if self.metrics_endpoint is not None else None

    def _routers_changed(self) -> None:
        assert self.membership is not None
        self.limiter.set_routers(len(self.membership.members), self.engine.clock())

    @property
    def port(self) -> int:
        return self.host.port

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def token_address(self) -> str | None:
        """"host:port" of the token port (bearer tokens, no client certificate), None without one."""
        return self.host.token_address

    def _add_handlers(self) -> None:
        handlers = {
            "Execute": grpc.unary_unary_rpc_method_handler(
                self._execute, request_deserializer=wire.split_route_request, response_serializer=None
            ),
            "ExecuteStream": grpc.unary_stream_rpc_method_handler(
                self._execute_stream, request_deserializer=wire.split_route_stream_request,
                response_serializer=None,
            ),
            "GetStats": grpc.unary_unary_rpc_method_handler(
                self._get_stats,
                request_deserializer=router_pb2.GetStatsRequest.FromString,
                response_serializer=router_pb2.GetStatsResponse.SerializeToString,
            ),
        }
        self.host.add_method_handlers(SERVICE_NAME, handlers)

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Bind, start the watch and the load publisher. Health reports
        NOT_SERVING (overall and for the router service) until the view has
        synced with the registry, SERVING from then on - so readiness checks
        and load balancers keep traffic away from a router that could only
        answer UNAVAILABLE. Without a registry (the caller feeds the view)
        it reports SERVING at once."""
        await self.security.start()
        await self.host.start()
        self.tracing = RouterTracing.create(self.host.address)
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.start()
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        if self.watcher is not None:
            self._background.append(self._tasks.create_task(self.watcher.run(), name="registry-watch"))
        if self.membership is not None:
            self.membership.address = self.host.address
            self._background.append(self._tasks.create_task(self._run_membership(), name="router-membership"))
        if self._store is not None:
            self.publisher = LoadPublisher(
                self._store, self.view, self.router_id, period=self.config.load_period, clock=self.engine.clock
            )
            self._background.append(self._tasks.create_task(self.publisher.run(), name="load-publisher"))
        if self.watcher is None:
            await self.host.set_serving()
        else:
            self._background.append(self._tasks.create_task(self._serve_once_synced(), name="serve-once-synced"))

    async def _run_membership(self) -> None:
        """Join the router members (trying again while etcd does not answer), then renew the lease and
        follow the others. Neither stops the router: a failure is logged and tried again, and shared
        rate limits meanwhile count the members last seen (the router alone before it first saw any)."""
        membership = self.membership
        assert membership is not None
        while True:
            try:
                await membership.join()
                break
            except SutradharError as err:
                log.warning("router %s cannot join the router members in etcd yet (%s); trying again in %gs",
                            self.router_id, err, MEMBERSHIP_RETRY_S)
                await asyncio.sleep(MEMBERSHIP_RETRY_S)

        async def forever(step: Callable[[], Awaitable[None]], what: str) -> None:
            while True:
                try:
                    await step()
                except SutradharError as err:
                    log.warning("router membership: %s failed (%s); trying again in %gs", what, err,
                                MEMBERSHIP_RETRY_S)
                await asyncio.sleep(MEMBERSHIP_RETRY_S)

        # Both in the server's own task group, so stop() cancels them like the others.
        assert self._tasks is not None
        for step, what, name in ((membership.keep_alive, "renewing the member lease", "router-member-lease"),
                                 (membership.watch, "following the members", "router-members-watch")):
            self._background.append(self._tasks.create_task(forever(step, what), name=name))

    async def _serve_once_synced(self) -> None:
        """Report SERVING once the watcher's first sync is in (it stays SERVING:
        after a later registry outage the view is stale, not empty)."""
        assert self.watcher is not None
        await self.watcher.synced.wait()
        await self.host.set_serving()

    async def wait_synced(self, within: timedelta) -> bool:
        """Wait until the view holds the registry's state; False on timeout."""
        if self.watcher is None:
            return True
        return await wait_set(self.watcher.synced, within)

    async def stop(self, grace: timedelta = timedelta(seconds=5)) -> None:
        """Stop taking calls, let in-flight ones finish, stop background work."""
        await self.host.stop(grace)
        if self._tasks is not None:
            # Again while any is left: a membership task can start the lease and watch loops
            # after the first pass, if its cancellation was lost.
            while not all(task.done() for task in self._background):
                await cancel_until_done(list(self._background))
            with contextlib.suppress(asyncio.CancelledError):
                await self._tasks.__aexit__(None, None, None)
            self._tasks = None
            self._background = []
        if self.publisher is not None:
            await self.publisher.close()
        if self.membership is not None:
            await self.membership.leave()
        await self.security.stop()
        if self._store is not None:
            await self._store.close()
        await self.engine.close()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()

    # -- handlers ---------------------------------------------------------

    def _check_synced(self) -> None:
        if not self.view.synced:
            raise Unavailable(
                f"the router has not loaded the registry's state yet (registry at {self.config.registry}); "
                "is the registry running? the router keeps retrying"
            )

    # The host's middleware chain turns what these raise into statuses
    # (SutradharError -> its code, anything else -> INTERNAL).

    async def _execute(self, request: wire.RouteRequest, context: grpc.aio.ServicerContext) -> bytes:
        if not self.view.synced:
            self._check_synced()
        tracing = self.tracing
        if tracing is not None:
            return await self._execute_traced(tracing, request, context)
        try:
            return await self.engine.execute(request, context.time_remaining())
        except RateLimited as err:
            context.set_trailing_metadata(err.trailer())  # kept by the abort that sends the status
            raise

    async def _execute_traced(
        self, tracing: RouterTracing, request: wire.RouteRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """`_execute` with tracing on: unsampled, the caller's context is forwarded; sampled,
        the call's SERVER span wraps the engine's attempt spans."""
        trace = tracing.start(context.invocation_metadata(), request.task_traceparent, request.task_tracestate)
        failure: BaseException | None = None
        try:
            return await self.engine.execute(request, context.time_remaining(), trace)
        except RateLimited as err:
            context.set_trailing_metadata(err.trailer())
            failure = err
            raise
        except BaseException as err:
            failure = err
            raise
        finally:
            if isinstance(trace, CallTrace):
                trace.end(failure)

    def _execute_stream(self, request: wire.RouteRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        self._check_synced()
        return self._stream(request, context)

    async def _stream(self, request: wire.RouteRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        tracing = self.tracing
        trace = None if tracing is None else tracing.start(
            context.invocation_metadata(), request.task_traceparent, request.task_tracestate, stream=True)
        events = self.engine.execute_stream(request, context.time_remaining(), trace)
        failure: BaseException | None = None
        try:
            async for event in events:
                yield event
        except RateLimited as err:
            context.set_trailing_metadata(err.trailer())
            failure = err
            raise
        except BaseException as err:
            failure = err
            raise
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            if isinstance(trace, CallTrace):
                trace.end(failure)

    async def _get_stats(
        self, request: router_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.GetStatsResponse:
        return await self.mesh_stats(request.namespace, request.agent_type)

    async def mesh_stats(self, namespace: str = "", agent_type: str = "") -> router_pb2.GetStatsResponse:
        """`stats`, plus the load every reporter recorded in etcd of each instance (this router's
        own record, other routers', direct callers'), read at most once per load period."""
        out = self.stats(namespace, agent_type)
        if self.load_reader is None:
            out.reported_load_error = ("this router runs without etcd (--etcd): only the calls it routed "
                                       "itself are shown, not other routers' or direct callers'")
            return out
        loads = await self.load_reader.read("" if namespace == ALL_NAMESPACES else namespace)
        add_reported_load(out.instances, loads)
        out.reported_load_error = loads.error
        return out

    def stats(self, namespace: str = "", agent_type: str = "") -> router_pb2.GetStatsResponse:
        """Per-instance statistics, sorted by namespace and instance id
        (namespace "" or "*": all; InvalidArgument for a malformed filter)."""
        validate_namespace(namespace, allow_all=True)
        if agent_type:
            validate_dns_label(agent_type, field="agent_type", what="agent type")
        if namespace == ALL_NAMESPACES:
            namespace = ""
        now = self.engine.clock()
        out = router_pb2.GetStatsResponse(router_id=self.router_id)
        self.limiter.sync_agents({key: entry.policy.rate_limit for key, entry in self.view.agents.items()
                                  if entry.policy.rate_limit is not None}, now)
        out.buckets.extend(self.limiter.stats(now, namespace))
        out.instances.extend(instance_stats(self.view, now, namespace, agent_type))
        return out

