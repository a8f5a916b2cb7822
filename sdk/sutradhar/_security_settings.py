"""`SecuritySettings`: how a server proves who it is and whom it trusts — one definition
for the SDK's agent server and the four services (each config inherits it).

A server runs with mutual TLS from three files (`tls_cert_file`, `tls_key_file`,
`tls_ca_file`) — issued by `sutradhar up`'s CA, by the scheduler for its replicas,
or by the operator's own CA — or, for development only, with `insecure`:
plaintext and no authentication, refused on any address but loopback and
announced by a warning on every start.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from sutradhar._errors import FailedPrecondition
from sutradhar._identity import DEFAULT_TRUST_DOMAIN, validate_trust_domain
from sutradhar._settings import setting
from sutradhar._tls import TlsFiles, TlsSource

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether `host` (a listen address) is a loopback address."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SecuritySettings:
    """Identity and trust of a server (inherited by every server's config)."""

    tls_cert_file: Path | None = None
    """PEM certificate (chain) this server presents; its URI SAN is its SPIFFE ID.
    Rewritten files are picked up while running (rotation)."""
    tls_key_file: Path | None = None
    """PEM private key of tls_cert_file (keep it 0600)."""
    tls_ca_file: Path | None = setting(None, shared=True)
    """PEM trust bundle: the CA certificates whose certificates this server accepts
    (old and new during a CA rotation)."""
    trust_domain: str = setting(DEFAULT_TRUST_DOMAIN, shared=True)
    """SPIFFE trust domain of the mesh; identities of other trust domains are refused."""
    insecure: bool = setting(False, shared=True)
    """Serve plaintext with no authentication: development only, refused on an address
    other than loopback, and warned about on every start."""

    def tls_files(self) -> TlsFiles | None:
        """The three files, or None when none is set."""
        given = (self.tls_cert_file, self.tls_key_file, self.tls_ca_file)
        if not any(given):
            return None
        if not all(given):
            raise FailedPrecondition(
                "--tls-cert-file, --tls-key-file and --tls-ca-file go together: set all three "
                "(or none, with --insecure, for development)"
            )
        assert self.tls_cert_file and self.tls_key_file and self.tls_ca_file
        return TlsFiles(self.tls_cert_file, self.tls_key_file, self.tls_ca_file)

    def tls_source(self, what: str, host: str) -> TlsSource | None:
        """The TLS material this server serves with; None when `insecure` (after the checks
        and the warning). FailedPrecondition saying how to fix a server with neither."""
        validate_trust_domain(self.trust_domain)
        files = self.tls_files()
        if self.insecure:
            if files is not None:
                raise FailedPrecondition(f"{what}: --insecure and --tls-* files contradict each other; drop one")
            if not is_loopback(host):
                raise FailedPrecondition(
                    f"{what}: --insecure is refused on {host}: without TLS and authentication anyone who reaches "
                    "the address controls the mesh; listen on 127.0.0.1, or drop --insecure and give certificates"
                )
            log.warning(
                "%s runs INSECURE on %s: plaintext, no authentication, no authorization (development only)", what, host
            )
            return None
        if files is None:
            raise FailedPrecondition(
                f"{what} needs a certificate: pass --tls-cert-file, --tls-key-file and --tls-ca-file "
                "(`sutradhar up` issues them from its CA; or bring your own CA's), or --insecure on a loopback "
                "address for development"
            )
        return TlsSource(files)
