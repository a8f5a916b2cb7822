"""Dialing an instance in a secured mesh: the identity it must present, HTTPS with the
mesh certificate, and naming what a peer presented when a handshake fails.

The router and the health members (and the scheduler's readiness wait) dial
agent instances. With TLS on (the service has a `TlsSource`):

- a gRPC instance is dialed over mutual TLS, presenting the service's own
  certificate and requiring the instance's registered `Instance.identity`
  (`expected_identity`); an instance that registered no identity is refused
  before any byte is sent (`NoIdentity`), since anyone could answer on its
  address;
- an ``https://`` instance (an HTTP agent) is dialed presenting the mesh
  client certificate and trusting the mesh bundle as well as the system's CAs
  (`MeshHttps`); when it registered an identity, its certificate must hold that
  identity's DNS name (``sni_hostname``). A plain ``http://`` endpoint stays
  possible, for an external URL an admin registered: nothing proves who answers
  there, so register such agents only where that is acceptable.

When a handshake fails, `presented_identity` connects once more and reads the
certificate the peer presented, so the failure can say "presented X, registered
Y" instead of gRPC's bare "failed to connect".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509

from sutradhar._errors import InvalidArgument
from sutradhar._identity import SpiffeId
from sutradhar._tls import TlsMaterial, TlsSource, identity_of_certificate

__all__ = ["MeshHttps", "NoIdentity", "expected_identity", "presented_identity"]


class NoIdentity(Exception):
    """An instance in a secured mesh registered no (valid) identity: it gets no task and fails its probes."""


def expected_identity(instance_id: str, endpoint: str, identity: str) -> SpiffeId:
    """The identity `instance_id` at `endpoint` must present; NoIdentity saying why there is none."""
    if not identity:
        raise NoIdentity(
            f"instance {instance_id!r} ({endpoint}) registered no identity; in a mesh with TLS only an instance "
            "that registered the SPIFFE ID its certificate holds is dialed (the scheduler registers its replicas "
            "so; a self-registering agent needs --tls-cert-file, --tls-key-file and --tls-ca-file)"
        )
    try:
        return SpiffeId.parse(identity)
    except InvalidArgument as err:
        raise NoIdentity(f"instance {instance_id!r} ({endpoint}) registered an invalid identity: {err}") from None


def _client_context(material: TlsMaterial, *, system_roots: bool) -> ssl.SSLContext:
    context = ssl.create_default_context() if system_roots else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=material.trust_bundle.decode())
    _load_chain(context, material)
    return context


def _load_chain(context: ssl.SSLContext, material: TlsMaterial) -> None:
    """`load_cert_chain` wants files: write the pair to a private temporary directory, load, remove."""
    with tempfile.TemporaryDirectory(prefix="sutradhar-tls-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(material.private_key)
        cert.write_bytes(material.certificate_chain)
        context.load_cert_chain(cert, key)


class MeshHttps:
    """The SSL context HTTPS clients of the mesh use: the service's client certificate
    (reloaded into the same context after a rotation, so pooled clients keep it) and
    the mesh bundle plus the system's CAs."""

    def __init__(self, source: TlsSource) -> None:
        self.source = source
        self._generation = source.generation
        self.context = _client_context(source.current(), system_roots=True)

    def refresh(self) -> ssl.SSLContext:
        """The context, with the current certificate (call before each request; cheap)."""
        material = self.source.current()
        if self.source.generation != self._generation:
            self._generation = self.source.generation
            _load_chain(self.context, material)
            self.context.load_verify_locations(cadata=material.trust_bundle.decode())
        return self.context

    @staticmethod
    def extensions(identity: SpiffeId | None) -> dict[str, Any]:
        """httpx request extensions that make the handshake verify `identity` (none: the URL's host)."""
        return {} if identity is None else {"sni_hostname": identity.dns_name()}


async def presented_identity(host: str, port: int, source: TlsSource, *, within: float = 1.0) -> str:
    """What the peer at `host`:`port` presents: its certificate's SPIFFE ID, or a description
    of why there is none ("" when it cannot be reached at all). For error messages."""
    material = source.current()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read the certificate; nothing is sent
    _load_chain(context, material)
    context.set_alpn_protocols(["h2"])
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError, ssl.SSLError):
        return ""
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if not der:
        return "no certificate"
    certificate = x509.load_der_x509_certificate(der)
    try:
        identity = str(identity_of_certificate(certificate))
    except InvalidArgument as err:
        identity = f"a certificate without a Sutradhar identity ({err})"
    chained = any(
        ca.subject == certificate.issuer for ca in x509.load_pem_x509_certificates(material.trust_bundle)
    )
    return identity if chained else f"{identity} from a CA the mesh does not trust"
