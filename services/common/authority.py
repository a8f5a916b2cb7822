"""The mesh's built-in certificate authority: it issues short-lived workload certificates.

`sutradhar up` creates one (ECDSA P-256) in the state directory's ``pki/``
and issues every service, the CLI's admin user and (through the scheduler)
every replica a certificate whose one URI SAN is its SPIFFE ID and whose DNS
SANs are the identity's DNS name (what clients verify, see
`sutradhar._identity`) plus any host names given (``localhost``, ``127.0.0.1``
so grpcurl can verify a service it dials by address)::

    pki/ca.pem          this CA's certificate
    pki/ca-key.pem      its private key (0600)
    pki/bundle.pem      the trust bundle: every CA still trusted (after a CA
                        rotation the old one stays until its last leaf expires)

Leaf certificates: CA=false, key usage digitalSignature, EKU serverAuth and
clientAuth, valid from 5 minutes ago (clock skew; a quarter of the lifetime for
short ones) for `lifetime` (24 h by default), renewed at 70 % of their validity
(`Renewal`). Operators who bring their own CA
(SPIRE, cert-manager, Vault) skip all this: services read certificate files
whoever wrote them (`sutradhar._tls`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sutradhar._errors import FailedPrecondition
from sutradhar._files import write_atomically
from sutradhar._identity import SpiffeId, validate_trust_domain
from sutradhar._tls import TlsFiles, TlsMaterial, renew_at

#: Lifetime of a workload certificate unless told otherwise (Dapr's default).
DEFAULT_LEAF_LIFETIME = timedelta(hours=24)
#: Lifetime of a CA `sutradhar up` creates.
DEFAULT_CA_LIFETIME = timedelta(days=365)
#: How far back a certificate's validity starts, for clocks that run a little behind.
CLOCK_SKEW = timedelta(minutes=5)

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
BUNDLE = "bundle.pem"

Now = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the CA issued, its key and the trust bundle, as PEM."""

    certificate_chain: bytes
    private_key: bytes
    trust_bundle: bytes

    def material(self) -> TlsMaterial:
        return TlsMaterial.from_pem(self.certificate_chain, self.private_key, self.trust_bundle)

    def write(self, files: TlsFiles) -> None:
        """Write the three files (key 0600, the others 0644), each atomically; the key
        first, then the certificate, so a reader never pairs a new certificate with an old key
        for long (`TlsSource` keeps the old material until the pair loads)."""
        write_atomically(files.private_key, self.private_key)
        write_atomically(files.certificate, self.certificate_chain, mode=0o644)
        write_atomically(files.trust_bundle, self.trust_bundle, mode=0o644)


