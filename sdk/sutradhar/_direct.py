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

- ``not-synced``: the view has not had its first full list from the registry yet;
- ``secured-mesh``: the credentials hold a certificate or token: agents of a secured
  mesh take tasks from the mesh's router only (`sutradhar._mesh_callers`);
- ``in-process``: an instance of the pool runs inside the router;
- ``http-without-httpx``: an HTTP agent, and httpx (the ``mesh`` extra) is not installed;
- ``rate-limited``: the agent's policy or a RateLimit of its namespace limits it (the
  router holds the shared buckets).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Self

from sutradhar._clients import RouterClient, Timeout, _seconds
from sutradhar._credentials import open_channel
from sutradhar._errors import InvalidArgument
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES
from sutradhar._route_engine import Engine, PlainDialer, instance_stats, is_http
from sutradhar._route_watch import RegistryWatcher
from sutradhar._routing import wire
from sutradhar._routing.selection import Pool
from sutradhar._routing.view import View
from sutradhar.v1 import ratelimit_pb2, router_pb2

#: Why a call went to the router (the keys of `DirectStats.fallbacks`).
NOT_SYNCED = "not-synced"
SECURED_MESH = "secured-mesh"
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

    @property
    def routed(self) -> int:
        """Calls that went through the router."""
        return sum(self.fallbacks.values())


class _LimitedNamespaces:
    """The namespaces that hold a RateLimit (fed by the watch): their calls go to the router."""

    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {}

    def put(self, limit: ratelimit_pb2.RateLimit, now: float) -> None:
        self.names.setdefault(limit.namespace or "default", set()).add(limit.name)

    def delete(self, namespace: str, name: str) -> None:
        held = self.names.get(namespace or "default")
        if held is not None:
            held.discard(name)
            if not held:
                del self.names[namespace or "default"]

    def replace(self, limits: list[ratelimit_pb2.RateLimit], now: float) -> None:
        self.names.clear()
        for limit in limits:
            self.put(limit, now)


class DirectClient(RouterClient):
    """Routes tasks itself, straight to agent instances, with the router's semantics::

        async with DirectClient("127.0.0.1:50052", registry="127.0.0.1:50051") as client:
            await client.wait_synced(timeout=5)
            result = await client.execute("echo", {"text": "hi"}, timeout=2)

    `address` is the router, used for what the client cannot route itself (see the
    module's docstring and `stats()`); `registry` is the registry it watches, with the
    same credentials. `execute`, `execute_stream` and `get_stats` (the router's) are
    `RouterClient`'s. Gives up nothing a routed call has: a call it cannot route with
    the router's semantics goes to the router.
    """

    def __init__(self, address: str, *, registry: str, **options: Any) -> None:
        super().__init__(address, **options)
        self.registry = registry
        self._max_message_bytes = int(options.get("max_message_bytes") or DEFAULT_MAX_MESSAGE_BYTES)
        self.view = View(on_removed=self._discard)
        self.engine = Engine(self.view, max_message_bytes=self._max_message_bytes,
                             dial=PlainDialer(self.view, self._max_message_bytes))
        self._limited = _LimitedNamespaces()
        self._refusal = "" if self.credentials.is_insecure else SECURED_MESH
        self.watcher: RegistryWatcher | None = None
        if not self._refusal:
            expected = self.credentials.expected("registry")
            self.watcher = RegistryWatcher(
                self.view, registry, limiter=self._limited,
                channel=lambda: open_channel(registry, self.credentials, expected=expected),
            )
        self._watch: asyncio.Task[None] | None = None
        self._direct = 0
        self._fallbacks: Counter[str] = Counter()
        self._httpx = importlib.util.find_spec("httpx") is not None

    def _discard(self, backend: Any) -> None:
        self.engine.discard(backend)

    def _start(self) -> None:
        if self.watcher is not None and self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self.watcher.run(), name="direct-client-watch")

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def wait_synced(self, *, timeout: Timeout = None) -> bool:  # noqa: ASYNC109 - a bound, as elsewhere
        """Wait until the view holds the registry's full list (True), or for `timeout`
        (a timedelta or seconds; False when it passes). Calls made before go to the router. False at once when the
        client never routes itself (a secured mesh)."""
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
                           instances=instance_stats(self.view, self.engine.clock(), namespace, agent_type))

    async def close(self) -> None:
        """Stop watching, close the channels to agents and to the router."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self.engine.close()
        await super().close()

    # -- routing ----------------------------------------------------------

    def _fallback_reason(self, pool: Pool) -> str:
        if pool.policy.rate_limit is not None or pool.namespace in self._limited.names:
            return RATE_LIMITED
        for backend in pool.backends:
            if backend.runtime == "in-process" or backend.endpoint == "in-process":
                return IN_PROCESS
            if not self._httpx and is_http(backend):
                return HTTP_WITHOUT_HTTPX
        return ""

    def _route(self, request: Any, request_type: str) -> wire.RouteRequest | None:
        """The request split for the engine, or None (counted) when the router must take it."""
        self._start()
        reason = self._refusal or ("" if self.view.synced else NOT_SYNCED)
        route = None
        if not reason:
            route = wire.split_route_request(request.SerializeToString(), request_type)
            if route.error:
                raise InvalidArgument(route.error, field="request")
            reason = self._fallback_reason(self.engine.pool(route.selector_bytes))
        if reason:
            self._fallbacks[reason] += 1
            return None
        self._direct += 1
        return route

    async def _send(
        self, request: router_pb2.RouterServiceExecuteRequest, grpc_timeout: float | None
    ) -> router_pb2.RouterServiceExecuteResponse:
        route = self._route(request, wire.EXECUTE_REQUEST)
        if route is None:
            return await super()._send(request, grpc_timeout)
        return router_pb2.RouterServiceExecuteResponse.FromString(await self.engine.execute(route, grpc_timeout))

    async def _send_stream(
        self, request: router_pb2.RouterServiceExecuteStreamRequest, grpc_timeout: float | None
    ) -> AsyncGenerator[router_pb2.RouterServiceExecuteStreamResponse, None]:
        route = self._route(request, wire.EXECUTE_STREAM_REQUEST)
        if route is None:
            events = super()._send_stream(request, grpc_timeout)
            try:
                async for msg in events:
                    yield msg
            finally:
                await events.aclose()
            return
        stream = self.engine.execute_stream(route, grpc_timeout)
        try:
            async for event in stream:
                yield router_pb2.RouterServiceExecuteStreamResponse.FromString(event)
        finally:
            await stream.aclose()  # leaving early cancels the agent call
