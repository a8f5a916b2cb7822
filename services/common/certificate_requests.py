"""What the mesh CA signs when asked (IdentityService/IssueCertificate): pure rules, no gRPC.

Two questions, both answered from the caller's `Principal` and never from the request
alone:

- `requested_key(csr_pem, identity)`: the public key to certify. The CSR must be a PEM
  PKCS#10 request whose signature verifies with its own key (proof the caller holds the
  private key), over an ECDSA P-256 key (what gRPC's TLS and the mesh use). It names
  nothing that counts: its subject is ignored, and a SAN in it may only repeat the
  caller's own identity (anything else is `PermissionDenied`, so a confused or hostile
  client learns at once that it cannot get another identity's certificate).
- `certificate_lifetime(caller, ...)`: how long the certificate lives. An agent's (from
  its bootstrap token, or a renewal with its current certificate) lives the configured
  workload lifetime; a user's never outlives the credential it was issued on: the token's
  remaining life, or — a renewal with a user certificate — that certificate's own end,
  so a user's access still ends when the token that began it does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sutradhar._errors import InvalidArgument, PermissionDenied, Unauthenticated
from sutradhar._identity import AGENT, SpiffeId
from sutradhar.services.common.principal import TOKEN, Principal

__all__ = ["MAX_CSR_BYTES", "MIN_LIFETIME", "certificate_lifetime", "requested_key"]

#: Largest CSR accepted (a P-256 CSR is well under 1 KiB).
MAX_CSR_BYTES: Final = 16 * 1024
#: A certificate shorter than this is not worth issuing: the credential it would rest on is
#: about to expire (get a new token).
MIN_LIFETIME: Final = timedelta(seconds=30)

_FIELD: Final = "csr_pem"


def requested_key(csr_pem: bytes, identity: SpiffeId) -> ec.EllipticCurvePublicKey:
    """The CSR's public key, after checking the CSR (see the module docstring)."""
    if not csr_pem:
        raise InvalidArgument("csr_pem: is required: a PEM certificate signing request (PKCS#10) signed with "
                              "the new ECDSA P-256 key", field=_FIELD)
    if len(csr_pem) > MAX_CSR_BYTES:
        raise InvalidArgument(f"csr_pem: {len(csr_pem)} bytes, at most {MAX_CSR_BYTES}", field=_FIELD)
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise InvalidArgument("csr_pem: is not a PEM certificate signing request "
                              "(-----BEGIN CERTIFICATE REQUEST-----)", field=_FIELD) from None
    if not csr.is_signature_valid:
        raise InvalidArgument("csr_pem: its signature does not verify with its own public key: sign the request "
                              "with the private key it carries", field=_FIELD)
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidArgument(f"csr_pem: the key is a {type(key).__name__.lstrip('_')}; the mesh certifies "
                              "ECDSA P-256 keys only", field=_FIELD)
    _check_names(csr, identity)
    return key


def _check_names(csr: x509.CertificateSigningRequest, identity: SpiffeId) -> None:
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    own = {str(identity), identity.dns_name()}
    asked = [*sans.get_values_for_type(x509.UniformResourceIdentifier), *sans.get_values_for_type(x509.DNSName)]
    others = [name for name in asked if name not in own]
    if others or sans.get_values_for_type(x509.IPAddress):
        shown = ", ".join(others[:3]) or "an IP address"
        raise PermissionDenied(
            f"{identity} may not obtain a certificate for {shown}: the mesh issues a certificate only for the "
            "caller's own identity (the token's subject, or the client certificate's); leave the CSR's names "
            "empty, or use a credential of the identity you need"
        )


def certificate_lifetime(
    caller: Principal,
    now: datetime,
    workload_lifetime: timedelta,
    *,
    peer_not_after: datetime | None = None,
) -> timedelta:
    """How long a certificate issued to `caller` at `now` lives (see the module docstring).
    `peer_not_after`: the end of the client certificate the call came with, if any.
    Unauthenticated when the credential has less than `MIN_LIFETIME` left."""
    if caller.identity.kind == AGENT:
        return workload_lifetime
    if caller.via == TOKEN:
        end = caller.expires_at
        what = f"token {caller.token_id}"
        renew = "mint a new token (`sutradhar token create`)"
    else:
        end = peer_not_after
        what = "the client certificate"
        renew = "log in again with a token (`sutradhar login --token-file FILE`)"
    if end is None:
        raise Unauthenticated(f"{caller.name}: the end of its credential is unknown, so no certificate is issued; "
                              f"{renew}")
    left = end - now
    if left < MIN_LIFETIME:
        raise Unauthenticated(f"{caller.name}: {what} expires at {end.isoformat()}, too soon for a certificate; "
                              f"{renew}")
    return min(workload_lifetime, left)
