"""A secured mesh for tests: a real CA in the test's tmp dir, certificates per party, and the
four services in-process with mutual TLS (no fixture here is insecure).

    pki = Pki.create(tmp_path)                       # CA in tmp_path/pki (ca.pem, ca-key.pem, bundle.pem)
    files = pki.issue(SpiffeId.service(TD, "router"))  # a TlsFiles for one identity
    config = RouterConfig(port=0, registry=..., **pki.settings("router"))

    async with secure_mesh(etcd, tmp_path) as mesh:  # registry + router + health + scheduler
        async with mesh.registry_client() as registry: ...   # as the admin user, over mTLS
        async with mesh.router_client() as router: ...

`mesh.client_source(identity)` makes a TlsSource of any identity of the mesh CA (a user, an
agent, an impostor); `Pki.foreign()` a CA the mesh does not trust.

With `secure_mesh(..., tokens=True)` the registry holds a token issuer key (TokenService) and
every service opens a token port (TLS without a client certificate, bearer token required)::

    token = mesh.mint(SpiffeId.user(TD, ns, "ci"), ns, "viewer")     # signed by the mesh's key
    async with mesh.token_client(RegistryClient, token) as registry: ...  # through the token port
    async with mesh.client(SchedulerClient, ADMIN) as scheduler: ...      # over mTLS, as ADMIN
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sutradhar._clients import HealthClient, RegistryClient, RouterClient, SchedulerClient
from sutradhar._credentials import Credentials
from sutradhar._identity import SYSTEM_NAMESPACE, SpiffeId
from sutradhar._tls import TlsFiles, TlsSource
from sutradhar.services.common.authority import DEFAULT_LEAF_LIFETIME, CertificateAuthority
from sutradhar.services.common.etcd_server import ETCD_SERVICE_NAME, EtcdTls, LocalEtcd, etcd_client_name, free_port
from sutradhar.services.common.tokens import IssuerKey, TokenIssuer
from sutradhar.services.health import HealthConfig, HealthServer
from sutradhar.services.registry.config import RegistryConfig
from sutradhar.services.registry.server import RegistryServer
from sutradhar.services.router.config import RouterConfig
from sutradhar.services.router.server import RouterServer
from sutradhar.services.scheduler.config import SchedulerConfig
from sutradhar.services.scheduler.server import SchedulerServer

TD = "sutradhar.local"
SERVICES = ("registry", "router", "scheduler", "health")
ADMIN = SpiffeId.user(TD, SYSTEM_NAMESPACE, "admin")
HOSTS = ("127.0.0.1", "localhost")
#: How often test parties look at their certificate files (rotation tests).
CHECK_INTERVAL = timedelta(milliseconds=100)
C = TypeVar("C")


def service(name: str) -> SpiffeId:
    return SpiffeId.service(TD, name)


@dataclass
class Pki:
    """A CA (its files in `ca_dir`) and the certificates issued from it into `root`/certs."""

    root: Path
    ca: CertificateAuthority
    ca_dir: Path

    @classmethod
    def create(cls, root: Path, trust_domain: str = TD) -> Pki:
        return cls(root, CertificateAuthority.load_or_create(root / "pki", trust_domain), root / "pki")

    @classmethod
    def foreign(cls, root: Path, trust_domain: str = TD) -> Pki:
        """Another CA of the same trust domain, which the mesh does not trust."""
        return cls.create(root / "foreign", trust_domain)

    def at(self, root: Path) -> Pki:
        """The same CA, issuing into `root` (a test's own directory)."""
        return Pki(root, self.ca, self.ca_dir)

    def issue(
        self, identity: SpiffeId, *, lifetime: timedelta = DEFAULT_LEAF_LIFETIME, hosts: Sequence[str] = HOSTS,
        trust_bundle: bytes | None = None, now: Callable[[], datetime] | None = None, label: str = "",
    ) -> TlsFiles:
        """Issue `identity` a certificate and write its three files (key 0600); `trust_bundle`
        replaces the CA's bundle (an impostor of another CA that trusts the mesh); `now` is the
        issuing time (in the past: an expired certificate); `label` keeps it apart from others
        of the same identity."""
        name = str(identity).removeprefix("spiffe://").replace("/", "_") + (f"-{label}" if label else "")
        directory = self.root / "certs" / name
        files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "bundle.pem")
        issued = self.ca.issue(identity, lifetime=lifetime, hosts=hosts, **({"now": now} if now else {}))
        if trust_bundle is not None:
            issued = type(issued)(issued.certificate_chain, issued.private_key, trust_bundle)
        issued.write(files)
        return files

    def source(self, identity: SpiffeId, **issue: Any) -> TlsSource:
        return TlsSource(self.issue(identity, **issue), check_interval=CHECK_INTERVAL)

    def settings(self, name: str) -> dict[str, Any]:
        """The TLS keyword arguments of a service config (`ServiceSecurity`) for service `name`
        (its certificate carries the name etcd admits mesh services by)."""
        files = self.issue(service(name), hosts=[*HOSTS, etcd_client_name(self.ca.trust_domain)])
        return {
            "tls_cert_file": files.certificate, "tls_key_file": files.private_key,
            "tls_ca_file": files.trust_bundle, "trust_domain": self.ca.trust_domain,
        }


