"""The scheduler service: the SchedulerService API, leader election and the
deployment controller in one process.

Every replica serves the API (reads and writes go to etcd); only the elected
leader runs replicas. The servicer is thin: decode -> `Deployments` -> encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

import grpc

from sutradhar._clients import RegistryClient
from sutradhar._credentials import Credentials
from sutradhar._errors import NotFound, SutradharError
from sutradhar._hosting import GrpcHost
from sutradhar._secret_clients import SecretClient
from sutradhar.services.common.log_context import LogContextMiddleware
from sutradhar.services.common.metrics_rpc import ServiceMetrics
from sutradhar.services.common.security import SecurityStack
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.common.tracing import TracingMiddleware
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.controller import Controller
from sutradhar.services.scheduler.deployments import Deployments
from sutradhar.services.scheduler.election import LeaderElection
from sutradhar.services.scheduler.identities import ReplicaIdentities, load_authority
from sutradhar.services.scheduler.runtimes.base import Replica, Runtime
from sutradhar.services.scheduler.runtimes.loader import RuntimeSet
from sutradhar.services.scheduler.secret_resolution import SecretResolver
from sutradhar.v1 import scheduler_pb2 as P
from sutradhar.v1 import scheduler_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "sutradhar.v1.SchedulerService"
#: How often `GetLogs` with follow looks for replicas started since it began.
LOG_RESCAN_PERIOD = timedelta(seconds=1)


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    """gRPC adapter over `Deployments`."""

    def __init__(self, deployments: Deployments) -> None:
        self.d = deployments

    async def CreateDeployment(self, request: P.CreateDeploymentRequest, context: object) -> P.CreateDeploymentResponse:
        return P.CreateDeploymentResponse(deployment=await self.d.create(request.deployment))

    async def ApplyDeployment(self, request: P.ApplyDeploymentRequest, context: object) -> P.ApplyDeploymentResponse:
        d, created = await self.d.apply(request.deployment)
        return P.ApplyDeploymentResponse(deployment=d, created=created)

    async def GetDeployment(self, request: P.GetDeploymentRequest, context: object) -> P.GetDeploymentResponse:
        return P.GetDeploymentResponse(deployment=await self.d.get(request.namespace, request.name))

    async def ListDeployments(self, request: P.ListDeploymentsRequest, context: object) -> P.ListDeploymentsResponse:
        items, revision = await self.d.list(request.namespace)
        return P.ListDeploymentsResponse(deployments=items, revision=revision)

    async def UpdateDeployment(self, request: P.UpdateDeploymentRequest, context: object) -> P.UpdateDeploymentResponse:
        return P.UpdateDeploymentResponse(deployment=await self.d.update(request.deployment))

    async def ScaleDeployment(self, request: P.ScaleDeploymentRequest, context: object) -> P.ScaleDeploymentResponse:
        return P.ScaleDeploymentResponse(
            deployment=await self.d.scale(request.namespace, request.name, request.replicas)
        )

    async def DeleteDeployment(self, request: P.DeleteDeploymentRequest, context: object) -> P.DeleteDeploymentResponse:
        return P.DeleteDeploymentResponse(
            deployment=await self.d.delete(request.namespace, request.name, wait=request.wait)
        )

    async def WatchDeployments(
        self, request: P.WatchDeploymentsRequest, context: object
    ) -> AsyncIterator[P.WatchDeploymentsResponse]:
        async for item in self.d.watch(request.namespace, request.name, include_initial=request.include_initial):
            yield item

    async def PauseRollout(self, request: P.PauseRolloutRequest, context: object) -> P.PauseRolloutResponse:
        return P.PauseRolloutResponse(deployment=await self.d.set_paused(request.namespace, request.name, True))

    async def ResumeRollout(self, request: P.ResumeRolloutRequest, context: object) -> P.ResumeRolloutResponse:
        return P.ResumeRolloutResponse(deployment=await self.d.set_paused(request.namespace, request.name, False))

    async def UndoRollout(self, request: P.UndoRolloutRequest, context: object) -> P.UndoRolloutResponse:
        d, agent = await self.d.undo(request.namespace, request.name, request.to_revision)
        return P.UndoRolloutResponse(deployment=d, agent=agent)

    async def GetLogs(self, request: P.GetLogsRequest, context: object) -> AsyncIterator[P.GetLogsResponse]:
        await self.d.get(request.namespace, request.name)
        found = await self.d.replicas(request.namespace, request.name, request.replica)
        if not found and request.replica:
            raise NotFound(f"replica {request.replica!r} of {request.name!r} is not running here")
        tail = request.tail or 100
        if not request.follow:
            for replica, runtime in found:
                async for line in runtime.logs(replica, tail=tail):
                    yield P.GetLogsResponse(replica=replica.replica_id, line=line)
            return
        # Follow every replica at once, and pick up replicas that start later
        # (a scale-up, a rollout, a restart under a new id) until the caller leaves.
        queue: asyncio.Queue[P.GetLogsResponse] = asyncio.Queue(maxsize=1000)

        async def pump(replica: Replica, runtime: Runtime) -> None:
            async for line in runtime.logs(replica, tail=tail, follow=True):
                await queue.put(P.GetLogsResponse(replica=replica.replica_id, line=line))

        async with asyncio.TaskGroup() as tg:
            followed: set[str] = set()

            def follow_new(replicas: list[tuple[Replica, Runtime]]) -> None:
                for replica, runtime in replicas:
                    if replica.replica_id not in followed:
                        followed.add(replica.replica_id)
                        tg.create_task(pump(replica, runtime))

            async def rescan() -> None:
                while True:
                    await asyncio.sleep(LOG_RESCAN_PERIOD.total_seconds())
                    with contextlib.suppress(SutradharError):
                        follow_new(await self.d.replicas(request.namespace, request.name, request.replica))

            follow_new(found)
            tg.create_task(rescan())
            while True:
                yield await queue.get()


class SchedulerServer:
    """API + election + controller; `start()` binds, `stop()` shuts down gracefully."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        member = config.member_id or f"{socket.gethostname()}-{os.getpid()}"
        self.member_id = member
        self.tls = config.tls_source("scheduler", config.host)
        self.store = Store(EtcdEndpoint.parse(config.etcd), tls=self.tls)
        self.security = SecurityStack(config, self.store, service="scheduler")
        self.identities = None if self.tls is None else ReplicaIdentities(
            load_authority(config.ca_dir, config.trust_domain), config.state_dir / "tls",
            lifetime=config.replica_cert_lifetime,
        )
        self.registry = RegistryClient(
            config.registry, credentials=Credentials(tls=self.tls, trust_domain=config.trust_domain),
        )
        self.runtimes = RuntimeSet(config.state_dir, log_max_bytes=config.log_max_bytes,
                                   log_backups=config.log_backups)
        self.deployments = Deployments(self.store, self.registry, self.runtimes)
        # Secret values come from the registry (RevealSecret, as this scheduler's identity): the
        # scheduler never holds the encryption key.
        self.secrets = SecretClient(
            config.registry, credentials=Credentials(tls=self.tls, trust_domain=config.trust_domain),
        )
        self.controller = Controller(
            self.store, self.registry, self.runtimes, config, tls=self.tls, identities=self.identities,
            resolver=SecretResolver(self.store, self._reveal),
        )
        self.election = LeaderElection(
            self.store, name="scheduler", member_id=member, ttl=config.election_ttl,
            on_change=self.controller.set_leader,
        )
        self.metrics = ServiceMetrics.of(config)
        if self.metrics is not None:
            self.metrics.etcd.instrument(self.store)
        if self.metrics is not None:
            from sutradhar.services.common.metrics_scheduler import SchedulerMetrics

            self.controller.metrics = SchedulerMetrics(self.metrics.registry, self.controller)
        self.host = GrpcHost(service_names=[SERVICE_NAME], host=config.host, port=config.port, tls=self.tls,
                             middleware=[TracingMiddleware("scheduler"), LogContextMiddleware(),
                                         *self.security.middleware,
                                         *([self.metrics.rpc] if self.metrics else [])],
                             token_port=config.token_port)
        self.host.add_servicer(
            scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server, SchedulerServicer(self.deployments)
        )
        self._runner: asyncio.Task[None] | None = None

    async def _reveal(self, namespace: str, name: str) -> Mapping[str, bytes]:
        return dict((await self.secrets.reveal_secret(name, namespace=namespace, timeout=10)).data)

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
    def is_leader(self) -> bool:
        return self.election.is_leader

    async def start(self) -> None:
        """Check etcd, bind, start the controller and the campaign."""
        await self.store.ping()
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        await self.security.start()
        await self.host.start()
        if self.metrics is not None:
            self.metrics.start()
        self._runner = asyncio.create_task(self._run(), name="scheduler")
        await self.host.set_serving()

    async def _stop_runner(self) -> None:
        if self._runner is None:
            return
        self._runner.cancel()
        done, _ = await asyncio.wait({self._runner}, timeout=5)
        if not done:
            stuck = [t for t in asyncio.all_tasks() if not t.done()]
            for task in stuck:
                log.warning("scheduler stop: task still running: %r\n%s", task, "".join(
                    traceback.format_stack(task.get_stack()[-1]) if task.get_stack() else ""))
            # the runner did not end in time: give up leadership anyway (revoke the lease)
            await self.election.resign()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.controller.run())
            tg.create_task(self.election.run())

    async def stop(self, grace: timedelta = timedelta(seconds=5)) -> None:
        """Stop serving and resign; replicas keep running for the next leader.

        The campaign ends whatever else fails here: a scheduler that stopped
        serving but kept leading would keep every other member from acting."""
        try:
            await self.host.stop(grace)
        finally:
            await self._stop_runner()
        for step in (self.runtimes.close(), self.registry.close(), self.secrets.close(), self.security.stop(),
                     self.store.close()):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await step
        if self.metrics is not None:
            self.metrics.stop()


def grpc_code(err: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call (for tests and the CLI)."""
    return err.code()  # type: ignore[no-any-return]
