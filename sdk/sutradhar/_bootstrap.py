"""TLS bootstrapping: exchange a bearer token for a certificate of the mesh CA, then renew it.

Every port of a secured mesh requires a client certificate, so a party that holds only
a token (an agent outside the scheduler with its bootstrap token, a person with a user
token) first trades it at the registry's *bootstrap port* — TLS with the registry's
certificate, no client certificate, IdentityService/IssueCertificate only::

    key  = a new ECDSA P-256 key (it never leaves this process)
    csr  = PKCS#10 request signed with it (no names needed: the mesh uses the token's subject)
    IssueCertificate(csr_pem)  + metadata  authorization: Bearer <token>
      -> certificate for spiffe://<td>/ns/<ns>/agent/<agent-id> (or the user's identity),
         the trust bundle, the SPIFFE ID, the expiry

The client verifies the bootstrap port against the mesh CA file it was given, as
the registry's identity (``registry.service.sutradhar-system.<td>``), so the token
goes to the mesh's registry only. `IssuedTlsSource` keeps the material in memory
(nothing is written to disk) and renews it at 70 % of its life over the registry's
mTLS port, presenting the current certificate and the token (a certificate is issued
for a live token only, so revoking the token ends the identity); if that fails
until the certificate has expired (the agent was stopped for long), it bootstraps
again with the token file, read anew. docs/security.md ("Agents outside the
scheduler") describes the exchange for other languages.
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline of one call, passed to grpc, not an asyncio timeout
from __future__ import annotations

import asyncio
import logging
import os
import random
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sutradhar._backoff import Backoff
from sutradhar._errors import FailedPrecondition, SutradharError, from_rpc_error
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsMaterial, TlsSource, expected_peer_options, secure_channel
from sutradhar.v1 import identity_pb2, identity_pb2_grpc

log = logging.getLogger(__name__)

__all__ = [
    "Bootstrap",
    "IssuedTlsSource",
    "bootstrap_certificate",
    "issue_certificate",
    "new_certificate_request",
    "read_token_file",
    "renew_certificate",
]

#: Deadline of one IssueCertificate call.
DEFAULT_TIMEOUT: Final = timedelta(seconds=10)
#: Retry back-off of a failed renewal (it is tried again until the certificate expires).
RENEW_BACKOFF: Final = Backoff(initial=timedelta(seconds=1), maximum=timedelta(seconds=30))


def new_certificate_request() -> tuple[bytes, bytes]:
    """A new ECDSA P-256 private key (PEM, PKCS#8) and a CSR signed with it (PEM). The CSR
    names nothing: the mesh issues the certificate for the caller's own identity."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def read_token_file(path: Path) -> str:
    """The bearer token in `path` (surrounding whitespace dropped); FailedPrecondition naming
    the file (never the token) when it cannot be read or is empty. A file others may read
    is used, with a warning."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "it is not text"
        raise FailedPrecondition(
            f"cannot read the token file {path} ({reason}); write the token there, e.g. "
            f"`sutradhar token create --agent AGENT_ID --namespace NS > {path}` and `chmod 600 {path}`"
        ) from None
    if not token:
        raise FailedPrecondition(f"the token file {path} is empty; write a token from `sutradhar token create` there")
    if mode & 0o077:
        log.warning("token file %s has mode %o: others can read the token; run `chmod 600 %s`", path, mode, path)
    return token


async def issue_certificate(
    channel: grpc.aio.Channel | object, *, token: str | None = None, timeout: timedelta = DEFAULT_TIMEOUT
) -> TlsMaterial:
    """Call IssueCertificate on `channel` with a new key's CSR (and `token` as the bearer
    credential, when given); the material of the issued certificate and that key."""
    key_pem, csr_pem = new_certificate_request()
    stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[arg-type]
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    try:
        response = await stub.IssueCertificate(
            identity_pb2.IssueCertificateRequest(csr_pem=csr_pem), metadata=metadata,
            timeout=timeout.total_seconds(),
        )
    except grpc.RpcError as err:
        raise from_rpc_error(err, tls=True) from None  # both its channels are TLS
    return TlsMaterial.from_pem(response.certificate_chain_pem, key_pem, response.trust_bundle_pem)


def _registry(trust_domain: str) -> SpiffeId:
    return SpiffeId.service(trust_domain, "registry")


def _check_domain(material: TlsMaterial, trust_domain: str) -> TlsMaterial:
    if material.identity.trust_domain != trust_domain:
        raise FailedPrecondition(f"the registry issued a certificate for {material.identity}, not of trust domain "
                                 f"{trust_domain}; check --trust-domain")
    return material


async def bootstrap_certificate(
    address: str, token: str, trust_bundle: bytes, trust_domain: str, *, timeout: timedelta = DEFAULT_TIMEOUT
) -> TlsMaterial:
    """Exchange `token` for a certificate at the registry's bootstrap port `address`, which
    must present the registry's identity under a CA of `trust_bundle`."""
    credentials = grpc.ssl_channel_credentials(root_certificates=trust_bundle)
    options = expected_peer_options(_registry(trust_domain))
    async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
        material = await issue_certificate(channel, token=token, timeout=timeout)
    return _check_domain(material, trust_domain)