@dataclass
class SecureMesh:
    """The four services with mTLS, and clients of them."""

    pki: Pki
    registry: RegistryServer
    router: RouterServer
    health: HealthServer
    scheduler: SchedulerServer | None
    _sources: dict[SpiffeId, TlsSource] = field(default_factory=dict)
    issuer: TokenIssuer | None = None
    """The registry's token issuer (`secure_mesh(tokens=True)`), for tests that mint locally."""

    def client_source(self, identity: SpiffeId = ADMIN) -> TlsSource:
        if identity not in self._sources:
            # its own files: a client of a service identity must not overwrite that server's
            # (whose certificate carries the name etcd admits mesh services by)
            self._sources[identity] = self.pki.source(identity, label="client")
        return self._sources[identity]

    def registry_client(self, identity: SpiffeId = ADMIN) -> RegistryClient:
        return RegistryClient(self.registry.address, tls=self.client_source(identity), expected=service("registry"))

    def router_client(self, identity: SpiffeId = ADMIN) -> RouterClient:
        return RouterClient(self.router.address, tls=self.client_source(identity), expected=service("router"))

    def health_client(self, identity: SpiffeId = ADMIN) -> HealthClient:
        return HealthClient(self.health.address, tls=self.client_source(identity), expected=service("health"))

    def scheduler_client(self, identity: SpiffeId = ADMIN) -> SchedulerClient:
        assert self.scheduler is not None
        return SchedulerClient(self.scheduler.address, tls=self.client_source(identity), expected=service("scheduler"))

    def server(self, name: str) -> Any:
        """The server of mesh service `name` (registry, router, scheduler, health)."""
        found = {"registry": self.registry, "router": self.router, "health": self.health,
                 "scheduler": self.scheduler}[name]
        assert found is not None, f"this mesh runs no {name}"
        return found

    def client(self, cls: type[C], identity: SpiffeId = ADMIN, *, token: str | None = None) -> C:
        """A client of class `cls` (any `sutradhar._clients` client of a mesh service) over
        mTLS as `identity`, sending `token` too when given."""
        name: str = cls._SERVICE  # type: ignore[attr-defined]
        return cls(self.server(name).address, tls=self.client_source(identity),  # type: ignore[call-arg]
                   token=token, expected=service(name))

    def token_credentials(self, token: str) -> Credentials:
        """What a caller holding only `token` presents (no certificate; it verifies the mesh CA)."""
        return Credentials(token=token, trust_domain=TD, trust_bundle=self.pki.ca_dir / "bundle.pem")

    def token_client(self, cls: type[C], token: str) -> C:
        """A client of class `cls` through its service's token port, presenting `token` only."""
        name: str = cls._SERVICE  # type: ignore[attr-defined]
        address = self.server(name).token_address
        assert address is not None, "start the mesh with secure_mesh(..., tokens=True)"
        return cls(address, credentials=self.token_credentials(token))  # type: ignore[call-arg]

    def mint(self, subject: SpiffeId, namespace: str, role: str, ttl: timedelta = timedelta(hours=1)) -> str:
        """A token signed by the mesh's issuer key (no record: records are the TokenService's)."""
        assert self.issuer is not None, "start the mesh with secure_mesh(..., tokens=True)"
        return self.issuer.mint(subject, namespace, role, ttl).token


