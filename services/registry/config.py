"""`RegistryConfig`: how the registry runs, and its flags and SUTRADHAR_* variables (`SETTINGS`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES
from sutradhar._settings import (
    BOOLEAN,
    COUNT,
    PORT,
    POSITIVE_DURATION,
    Settings,
    log_format_setting,
    log_level_setting,
    setting,
)
from sutradhar.services.common.audit import DEFAULT_RETENTION_AGE, DEFAULT_RETENTION_COUNT
from sutradhar.services.common.security_config import ServiceSecurity
from sutradhar.services.registry.watch import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SIZE, DEFAULT_PROGRESS_INTERVAL

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class RegistryConfig(ServiceSecurity):
    """How the registry runs."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = setting(DEFAULT_PORT, kind=PORT)
    """Port to listen on; 0 picks a free one."""
    metrics: bool = setting(True, kind=BOOLEAN)
    """Serve Prometheus metrics over HTTP at /metrics (docs/observability.md, "Metrics")."""
    metrics_port: int = setting(0, kind=PORT)
    """HTTP port of /metrics, on `host`; 0 picks a free one (announced at start)."""
    etcd: str = setting("127.0.0.1:2379", shared=True)
    """etcd endpoint, "host:port"."""
    etcd_timeout: timedelta = setting(timedelta(seconds=5), kind=POSITIVE_DURATION)
    """Deadline of one etcd call; past it the RPC fails with UNAVAILABLE (a read)
    or DEADLINE_EXCEEDED (a write, whose outcome is then unknown: read before retrying)."""
    max_message_bytes: int = setting(DEFAULT_MAX_MESSAGE_BYTES, kind=COUNT)
    """Largest request or response; larger requests get RESOURCE_EXHAUSTED, and
    so does a ListAgents/ListInstances whose answer would be larger (narrow
    the filter, or Watch with include_initial)."""
    watch_batch_size: int = setting(DEFAULT_BATCH_SIZE, kind=COUNT)
    """Events per WatchResponse at most."""
    watch_batch_bytes: int = setting(DEFAULT_BATCH_BYTES, kind=COUNT)
    """Encoded bytes per WatchResponse at most (one larger event goes alone);
    keep it well under `max_message_bytes`."""
    watch_progress_interval: timedelta = setting(DEFAULT_PROGRESS_INTERVAL, kind=POSITIVE_DURATION)
    """Quiet time after which a watch sends an empty response with the latest
    revision (when filtered-out changes moved it), keeping resume points recent."""
    audit_retention_count: int = setting(DEFAULT_RETENTION_COUNT, kind=COUNT)
    """Audit records kept at most; past it the oldest are deleted (checked every minute)."""
    audit_retention_age: timedelta = setting(DEFAULT_RETENTION_AGE, kind=POSITIVE_DURATION, shown_default="720h")
    """Audit records older than this are deleted (checked every minute)."""
    token_issuer_key_file: Path | None = None
    """PEM private key (Ed25519 or P-256, 0600) that signs the bearer tokens TokenService mints;
    created there when missing. None: the registry mints no tokens (certificates only)."""
    ca_dir: Path | None = None
    """The mesh CA (a directory with ca.pem, ca-key.pem 0600 and bundle.pem, as `sutradhar up` writes
    in its state directory's pki/) the registry signs certificates with: IdentityService.IssueCertificate
    issues a caller a certificate for its own identity. None: the registry issues no certificates."""
    bootstrap_port: int | None = setting(None, kind=PORT)
    """Port of the bootstrap listener (on `host`): TLS with the registry's certificate but no client
    certificate, serving only IdentityService.IssueCertificate, where a bearer token (an agent's bootstrap
    token, a user's token) is exchanged for a certificate. Needs ca_dir and a token key; 0 picks a free
    port; none: no bootstrap port."""
    workload_cert_lifetime: timedelta = setting(timedelta(hours=24), kind=POSITIVE_DURATION)
    """Lifetime of a certificate IssueCertificate gives an agent (renewed by the agent at 70 %); a user's
    certificate lives no longer, and never past the token (or certificate) it was issued on."""
    encryption_config: Path | None = None
    """Encryption config (YAML, 0600: named 32-byte keys, the first encrypts, all decrypt; docs/secrets.md)
    that seals Secrets at rest; `sutradhar up` writes one in its state directory. None: the registry
    stores no secrets (SecretService answers FAILED_PRECONDITION); ConfigMaps work either way."""
    log_level: str = log_level_setting("INFO")
    """Logging level of `python -m sutradhar.services.registry`."""
    log_format: str = log_format_setting()
    """Log line format: text, or json (one object per line with time, level, service, logger, message and the call's
    request_id, trace_id, namespace, agent, instance where known; docs/observability.md)."""


#: RegistryConfig's flags and variables: SUTRADHAR_REGISTRY_<FIELD>, or SUTRADHAR_<FIELD> where shared.
SETTINGS = Settings(RegistryConfig, env_prefix="REGISTRY_")
