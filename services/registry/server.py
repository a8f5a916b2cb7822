"""RegistryConfig and RegistryServer: the registry as a gRPC server on etcd."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sutradhar._aio import cancel_until_done
from sutradhar._errors import FailedPrecondition, SutradharError
from sutradhar._hosting import GrpcHost
from sutradhar.services.common.audit import AuditLog
from sutradhar.services.common.authority import load_authority
from sutradhar.services.common.encryption import EncryptionConfig
from sutradhar.services.common.log_context import LogContextMiddleware
from sutradhar.services.common.metrics_etcd import RegistryObjects
from sutradhar.services.common.metrics_rpc import ServiceMetrics
from sutradhar.services.common.quota_store import QuotaAdmission, QuotaStore
from sutradhar.services.common.rolebindings import RoleBindingStore
from sutradhar.services.common.security import SecurityStack
from sutradhar.services.common.store import EtcdEndpoint, Store
from sutradhar.services.common.tokens import IssuerKey, TokenIssuer
from sutradhar.services.common.tracing import TracingMiddleware
from sutradhar.services.registry.agents import Agents
from sutradhar.services.registry.audit_servicer import SERVICE_NAME as AUDIT_SERVICE_NAME
from sutradhar.services.registry.audit_servicer import add_audit_service
from sutradhar.services.registry.config import RegistryConfig
from sutradhar.services.registry.configmap_servicer import CONFIGMAP_SERVICE_NAME, add_configmap_service
from sutradhar.services.registry.identity_servicer import SERVICE_NAME as IDENTITY_SERVICE_NAME
from sutradhar.services.registry.identity_servicer import IdentityServicer, add_identity_service
from sutradhar.services.registry.instances import Instances
from sutradhar.services.registry.load_reports import LoadReports
from sutradhar.services.registry.quota_servicer import QUOTA_SERVICE_NAME, add_quota_service
from sutradhar.services.registry.ratelimit_servicer import (
    RATELIMIT_SERVICE_NAME,
    add_ratelimit_service,
    rate_limit_store,
)
from sutradhar.services.registry.rbac_servicer import RBAC_SERVICE_NAME, add_rbac_service
from sutradhar.services.registry.scrape_targets import PATH as SCRAPE_TARGETS_PATH
from sutradhar.services.registry.scrape_targets import ScrapeTargets, read_instances
from sutradhar.services.registry.secret_servicer import SECRET_SERVICE_NAME, add_secret_service
from sutradhar.services.registry.secrets import ConfigMapStore, SecretStore
from sutradhar.services.registry.servicer import SERVICE_NAME, RegistryServicer
from sutradhar.services.registry.token_servicer import SERVICE_NAME as TOKEN_SERVICE_NAME
from sutradhar.services.registry.token_servicer import add_token_service
from sutradhar.services.registry.watch import Watcher
from sutradhar.v1 import registry_pb2_grpc

log = logging.getLogger(__name__)


def _check_bootstrap(config: RegistryConfig) -> None:
    if config.bootstrap_port is None:
        return
    if config.insecure:
        raise FailedPrecondition("registry: --bootstrap-port exchanges tokens for certificates; an --insecure "
                                 "mesh has neither: drop --bootstrap-port or --insecure")
    if config.ca_dir is None:
        raise FailedPrecondition("registry: --bootstrap-port issues certificates, so the registry needs the mesh CA: "
                                 "pass --ca-dir (SUTRADHAR_REGISTRY_CA_DIR), the directory `sutradhar up` makes in "
                                 "its state directory's pki/")
    if config.token_issuer_key_file is None and config.token_public_key_file is None:
        raise FailedPrecondition("registry: --bootstrap-port takes bearer tokens, so the registry needs a token key: "
                                 "pass --token-issuer-key-file (or --token-public-key-file)")


class RegistryServer:
    """The registry service: agent definitions and live instances in etcd.

    Stateless apart from etcd, so several can run side by side.
    """

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self._closing = asyncio.Event()
        self.tls = config.tls_source("registry", config.host)
        self.store = Store(EtcdEndpoint.parse(config.etcd), timeout=config.etcd_timeout, tls=self.tls)
        self.agents = Agents(self.store, quotas=QuotaAdmission(self.store))
        self.instances = Instances(self.store, trust_domain=config.trust_domain)
        self.watcher = Watcher(
            self.store,
            batch_size=config.watch_batch_size,
            batch_bytes=min(config.watch_batch_bytes, config.max_message_bytes // 2),
            progress_interval=config.watch_progress_interval,
            closing=self._closing,
        )
        issuer_key = None
        if not config.insecure and config.token_issuer_key_file is not None:
            issuer_key = IssuerKey.load_or_create(config.token_issuer_key_file)
        self.audit_log = None if config.insecure else AuditLog(
            self.store, retention_count=config.audit_retention_count, retention_age=config.audit_retention_age
        )
        self.security = SecurityStack(
            config, self.store, service="registry", audit_log=self.audit_log,
            token_keys=[issuer_key.public_key()] if issuer_key is not None else [],
        )
        _check_bootstrap(config)
        identity = None
        if not config.insecure and config.ca_dir is not None:
            authority = load_authority(config.ca_dir, config.trust_domain, service="registry",
                                       purpose="IdentityService issues certificates of the mesh CA")
            identity = IdentityServicer(authority, lifetime=config.workload_cert_lifetime)
        # Secrets and ConfigMaps exist in an insecure mesh too (still sealed at rest).
        encryption = EncryptionConfig.load(config.encryption_config) if config.encryption_config else None
        services = [SERVICE_NAME, QUOTA_SERVICE_NAME, SECRET_SERVICE_NAME, CONFIGMAP_SERVICE_NAME,
                    RATELIMIT_SERVICE_NAME]
        if not config.insecure:  # the access APIs exist only where there is access control
            services += [RBAC_SERVICE_NAME, AUDIT_SERVICE_NAME] + ([TOKEN_SERVICE_NAME] if issuer_key else [])
            services += [IDENTITY_SERVICE_NAME] if identity is not None else []
        self.metrics = ServiceMetrics.of(config)
        self._objects: RegistryObjects | None = None
        self._counting: asyncio.Task[None] | None = None
        self.scrape_targets: ScrapeTargets | None = None
        """The agents' /metrics for Prometheus's HTTP discovery, served on the metrics port at
        `scrape_targets.PATH` (None: metrics off)."""
        if self.metrics is not None:
            self.metrics.etcd.instrument(self.store)
            self._objects = RegistryObjects(self.metrics.registry, self.store)
            self.scrape_targets = ScrapeTargets(lambda: read_instances(self.store))
            self.metrics.endpoint.documents[SCRAPE_TARGETS_PATH] = self.scrape_targets.document
        self._host = GrpcHost(
            service_names=services,
            host=config.host,
            port=config.port,
            max_message_bytes=config.max_message_bytes,
            tls=self.tls,
            middleware=[TracingMiddleware("registry"), LogContextMiddleware(), *self.security.middleware,
                        *([self.metrics.rpc] if self.metrics else [])],
            token_port=config.token_port,
        )
        self._host.add_servicer(
            registry_pb2_grpc.add_RegistryServiceServicer_to_server,
            RegistryServicer(self.agents, self.instances, self.watcher, LoadReports(self.store),
                             max_message_bytes=config.max_message_bytes, secured=not config.insecure),
        )
        add_quota_service(self._host, QuotaStore(self.store))
        self.secrets = SecretStore(self.store, encryption)
        add_secret_service(self._host, self.secrets)
        add_configmap_service(self._host, ConfigMapStore(self.store))
        add_ratelimit_service(self._host, rate_limit_store(self.store))
        self._retention: asyncio.Task[None] | None = None
        if self.security.authorizer is not None and self.audit_log is not None:
            add_rbac_service(self._host, RoleBindingStore(self.store), self.security.authorizer, self.audit_log)
            add_audit_service(self._host, self.audit_log)
            if issuer_key is not None:
                issuer = TokenIssuer.for_mesh(issuer_key, config.trust_domain)
                add_token_service(self._host, store=self.store, issuer=issuer, grants=self.security.authorizer)
            if identity is not None:
                add_identity_service(self._host, identity)
        self._bootstrap: GrpcHost | None = None
        if identity is not None and config.bootstrap_port is not None:
            # TLS with the registry's certificate, no client certificate: IssueCertificate only,
            # for a bearer token (the one credential a party without a certificate has).
            self._bootstrap = GrpcHost(
                service_names=[IDENTITY_SERVICE_NAME], host=config.host, port=config.bootstrap_port,
                max_message_bytes=min(config.max_message_bytes, 1024 * 1024), tls=self.tls,
                require_client_auth=False, middleware=self.security.tokens_only_middleware(),
            )
            add_identity_service(self._bootstrap, identity)

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._host.port

    @property
    def address(self) -> str:
        """"host:port" clients dial (after start)."""
        return self._host.address

    @property
    def bootstrap_address(self) -> str | None:
        """"host:port" of the bootstrap port (after start); None when there is none."""
        return self._bootstrap.address if self._bootstrap is not None else None

    @property
    def token_address(self) -> str | None:
        """"host:port" of the token port (bearer tokens, no client certificate), None without one."""
        return self._host.token_address

    async def start(self) -> None:
        """Bind and serve; health turns SERVING. An unreachable etcd is logged,
        not fatal: calls answer UNAVAILABLE until it comes back."""
        try:
            await self.store.ping()
        except SutradharError as err:
            log.warning("%s", err)
        await self.security.start()
        if self.audit_log is not None:
            self._retention = asyncio.create_task(self.audit_log.run_retention(), name="audit-retention")
        await self._host.start()
        if self.scrape_targets is not None:
            self.scrape_targets.bind(asyncio.get_running_loop())
        if self.metrics is not None:
            self.metrics.start()
        if self._objects is not None:
            self._counting = asyncio.create_task(self._objects.run(), name="registry-object-counts")
        if self._bootstrap is not None:
            try:
                await self._bootstrap.start()
            except BaseException:
                await self._host.stop(timedelta(0))
                raise
            await self._bootstrap.set_serving()
        await self._host.set_serving()

    async def stop(self, grace: timedelta = timedelta(seconds=5)) -> None:
        """Graceful stop: NOT_SERVING, end watch streams (UNAVAILABLE, clients
        resume elsewhere), let unary calls finish within `grace`, close etcd."""
        self._closing.set()
        try:
            if self._bootstrap is not None:
                await self._bootstrap.stop(grace)
            await self._host.stop(grace)
        finally:
            await cancel_until_done(task for task in (self._retention, self._counting) if task is not None)
            await self.security.stop()
            await self.store.close()
            if self.metrics is not None:
                self.metrics.stop()
