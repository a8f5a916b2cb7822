"""Feeds the View (and the rate limiter's RateLimits) from the registry's `Watch` stream.

First a list (``include_initial``: every object, then SYNCED) that replaces
the view as a whole, then live events applied one by one. On a disconnect it
resumes from the last seen revision + 1; when that revision was compacted
away (OUT_OF_RANGE) it lists again. It never gives up: while the registry
is unreachable the view stays as it was (or empty before the first sync) and
the router answers UNAVAILABLE for what it cannot route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

import grpc

from sutradhar._backoff import Backoff
from sutradhar._identity import DEFAULT_TRUST_DOMAIN, SpiffeId
from sutradhar._routing.view import View
from sutradhar._tls import TlsSource, secure_channel
from sutradhar.v1 import ratelimit_pb2, registry_pb2, registry_pb2_grpc

log = logging.getLogger(__name__)

PUT = registry_pb2.WATCH_EVENT_TYPE_PUT
DELETE = registry_pb2.WATCH_EVENT_TYPE_DELETE
SYNCED = registry_pb2.WATCH_EVENT_TYPE_SYNCED
AGENT = registry_pb2.RESOURCE_KIND_AGENT
INSTANCE = registry_pb2.RESOURCE_KIND_INSTANCE
RATE_LIMIT = registry_pb2.RESOURCE_KIND_RATE_LIMIT
#: What a router watches (rate limits only come to a watcher that names them).
KINDS = (AGENT, INSTANCE, RATE_LIMIT)
#: What a watcher with no rate-limit sink watches.
ROUTING_KINDS = (AGENT, INSTANCE)
PROBE_SUCCESS = registry_pb2.PROBE_RESULT_SUCCESS

#: Pause before watching again after a failure: 200 ms doubling to 2 s, jittered.
WATCH_BACKOFF = Backoff(initial=timedelta(milliseconds=200), maximum=timedelta(seconds=2))


class RateLimitSink(Protocol):
    """Where watched RateLimits go (the router's `services.router.ratelimits.RateLimiter`)."""

    def put(self, limit: ratelimit_pb2.RateLimit, now: float) -> None: ...

    def delete(self, namespace: str, name: str) -> None: ...

    def replace(self, limits: list[ratelimit_pb2.RateLimit], now: float) -> None: ...


class RegistryWatcher:
    """Keeps `view` in step with the registry at `address`; with `tls`, over mutual TLS
    to a peer that must be the registry of `trust_domain`; `channel`, when given, makes
    the channel instead (an SDK caller's, presenting its `Credentials`). RateLimits are
    watched only with a `limiter` to feed. `namespace` is what is watched: "*" (every
    namespace, a router's), or one namespace (a caller allowed to watch only its own)."""

    def __init__(
        self,
        view: View,
        address: str,
        *,
        backoff: Backoff = WATCH_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        tls: TlsSource | None = None,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        limiter: RateLimitSink | None = None,
        channel: Callable[[], Any] | None = None,
        namespace: str = "*",
    ) -> None:
        self.view = view
        self.namespace = namespace
        self.error = ""
        """Why the last watch session failed ("" once one ran)."""
        self.limiter = limiter
        self.kinds = KINDS if limiter is not None else ROUTING_KINDS
        self._make_channel = channel
        self.address = address
        self.tls = tls
        self.trust_domain = trust_domain
        self.revision = 0
        self.synced = asyncio.Event()
        self.connected = False
        self._backoff = backoff
        self._clock = clock

    def _probe_time(self, instance: registry_pb2.Instance) -> float | None:
        readiness = instance.health.readiness
        if readiness.last_result != PROBE_SUCCESS or not readiness.HasField("last_probe_time"):
            return None
        age = time.time() - readiness.last_probe_time.ToNanoseconds() / 1e9
        return self._clock() - max(0.0, age)

    def _apply(self, event: registry_pb2.WatchEvent) -> None:
        view = self.view
        if event.kind == AGENT:
            if event.type == PUT:
                view.put_agent(event.agent)
            elif event.type == DELETE:
                view.delete_agent(event.namespace or event.agent.namespace, event.id or event.agent.id)
        elif event.kind == INSTANCE:
            if event.type == PUT:
                view.put_instance(event.instance, probe_time=self._probe_time(event.instance))
            elif event.type == DELETE:
                view.delete_instance(event.namespace or event.instance.namespace, event.id or event.instance.id)
        elif event.kind == RATE_LIMIT and self.limiter is not None:
            if event.type == PUT:
                self.limiter.put(event.rate_limit, self._clock())
            elif event.type == DELETE:
                self.limiter.delete(event.namespace or event.rate_limit.namespace, event.id or event.rate_limit.name)

    async def _session(self, channel: Any) -> None:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        listing = self.revision == 0
        request = registry_pb2.WatchRequest(namespace=self.namespace, kinds=self.kinds)
        if listing:
            request.include_initial = True
        else:
            request.start_revision = self.revision + 1
        agents: list[registry_pb2.Agent] = []
        instances: list[registry_pb2.Instance] = []
        limits: list[ratelimit_pb2.RateLimit] = []
        list_revision = 0
        call = stub.Watch(request)
        try:
            async for response in call:
                self.connected = True
                self.error = ""
                for event in response.events:
                    if listing:
                        # The revision counts only once the whole list is in:
                        # a stream broken mid-list must list again.
                        list_revision = max(list_revision, event.revision, response.revision)
                        if event.type == SYNCED:
                            if self.limiter is not None:
                                self.limiter.replace(limits, self._clock())
                            self.view.replace(agents, instances)
                            agents, instances, limits = [], [], []
                            listing = False
                            self.revision = max(self.revision, list_revision)
                            self.synced.set()
                        elif event.type == PUT and event.kind == AGENT:
                            agents.append(event.agent)
                        elif event.type == PUT and event.kind == INSTANCE:
                            instances.append(event.instance)
                        elif event.type == PUT and event.kind == RATE_LIMIT:
                            limits.append(event.rate_limit)
                    else:
                        self._apply(event)
                if not listing:
                    # Resume only from what the response says it covers: one etcd transaction
                    # may be split across responses, and its revision then comes with the last part.
                    seen = max((e.revision for e in response.events), default=0)
                    self.revision = max(self.revision, response.revision or seen)
        finally:
            call.cancel()
            self.connected = False

    def _channel(self) -> Any:
        if self._make_channel is not None:
            return self._make_channel()
        if self.tls is None:
            return grpc.aio.insecure_channel(self.address)
        return secure_channel(self.address, self.tls, expected=SpiffeId.service(self.trust_domain, "registry"))

    async def run(self) -> None:
        """Watch forever (cancel to stop). Failed sessions in a row wait
        longer each time (`backoff`); a session that ended cleanly resets it."""
        failures = 0
        async with self._channel() as channel:
            while True:
                try:
                    await self._session(channel)
                    log.info("registry watch ended; resuming from revision %d", self.revision + 1)
                    failures = 0
                    delay = self._backoff.seconds(1)
                except grpc.aio.AioRpcError as err:
                    if err.code() == grpc.StatusCode.OUT_OF_RANGE:
                        log.warning("watch revision %d was compacted; listing again", self.revision + 1)
                        self.revision = 0
                        continue
                    failures += 1
                    delay = self._backoff.seconds(failures)
                    self.error = f"{err.code().name}: {err.details()}"
                    log.warning("registry watch at %s failed (%s: %s); retrying in %.1fs",
                                self.address, err.code().name, err.details(), delay)
                await asyncio.sleep(delay)
