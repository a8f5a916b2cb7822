"""`ServiceSecurity`: the security settings every mesh service's config inherits — the
server identity and trust of `sutradhar._security_settings.SecuritySettings`, plus the key
that verifies bearer tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sutradhar._security_settings import SecuritySettings
from sutradhar._settings import PORT, setting


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
