"""sutradhar.v1.IdentityService: the mesh CA signs a caller's CSR into a certificate for the
caller's own identity (hosted by the registry, on its mTLS port and on its bootstrap port).

Authentication found the caller (the bearer token's subject, or the client certificate's
SPIFFE ID); authorization allowed ``create`` on ``certificates`` for it (every role of a
person or an agent does, for its own identity only); audit recorded the issuance. This
servicer checks the CSR and signs: the identity is the caller's, the lifetime from
`certificate_requests.certificate_lifetime`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.timestamp_pb2 import Timestamp

from sutradhar._errors import PermissionDenied
from sutradhar._hosting import GrpcHost
from sutradhar.services.common import principal
from sutradhar.services.common.authority import DEFAULT_LEAF_LIFETIME, CertificateAuthority
from sutradhar.services.common.certificate_requests import certificate_lifetime, requested_key
from sutradhar.services.common.tokens import Clock, utc_now
from sutradhar.v1 import identity_pb2 as pb
from sutradhar.v1 import identity_pb2_grpc

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name

_PEER_CERT: Final = "x509_pem_cert"


def peer_not_after(context: grpc.aio.ServicerContext) -> datetime | None:
    """When the client certificate of the call's connection expires (None without one)."""
    values = context.auth_context().get(_PEER_CERT)
    if not values:
        return None
    try:
        return x509.load_pem_x509_certificate(values[0]).not_valid_after_utc
    except ValueError:
        return None


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    """sutradhar.v1.IdentityService over the mesh's `CertificateAuthority`."""

    def __init__(self, authority: CertificateAuthority, *,
                 lifetime: timedelta = DEFAULT_LEAF_LIFETIME, now: Clock = utc_now) -> None:
        self._authority = authority
        self._lifetime = lifetime
        self._now = now

    async def IssueCertificate(
        self, request: pb.IssueCertificateRequest, context: grpc.aio.ServicerContext
    ) -> pb.IssueCertificateResponse:
        caller = principal.current()
        if caller.via != principal.TOKEN:
            # A certificate is only ever traded for a live token: revoking (or letting expire) the
            # token that bootstrapped an identity ends it within one certificate's life.
            raise PermissionDenied(
                f"{caller.name} may not obtain a certificate with a certificate alone: IssueCertificate needs the "
                "bearer token the identity was given (authorization: Bearer ...), which must still be valid "
                "and not revoked; mint a new one with `sutradhar token create` if it is gone"
            )
        key = requested_key(request.csr_pem, caller.identity)
        now = self._now()
        lifetime = certificate_lifetime(caller, now, self._lifetime, peer_not_after=peer_not_after(context))
        authority = self._authority
        certificate = authority.sign(caller.identity, key, now=lambda: now, lifetime=lifetime)
        expire = Timestamp()
        expire.FromDatetime(certificate.not_valid_after_utc)
        return pb.IssueCertificateResponse(
            certificate_chain_pem=certificate.public_bytes(serialization.Encoding.PEM),
            trust_bundle_pem=authority.bundle_pem(),
            spiffe_id=str(caller.identity),
            expire_time=expire,
        )


def add_identity_service(host: GrpcHost, servicer: IdentityServicer) -> IdentityServicer:
    """Host IdentityService on `host` (through its middleware chain); `host` should list
    `SERVICE_NAME` among its `service_names` (health and reflection)."""
    host.add_servicer(identity_pb2_grpc.add_IdentityServiceServicer_to_server, servicer)
    return servicer