async def renew_certificate(
    address: str, source: TlsSource, token: str, *, timeout: timedelta = DEFAULT_TIMEOUT
) -> TlsMaterial:
    """A new certificate for `source`'s identity from the registry's mTLS port `address`,
    asked for with `source`'s current certificate and the token (the registry issues
    certificates for live tokens only, so a revoked token ends the identity)."""
    trust_domain = source.identity.trust_domain
    channel = secure_channel(address, source, expected=_registry(trust_domain))
    try:
        return _check_domain(await issue_certificate(channel, token=token, timeout=timeout), trust_domain)
    finally:
        await channel.close()


Renew = Callable[["IssuedTlsSource"], Awaitable[TlsMaterial]]


class IssuedTlsSource(TlsSource):
    """TLS material held in memory and renewed by `run()` at 70 % of each certificate's
    life with `renew` (retried with back-off while it fails; `run` never raises).
    Servers and channels built on it follow each renewal (`generation`)."""

    def __init__(self, material: TlsMaterial, *, renew: Renew,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(material=material)
        self._renew = renew
        self._now = now

    def update(self, material: TlsMaterial) -> None:
        """Use `material` from now on (a renewal)."""
        self._material = material
        self.generation += 1
        log.info("renewed the certificate of %s, valid until %s", material.identity, material.not_after.isoformat())

    async def renew(self) -> TlsMaterial:
        """Renew once now."""
        material = await self._renew(self)
        self.update(material)
        return material

    async def run(self, rand: Callable[[], float] = random.random) -> None:
        """Renew at 70 % of each certificate's life until cancelled."""
        failures = 0
        while True:
            if failures:
                delay = RENEW_BACKOFF.seconds(failures, rand)
            else:
                delay = (self.current().renew_at() - self._now()).total_seconds()
            await asyncio.sleep(max(delay, 0.0))
            try:
                await self.renew()
                failures = 0
            except SutradharError as err:
                failures += 1
                log.warning("renewing the certificate of %s failed (%s: %s); it expires at %s, retrying",
                            self.identity, type(err).__name__, err, self.current().not_after.isoformat())


@dataclass(frozen=True)
class Bootstrap:
    """Where and with what a party without a certificate gets one, and where it renews it."""

    address: str
    """The registry's bootstrap port, host:port."""
    token_file: Path
    """The file holding the bearer token (read when needed, never logged)."""
    trust_bundle_file: Path
    """The mesh CA (PEM) the bootstrap port's certificate must verify against."""
    trust_domain: str
    renew_address: str | None = None
    """The registry's mTLS port for renewals; None: renew at the bootstrap port with the token."""
    timeout: timedelta = DEFAULT_TIMEOUT

    def trust_bundle(self) -> bytes:
        try:
            return self.trust_bundle_file.read_bytes()
        except OSError as err:
            raise FailedPrecondition(
                f"cannot read the mesh CA file {self.trust_bundle_file} ({err.strerror}); it verifies the registry's "
                "bootstrap port: copy the mesh's pki/bundle.pem (written by `sutradhar up`) and pass --tls-ca-file"
            ) from None

    async def obtain(self) -> TlsMaterial:
        """A certificate for the token's subject, from the bootstrap port."""
        token = read_token_file(self.token_file)
        try:
            return await bootstrap_certificate(self.address, token, self.trust_bundle(), self.trust_domain,
                                               timeout=self.timeout)
        except SutradharError as err:
            raise type(err)(f"bootstrap port {self.address}: {err.message}") from None

    async def renewed(self, source: IssuedTlsSource) -> TlsMaterial:
        """The next certificate: over the mTLS port with the current one while it is valid,
        else (or without an mTLS address) from the bootstrap port with the token."""
        if self.renew_address and not source.current().expired():
            token = read_token_file(self.token_file)
            return await renew_certificate(self.renew_address, source, token, timeout=self.timeout)
        return await self.obtain()

    async def source(self) -> IssuedTlsSource:
        """Obtain a certificate now; a source that keeps it renewed (run its `run()`)."""
        return IssuedTlsSource(await self.obtain(), renew=self.renewed)
