"""Replica identities: every replica the scheduler starts gets its own certificate.

In a secured mesh (the scheduler has TLS files and a CA, `SchedulerConfig.ca_dir`)
each replica is ``spiffe://<td>/ns/<namespace>/agent/<agent-id>/<instance-id>``
(`SpiffeId.agent`), bound to its namespace, agent id and instance id. Before
the replica starts, the scheduler's CA issues it a certificate into its own
directory::

    <state_dir>/tls/<namespace>/<instance-id>/cert.pem     certificate (0644)
                                              key.pem      private key (0600)
                                              bundle.pem   the mesh trust bundle (0644)

A process replica reads them there (``SUTRADHAR_TLS_CERT_FILE``,
``SUTRADHAR_TLS_KEY_FILE``, ``SUTRADHAR_TLS_CA_FILE``, ``SUTRADHAR_TRUST_DOMAIN``);
a container replica gets the directory mounted read-only at `CONTAINER_MOUNT`
and the variables pointing there. The scheduler renews every live replica's
certificate at 70 % of its life (`ReplicaIdentities.renew_due`, run every
`RENEW_CHECK_PERIOD` by the controller), rewriting the files in place; the
replica's `TlsSource` picks them up without dropping a call. The directory is
removed when the replica is gone. An insecure scheduler issues nothing and
starts replicas with ``SUTRADHAR_INSECURE=1`` instead.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sutradhar._errors import SutradharError
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsFiles
from sutradhar.services.common.authority import DEFAULT_LEAF_LIFETIME, CertificateAuthority, Renewal
from sutradhar.services.common.authority import load_authority as load_mesh_authority
from sutradhar.services.scheduler.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

CERT = "cert.pem"
KEY = "key.pem"
BUNDLE = "bundle.pem"
#: Where a container replica finds its certificate directory (mounted read-only).
CONTAINER_MOUNT = "/run/sutradhar/tls"
#: How often the controller looks for certificates due for renewal.
RENEW_CHECK_PERIOD = timedelta(seconds=1)


@dataclass(frozen=True)
class ReplicaTls:
    """One replica's identity and the host directory that holds its certificate files."""

    identity: SpiffeId
    directory: Path

    def files(self) -> TlsFiles:
        return TlsFiles(self.directory / CERT, self.directory / KEY, self.directory / BUNDLE)

    def env(self, root: str | Path | None = None) -> dict[str, str]:
        """The variables that make an SDK agent serve with this certificate; `root` is
        where the replica sees the directory (default: where it is on the host)."""
        base = Path(root) if root is not None else self.directory
        return {
            "SUTRADHAR_TLS_CERT_FILE": str(base / CERT),
            "SUTRADHAR_TLS_KEY_FILE": str(base / KEY),
            "SUTRADHAR_TLS_CA_FILE": str(base / BUNDLE),
            "SUTRADHAR_TRUST_DOMAIN": self.identity.trust_domain,
        }


def load_authority(ca_dir: Path | None, trust_domain: str) -> CertificateAuthority:
    """The CA a secured scheduler issues replica certificates with (`authority.load_authority`)."""
    return load_mesh_authority(ca_dir, trust_domain, service="scheduler",
                               purpose="with TLS on, every replica gets its own certificate")


class ReplicaIdentities:
    """Issues, renews and removes the certificates of the replicas this scheduler runs."""

    def __init__(
        self,
        authority: CertificateAuthority,
        root: Path,
        *,
        lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.authority = authority
        self.root = Path(root)
        self.lifetime = lifetime
        self.clock = clock
        self.renewals: dict[tuple[str, str], Renewal] = {}
        self.owners: dict[tuple[str, str], tuple[int, int]] = {}
        """(namespace, replica id) -> the uid and gid that must own its files (a container
        replica runs as another user than the scheduler)."""

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def identity(self, namespace: str, agent_id: str, replica_id: str) -> SpiffeId:
        return SpiffeId.agent(self.authority.trust_domain, namespace, agent_id, replica_id)

    def directory(self, namespace: str, replica_id: str) -> Path:
        return self.root / namespace / replica_id

    def issue(
        self, namespace: str, agent_id: str, replica_id: str, *, owner: tuple[int, int] | None = None
    ) -> ReplicaTls:
        """A fresh certificate for the replica (before it starts), renewed from now on; its
        directory and files owned by `owner` (uid, gid) when given, else by this process."""
        tls = ReplicaTls(self.identity(namespace, agent_id, replica_id), self.directory(namespace, replica_id))
        tls.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = (namespace, replica_id)
        if owner is not None:
            self.owners[key] = owner
        renewal = Renewal(self.authority, tls.identity, tls.files(), lifetime=self.lifetime)
        self._renew(key, renewal)
        self.renewals[key] = renewal
        return tls

    def _renew(self, key: tuple[str, str], renewal: Renewal) -> None:
        """Issue and write (handing the files to the replica's user); the next renewal at 70 %
        of the new certificate's validity."""
        renewal.renew(now=self._now)
        owner = self.owners.get(key)
        if owner is not None:
            files = renewal.files
            for path in (files.certificate.parent, files.certificate, files.private_key, files.trust_bundle):
                os.chown(path, *owner)

    def adopt(
        self, namespace: str, agent_id: str, replica_id: str, *, owner: tuple[int, int] | None = None
    ) -> ReplicaTls:
        """Keep renewing a running replica's certificate (after a leader change): its files as
        they are when they load, else a new certificate."""
        tls = ReplicaTls(self.identity(namespace, agent_id, replica_id), self.directory(namespace, replica_id))
        key = (namespace, replica_id)
        if key in self.renewals:
            return tls
        if owner is not None:
            self.owners[key] = owner
        try:
            material = tls.files().load()
        except SutradharError:
            return self.issue(namespace, agent_id, replica_id, owner=owner)
        if material.identity != tls.identity:
            return self.issue(namespace, agent_id, replica_id, owner=owner)
        self.renewals[key] = Renewal(
            self.authority, tls.identity, tls.files(), lifetime=self.lifetime, next_renewal=material.renew_at()
        )
        return tls

    def renew_due(self) -> int:
        """Renew every certificate past 70 % of its life; how many were renewed. A failure is
        logged and tried again at the next check."""
        renewed = 0
        for (namespace, replica_id), renewal in list(self.renewals.items()):
            if not renewal.due(self._now):
                continue
            try:
                self._renew((namespace, replica_id), renewal)
            except (OSError, SutradharError) as err:
                log.warning("renewing the certificate of replica %s/%s failed: %s", namespace, replica_id, err)
                continue
            renewed += 1
        return renewed

    def remove(self, namespace: str, replica_id: str) -> None:
        """The replica is gone: stop renewing, delete its files."""
        self.renewals.pop((namespace, replica_id), None)
        self.owners.pop((namespace, replica_id), None)
        shutil.rmtree(self.directory(namespace, replica_id), ignore_errors=True)

    def keep_only(self, live: Iterable[tuple[str, str]]) -> None:
        """Stop renewing every replica not in `live` ((namespace, replica id)); their files stay
        (another leader may run them)."""
        keep = set(live)
        for key in [k for k in self.renewals if k not in keep]:
            del self.renewals[key]
