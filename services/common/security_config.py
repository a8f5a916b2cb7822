"""`ServiceSecurity`: the security settings every mesh service's config inherits — the
server identity and trust of `sutradhar._security_settings.SecuritySettings`, plus the key
that verifies bearer tokens and the control plane's per-principal mutation limit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sutradhar._security_settings import SecuritySettings
from sutradhar._settings import NATURAL, NUMBER, PORT, setting


@dataclass(frozen=True)
class ServiceSecurity(SecuritySettings):
    """Identity, trust and token verification of a mesh service."""

    token_port: int | None = setting(None, kind=PORT)
    """A second port, TLS without a client certificate, for callers holding only a bearer token
    (grpcurl -H 'authorization: Bearer ...', SDKs of other languages, `sutradhar login`): every
    call there needs a token. None: only the mutual-TLS port; 0 picks a free one."""
    token_public_key_file: Path | None = setting(None, shared=True)
    """PEM public key(s) of the mesh's token issuer; bearer tokens signed by them are accepted
    (several keys, concatenated, during an issuer key rotation). None: only certificates."""
    mutation_rate: float = setting(50.0, kind=NUMBER)
    """Mutations per second one principal may make on this registry, scheduler or health service
    (services/common/mutation_limits.py; over it: RESOURCE_EXHAUSTED with grpc-retry-pushback-ms); 0 turns the
    limit off. The mesh's own services are not limited, an --insecure mesh not at all; the router ignores it
    (RateLimit objects limit its calls)."""
    mutation_burst: int = setting(100, kind=NATURAL)
    """Mutations one principal may make at once before `mutation_rate` applies; 0 turns the limit off."""
