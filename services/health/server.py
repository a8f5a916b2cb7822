"""The health service process: config, gRPC server, and the member's loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sutradhar._hosting import GrpcHost
from sutradhar.services.common.membership import Membership
from sutradhar.v1 import health_pb2, health_pb2_grpc

from ..common.log_context import LogContextMiddleware
from ..common.metrics_rpc import ServiceMetrics
from ..common.probing import Probers
from ..common.security import SecurityStack
from ..common.store import EtcdEndpoint, Store
from ..common.tracing import TracingMiddleware
from .config import HealthConfig
from .manager import HealthManager, ManagerOptions
from .servicer import HealthServicer

log = logging.getLogger(__name__)

SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name


class HealthServer:
    """A health member: API server plus probing, bound by `start()`."""

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self.tls = config.tls_source("health", config.host)
        self.store = Store(EtcdEndpoint.parse(config.etcd), tls=self.tls)
        self.security = SecurityStack(config, self.store, service="health")
        self.metrics = ServiceMetrics.of(config)
        if self.metrics is not None:
            self.metrics.etcd.instrument(self.store)
        self.host = GrpcHost(service_names=[SERVICE_NAME], host=config.host, port=config.port, tls=self.tls,
                             middleware=[TracingMiddleware("health"), LogContextMiddleware(),
                                         *self.security.middleware,
                                         *([self.metrics.rpc] if self.metrics else [])],
                             token_port=config.token_port)
        self.membership = Membership(self.store, config.member_id, ttl=config.member_ttl)
        self.manager = HealthManager(
            self.store,
            self.membership,
            options=ManagerOptions(
                flush_interval=config.flush_interval,
                probe_concurrency=config.probe_concurrency,
                write_concurrency=config.write_concurrency,
            ),
            probers=Probers(member_id=config.member_id, tls=self.tls),
        )
        if self.metrics is not None:
            from ..common.metrics_health import HealthMetrics

            self.manager.metrics = HealthMetrics(self.metrics.registry, self.manager)
        self.host.add_servicer(health_pb2_grpc.add_HealthServiceServicer_to_server, HealthServicer(self.manager))
        self._task: asyncio.Task[None] | None = None

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

    @property
    def member_id(self) -> str:
        return self.config.member_id

    async def start(self) -> None:
        """Bind, join the members, start probing; SERVING once the views are loaded."""
        await self.store.ping()
        await self.security.start()
        await self.host.start()
        if self.metrics is not None:
            self.metrics.start()
        self.membership.address = self.host.address
        await self.membership.join()
        self._task = asyncio.create_task(self.manager.run(), name=f"health-{self.member_id}")
        synced = asyncio.create_task(self.manager.synced.wait())
        done, _ = await asyncio.wait([self._task, synced], return_when=asyncio.FIRST_COMPLETED, timeout=10)
        synced.cancel()
        if self._task in done:
            self._task.result()
        await self.host.set_serving()

    async def wait(self) -> None:
        """Return when the member's loops end (they only end by failing: the
        exception is raised here)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self, grace: timedelta = timedelta(seconds=2)) -> None:
        """Stop probing, write pending bookkeeping, leave the members, stop serving."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.manager.flush()
        await self.membership.leave()
        await self.host.stop(grace)
        await self.manager.close()
        await self.security.stop()
        await self.store.close()
        if self.metrics is not None:
            self.metrics.stop()
