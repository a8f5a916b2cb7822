"""`ServiceSecurity`: the security settings every mesh service's config inherits — the
server identity and trust of `sutradhar._security_settings.SecuritySettings`, plus the key
that verifies bearer tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sutradhar._security_settings import SecuritySettings
from sutradhar._settings import setting


@dataclass(frozen=True)
class ServiceSecurity(SecuritySettings):
    """Identity, trust and token verification of a mesh service."""

    token_public_key_file: Path | None = setting(None, shared=True)
    """PEM public key(s) of the mesh's token issuer; bearer tokens signed by them are accepted
    (several keys, concatenated, during an issuer key rotation). None: only certificates."""
