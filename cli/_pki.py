"""The certificates and keys of a mesh `sutradhar up` runs, in ``<state>/pki/``.

::

    pki/ca.pem, ca-key.pem, bundle.pem     the mesh CA (services/common/authority.py)
    pki/<service>.pem, <service>-key.pem   registry, router, scheduler, health, etcd
    pki/admin.pem, admin-key.pem           the CLI's cluster admin (user admin of sutradhar-system)
    pki/token-issuer-key.pem               the key that signs bearer tokens (registry only)
    pki/token-issuer.pub.pem               its public key (every service verifies with it)

Everything is created on the first `up` and kept; certificates are renewed at
70 % of their life, at `up` and while it supervises (`renew_due`). Keys are
0600 and the directory 0700.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sutradhar._files import write_atomically
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsFiles
from sutradhar.services.common.authority import (
    BUNDLE,
    DEFAULT_LEAF_LIFETIME,
    CertificateAuthority,
    Renewal,
)
from sutradhar.services.common.etcd_server import ETCD_SERVICE_NAME, etcd_client_name
from sutradhar.services.common.tokens import IssuerKey

#: The CLI's cluster admin certificate lives longer than a workload's (a person's credential).
ADMIN_LIFETIME = timedelta(days=30)
ADMIN_NAME = "admin"
ISSUER_KEY = "token-issuer-key.pem"
ISSUER_PUBLIC_KEY = "token-issuer.pub.pem"


@dataclass
class MeshPki:
    """The CA of one mesh and the certificates it keeps fresh."""

    directory: Path
    trust_domain: str
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    lifetime: timedelta = DEFAULT_LEAF_LIFETIME
    authority: CertificateAuthority = field(init=False)
    _renewals: dict[str, Renewal] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        self.authority = CertificateAuthority.load_or_create(self.directory, self.trust_domain)
        issuer = IssuerKey.load_or_create(self.issuer_key)
        if not self.issuer_public_key.exists() or self.issuer_public_key.read_bytes() != issuer.public_pem():
            write_atomically(self.issuer_public_key, issuer.public_pem(), mode=0o644)

    @classmethod
    def existing(cls, directory: Path) -> MeshPki | None:
        """The PKI an earlier `up` made in `directory` (its CA's trust domain), None if there is none."""
        if not (directory / BUNDLE).exists():
            return None
        return cls(directory, CertificateAuthority.load(directory).trust_domain)

    def flags(self, name: str) -> list[str]:
        """The flags that give service or agent `name` its certificate: --tls-cert-file, ..."""
        files = self.ensure(name)
        return tls_flags(files, self.trust_domain)

    @property
    def bundle(self) -> Path:
        return self.directory / BUNDLE

    def files(self, name: str) -> TlsFiles:
        return TlsFiles(self.directory / f"{name}.pem", self.directory / f"{name}-key.pem", self.bundle)

    @property
    def issuer_key(self) -> Path:
        return self.directory / ISSUER_KEY

    @property
    def issuer_public_key(self) -> Path:
        return self.directory / ISSUER_PUBLIC_KEY

    def _renewal(self, name: str) -> Renewal:
        renewal = self._renewals.get(name)
        if renewal is None:
            if name == ADMIN_NAME:
                identity = SpiffeId.user(self.trust_domain, "sutradhar-system", ADMIN_NAME)
                renewal = Renewal(self.authority, identity, self.files(name), lifetime=ADMIN_LIFETIME)
            else:
                identity = SpiffeId.service(self.trust_domain, name)
                # every service but etcd itself is etcd's client
                hosts = [*self.hosts] + ([] if name == ETCD_SERVICE_NAME else [etcd_client_name(self.trust_domain)])
                renewal = Renewal(self.authority, identity, self.files(name), lifetime=self.lifetime, hosts=hosts)
            self._renewals[name] = renewal
        return renewal

    def ensure(self, name: str) -> TlsFiles:
        """`name`'s certificate files, issued now unless valid ones under 70 % of their life exist."""
        renewal = self._renewal(name)
        if renewal.next_renewal is None:
            try:
                material = renewal.files.load()
            except Exception:
                material = None
            if (
                material is not None
                and material.identity == renewal.identity
                and material.trust_bundle == self.authority.bundle_pem()
            ):
                renewal.next_renewal = material.renew_at()
        if renewal.due():
            renewal.renew()
        return renewal.files

    def agent_flags(self, namespace: str, agent_id: str, instance_id: str) -> list[str]:
        """The flags that give one agent replica `up` runs itself (the demo's) its certificate."""
        name = f"agent-{namespace}-{agent_id}-{instance_id}"
        if name not in self._renewals:
            identity = SpiffeId.agent(self.trust_domain, namespace, agent_id, instance_id)
            self._renewals[name] = Renewal(self.authority, identity, self.files(name), lifetime=self.lifetime)
        return self.flags(name)

    def renew_due(self) -> list[str]:
        """Renew every certificate past 70 % of its life; the names renewed."""
        renewed = []
        for name, renewal in self._renewals.items():
            if renewal.due():
                renewal.renew()
                renewed.append(name)
        return renewed


def tls_flags(files: TlsFiles, trust_domain: str) -> list[str]:
    """The command-line flags of a server (service or agent) that serves with `files`."""
    return ["--tls-cert-file", str(files.certificate), "--tls-key-file", str(files.private_key),
            "--tls-ca-file", str(files.trust_bundle), "--trust-domain", trust_domain]