@dataclass(frozen=True)
class SecureEtcd:
    """A real etcd with TLS and client-certificate auth, and the CA its clients' certificates
    must come from (the session's: tests/conftest.py `secure_etcd`)."""

    endpoint: str
    pki: Pki


def start_secure_etcd(root: Path) -> tuple[LocalEtcd, SecureEtcd]:
    """A CA in `root` and an etcd with TLS whose certificate it issued (the caller stops it)."""
    pki = Pki.create(root)
    files = pki.issue(SpiffeId.service(TD, ETCD_SERVICE_NAME))
    etcd = LocalEtcd(root / "data", client_port=free_port(), log_path=root / "etcd.log",
                     tls=EtcdTls(files, etcd_client_name(TD)))
    etcd.start()
    return etcd, SecureEtcd(etcd.endpoint, pki)


@contextlib.asynccontextmanager
async def secure_mesh(
    secured: SecureEtcd,
    root: Path,
    *,
    scheduler: bool = True,
    replica_cert_lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
    tokens: bool = False,
    router_options: dict[str, Any] | None = None,
    registry_options: dict[str, Any] | None = None,
    **scheduler_options: Any,
) -> AsyncIterator[SecureMesh]:
    """Registry, router, health member and (with `scheduler`) a scheduler over mTLS, on port 0,
    each with its own certificate of the secured etcd's CA (issued into `root`); the scheduler
    issues replica certificates from it. With `tokens`, the registry holds a token issuer key
    (root/token-issuer.pem: TokenService) and every service verifies its tokens and opens a
    token port. `router_options` go into RouterConfig, `registry_options` into RegistryConfig
    (a CA directory, a bootstrap port). Everything stops on exit."""
    pki = secured.pki.at(root)
    etcd = secured.endpoint
    started: list[Any] = []
    issuer = None
    token_settings: dict[str, Any] = {}
    registry_tokens: dict[str, Any] = {}
    if tokens:
        key = IssuerKey.load_or_create(root / "token-issuer.pem")
        public = root / "token-issuer.pub.pem"
        public.write_bytes(key.public_pem())
        issuer = TokenIssuer.for_mesh(key, TD)
        token_settings = {"token_port": 0, "token_public_key_file": public}
        registry_tokens = {"token_port": 0, "token_issuer_key_file": root / "token-issuer.pem"}
    try:
        registry = RegistryServer(RegistryConfig(port=0, etcd=etcd, **registry_tokens, **pki.settings("registry"),
                                                 **(registry_options or {})))
        await registry.start()
        started.append(registry)
        router = RouterServer(RouterConfig(port=0, registry=registry.address, etcd=etcd, **token_settings,
                                           **(router_options or {}), **pki.settings("router")))
        await router.start()
        started.append(router)
        health = HealthServer(HealthConfig(port=0, etcd=etcd, member_ttl=timedelta(seconds=2),
                                           flush_interval=timedelta(milliseconds=500), **token_settings,
                                           **pki.settings("health")))
        await health.start()
        started.append(health)
        sched = None
        if scheduler:
            values: dict[str, Any] = dict(
                port=0, etcd=etcd, registry=registry.address, state_dir=root / "scheduler-state",
                member_id=f"secure-{root.name[:40]}", election_ttl=timedelta(seconds=2),
                instance_ttl=timedelta(seconds=6), resync_period=timedelta(seconds=2),
                stop_grace=timedelta(seconds=3), drain_delay=timedelta(milliseconds=100),
                backoff_base=timedelta(milliseconds=300), backoff_max=timedelta(seconds=2),
                monitor_period=timedelta(milliseconds=100), ca_dir=pki.ca_dir,
                replica_cert_lifetime=replica_cert_lifetime, **token_settings, **pki.settings("scheduler"),
            )
            values.update(scheduler_options)
            sched = SchedulerServer(SchedulerConfig(**values))
            await sched.start()
            started.append(sched)
        assert await router.wait_synced(timedelta(seconds=10)), "the secured router did not sync with the registry"
        yield SecureMesh(pki, registry, router, health, sched, issuer=issuer)
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                await server.stop(timedelta(seconds=1))
        # A scheduler leaves its replicas running for the next leader; a test's mesh must not.
        from sutradhar.services.scheduler.cleanup import stop_replicas

        with contextlib.suppress(Exception):
            await stop_replicas(root / "scheduler-state", grace=timedelta(seconds=2))