class CertificateAuthority:
    """A CA key and certificate, and the bundle of CAs the mesh trusts."""

    def __init__(
        self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey, bundle: Sequence[x509.Certificate]
    ) -> None:
        self.certificate = certificate
        self.key = key
        self.bundle = list(bundle) or [certificate]
        self.trust_domain = _trust_domain_of(certificate)

    @classmethod
    def create(
        cls, trust_domain: str, *, now: Now = _utcnow, lifetime: timedelta = DEFAULT_CA_LIFETIME,
        previous: CertificateAuthority | None = None,
    ) -> CertificateAuthority:
        """A new self-signed CA for `trust_domain`. With `previous` (a CA rotation) the
        bundle keeps the previous CAs that are still valid, so their leaves stay trusted."""
        validate_trust_domain(trust_domain)
        key = ec.generate_private_key(ec.SECP256R1())
        start = now()
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sutradhar"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Sutradhar CA {trust_domain} {start:%Y-%m-%dT%H:%M:%SZ}"),
        ])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - CLOCK_SKEW)
            .not_valid_after(start + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        kept = [] if previous is None else [ca for ca in previous.bundle if ca.not_valid_after_utc > start]
        return cls(certificate, key, [certificate, *kept])

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Read ``ca.pem``, ``ca-key.pem`` and ``bundle.pem`` from `directory`."""
        try:
            certificate = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
            bundle = x509.load_pem_x509_certificates((directory / BUNDLE).read_bytes())
        except (OSError, ValueError) as err:
            raise FailedPrecondition(
                f"cannot load the mesh CA from {directory} ({err}); `sutradhar down --purge` and `sutradhar up` "
                "make a new one"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise FailedPrecondition(f"{directory / CA_KEY} is not an ECDSA key")
        return cls(certificate, key, bundle)

    @classmethod
    def load_or_create(cls, directory: Path, trust_domain: str, *, now: Now = _utcnow) -> CertificateAuthority:
        """The CA in `directory`, created there first if there is none. A CA past 70 % of its
        life is rotated: a new CA, the old one kept in the bundle."""
        if not (directory / CA_CERT).exists():
            ca = cls.create(trust_domain, now=now)
            ca.save(directory)
            return ca
        ca = cls.load(directory)
        if ca.trust_domain != trust_domain:
            raise FailedPrecondition(
                f"the CA in {directory} is for trust domain {ca.trust_domain!r}, not {trust_domain!r}; "
                "use the same --trust-domain, or `sutradhar down --purge` to start over"
            )
        if now() >= renew_at(ca.certificate.not_valid_before_utc, ca.certificate.not_valid_after_utc):
            ca = cls.create(trust_domain, now=now, previous=ca)
            ca.save(directory)
        return ca

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(directory / CA_KEY, _key_pem(self.key))
        write_atomically(directory / CA_CERT, _pem(self.certificate), mode=0o644)
        write_atomically(directory / BUNDLE, self.bundle_pem(), mode=0o644)

    def bundle_pem(self) -> bytes:
        return b"".join(_pem(ca) for ca in self.bundle)

    def issue(
        self,
        identity: SpiffeId,
        *,
        now: Now = _utcnow,
        lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
        hosts: Sequence[str] = (),
    ) -> IssuedCertificate:
        """A new key and a certificate for `identity`, valid for `lifetime` (never past the CA's own end)."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.sign(identity, key.public_key(), now=now, lifetime=lifetime, hosts=hosts)
        return IssuedCertificate(_pem(certificate), _key_pem(key), self.bundle_pem())

    def sign(
        self,
        identity: SpiffeId,
        public_key: ec.EllipticCurvePublicKey,
        *,
        now: Now = _utcnow,
        lifetime: timedelta = DEFAULT_LEAF_LIFETIME,
        hosts: Sequence[str] = (),
    ) -> x509.Certificate:
        """A certificate for `identity` over `public_key` (someone else holds the private key:
        a CSR's, `sutradhar._bootstrap`), valid for `lifetime` (never past the CA's own end)."""
        if identity.trust_domain != self.trust_domain:
            raise FailedPrecondition(
                f"this CA issues identities of trust domain {self.trust_domain!r}, not {identity}"
            )
        start = now()
        end = min(start + lifetime, self.certificate.not_valid_after_utc)
        # Backdated for clocks a little behind, but never by much of a short life, whose
        # renewal point (70 % of the whole validity) would otherwise fall before issuance.
        skew = min(CLOCK_SKEW, lifetime / 4)
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(str(identity)), x509.DNSName(identity.dns_name())
        ]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.dns_name()[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - skew)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )


def load_authority(ca_dir: Path | None, trust_domain: str, *, service: str, purpose: str) -> CertificateAuthority:
    """The CA a secured `service` issues certificates with (`purpose` says what for, in the
    message); FailedPrecondition saying how to fix a missing or foreign one."""
    if ca_dir is None:
        flag = f"SUTRADHAR_{service.upper()}_CA_DIR"
        raise FailedPrecondition(
            f"{service}: {purpose}, so the {service} needs the mesh CA: "
            f"pass --ca-dir ({flag}), a directory with ca.pem, ca-key.pem and bundle.pem "
            "(`sutradhar up` makes it in its state directory's pki/), or run with --insecure for development"
        )
    authority = CertificateAuthority.load(ca_dir)
    if authority.trust_domain != trust_domain:
        raise FailedPrecondition(
            f"{service}: the CA in {ca_dir} issues identities of trust domain {authority.trust_domain!r}, "
            f"but the {service}'s --trust-domain is {trust_domain!r}; use the same one"
        )
    return authority


@dataclass
class Renewal:
    """Keeps one identity's certificate files fresh: issue now, then again at 70 % of each
    certificate's life (`due`), so readers of the files (`sutradhar._tls.TlsSource`) rotate."""

    authority: CertificateAuthority
    identity: SpiffeId
    files: TlsFiles
    lifetime: timedelta = DEFAULT_LEAF_LIFETIME
    hosts: Sequence[str] = ()
    next_renewal: datetime | None = None

    def renew(self, now: Now = _utcnow) -> IssuedCertificate:
        issued = self.authority.issue(self.identity, now=now, lifetime=self.lifetime, hosts=self.hosts)
        issued.write(self.files)
        material = issued.material()
        self.next_renewal = material.renew_at()
        return issued

    def due(self, now: Now = _utcnow) -> bool:
        return self.next_renewal is None or now() >= self.next_renewal


def ca_trust_domain(certificate: x509.Certificate) -> str | None:
    """The trust domain a CA certificate names in its ``spiffe://<td>`` URI SAN, None when none."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://"):
            return uri.removeprefix("spiffe://").rstrip("/")
    return None


def _trust_domain_of(certificate: x509.Certificate) -> str:
    domain = ca_trust_domain(certificate)
    if domain is None:
        raise FailedPrecondition("the CA certificate names no trust domain (no spiffe:// URI SAN)")
    return domain
