"""RegistryConfig and RegistryServer: the registry as a gRPC server on etcd."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sutradhar._errors import SutradharError
from sutradhar._hosting import GrpcHost
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.registry.agents import Agents
from sutradhar.services.registry.config import RegistryConfig
from sutradhar.services.registry.instances import Instances
from sutradhar.services.registry.servicer import SERVICE_NAME, RegistryServicer
from sutradhar.services.registry.watch import Watcher
from sutradhar.v1 import registry_pb2_grpc

log = logging.getLogger(__name__)

class RegistryServer:
    """The registry service: agent definitions and live instances in etcd.

    Stateless apart from etcd, so several can run side by side.
    """

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self._closing = asyncio.Event()
        self.store = Store(EtcdEndpoint.parse(config.etcd), timeout=config.etcd_timeout)
        self.agents = Agents(self.store)
        self.instances = Instances(self.store, trust_domain=config.trust_domain)
        self.watcher = Watcher(
            self.store,
            batch_size=config.watch_batch_size,
            batch_bytes=min(config.watch_batch_bytes, config.max_message_bytes // 2),
            progress_interval=config.watch_progress_interval,
            closing=self._closing,
        )
        self.tls = config.tls_source("registry", config.host)
        self._host = GrpcHost(
            service_names=[SERVICE_NAME],
            host=config.host,
            port=config.port,
            max_message_bytes=config.max_message_bytes,
            tls=self.tls,
        )
        self._host.add_servicer(
            registry_pb2_grpc.add_RegistryServiceServicer_to_server,
            RegistryServicer(self.agents, self.instances, self.watcher, max_message_bytes=config.max_message_bytes),
        )

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._host.port

    @property
    def address(self) -> str:
        """"host:port" clients dial (after start)."""
        return self._host.address

    async def start(self) -> None:
        """Bind and serve; health turns SERVING. An unreachable etcd is logged,
        not fatal: calls answer UNAVAILABLE until it comes back."""
        try:
            await self.store.ping()
        except SutradharError as err:
            log.warning("%s", err)
        await self._host.start()
        await self._host.set_serving()

    async def stop(self, grace: timedelta = timedelta(seconds=5)) -> None:
        """Graceful stop: NOT_SERVING, end watch streams (UNAVAILABLE, clients
        resume elsewhere), let unary calls finish within `grace`, close etcd."""
        self._closing.set()
        try:
            await self._host.stop(grace)
        finally:
            await self.store.close()
