"""RegistryConfig and RegistryServer: the registry as a gRPC server on etcd."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sutradhar._errors import SutradharError
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES, GrpcHost
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.registry.agents import Agents
from sutradhar.services.registry.instances import Instances
from sutradhar.services.registry.servicer import SERVICE_NAME, RegistryServicer
from sutradhar.services.registry.watch import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_PROGRESS_INTERVAL,
    Watcher,
)
from sutradhar.v1 import registry_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class RegistryConfig:
    """How the registry runs."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = DEFAULT_PORT
    """Port to listen on; 0 picks a free one."""
    etcd: str = "127.0.0.1:2379"
    """etcd endpoint, "host:port"."""
    etcd_timeout: timedelta = timedelta(seconds=5)
    """Deadline of one etcd call; past it the RPC fails with UNAVAILABLE (a read)
    or DEADLINE_EXCEEDED (a write, whose outcome is then unknown: read before retrying)."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest request or response; larger requests get RESOURCE_EXHAUSTED, and
    so does a ListAgents/ListInstances whose answer would be larger (narrow
    the filter, or Watch with include_initial)."""
    watch_batch_size: int = DEFAULT_BATCH_SIZE
    """Events per WatchResponse at most."""
    watch_batch_bytes: int = DEFAULT_BATCH_BYTES
    """Encoded bytes per WatchResponse at most (one larger event goes alone);
    keep it well under `max_message_bytes`."""
    watch_progress_interval: timedelta = DEFAULT_PROGRESS_INTERVAL
    """Quiet time after which a watch sends an empty response with the latest
    revision (when filtered-out changes moved it), keeping resume points recent."""


class RegistryServer:
    """The registry service: agent definitions and live instances in etcd.

    Stateless apart from etcd, so several can run side by side.
    """

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self._closing = asyncio.Event()
        self.store = Store(EtcdEndpoint.parse(config.etcd), timeout=config.etcd_timeout)
        self.agents = Agents(self.store)
        self.instances = Instances(self.store)
        self.watcher = Watcher(
            self.store,
            batch_size=config.watch_batch_size,
            batch_bytes=min(config.watch_batch_bytes, config.max_message_bytes // 2),
            progress_interval=config.watch_progress_interval,
            closing=self._closing,
        )
        self._host = GrpcHost(
            service_names=[SERVICE_NAME],
            host=config.host,
            port=config.port,
            max_message_bytes=config.max_message_bytes,
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
