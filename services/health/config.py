"""`HealthConfig`: how one health member runs, and its flags and SUTRADHAR_* variables (`SETTINGS`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

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
from sutradhar.services.common.security_config import ServiceSecurity


def new_member_id() -> str:
    """A fresh member id: "health-" and 8 hex digits."""
    return f"health-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class HealthConfig(ServiceSecurity):
    """How one health member runs."""

    host: str = "127.0.0.1"
    """Interface the API listens on."""
    port: int = setting(50054, kind=PORT)
    """API port; 0 picks a free one."""
    metrics: bool = setting(True, kind=BOOLEAN)
    """Serve Prometheus metrics over HTTP at /metrics (docs/observability.md, "Metrics")."""
    metrics_port: int = setting(0, kind=PORT)
    """HTTP port of /metrics, on `host`; 0 picks a free one (announced at start)."""
    etcd: str = setting("127.0.0.1:2379", shared=True)
    """etcd endpoint, host:port."""
    member_id: str = setting(default_factory=new_member_id, shown_default="health-<8 hex digits>, new per start")
    """This member's id under /sutradhar/v1/members/health/."""
    member_ttl: timedelta = setting(timedelta(seconds=5), kind=POSITIVE_DURATION)
    """Lease TTL of the member key: a dead member's instances move within it."""
    flush_interval: timedelta = setting(timedelta(seconds=10), kind=POSITIVE_DURATION)
    """Longest time probe bookkeeping stays unwritten (state changes are immediate)."""
    probe_concurrency: int = setting(256, kind=COUNT)
    """Probes in flight at once."""
    write_concurrency: int = setting(32, kind=COUNT)
    """etcd writes in flight at once."""
    log_level: str = log_level_setting("INFO")
    """Logging level of `python -m sutradhar.services.health`."""
    log_format: str = log_format_setting()
    """Log line format: text, or json (one object per line with time, level, service, logger, message and the call's
    request_id, trace_id, namespace, agent, instance where known; docs/observability.md)."""


#: HealthConfig's flags and variables: SUTRADHAR_HEALTH_<FIELD>, or SUTRADHAR_<FIELD> where shared.
SETTINGS = Settings(HealthConfig, env_prefix="HEALTH_")
