"""`RouterConfig`: how one router runs, and its flags and SUTRADHAR_* variables (`SETTINGS`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sutradhar import _event_loop as eventloop
from sutradhar._hosting import DEFAULT_MAX_MESSAGE_BYTES
from sutradhar._settings import (
    BOOLEAN,
    COUNT,
    PORT,
    POSITIVE_DURATION,
    Settings,
    choice,
    log_format_setting,
    log_level_setting,
    setting,
)
from sutradhar.services.common.security_config import ServiceSecurity
from sutradhar.services.router.ratelimits import DEFAULT_MAX_CALLERS


@dataclass(frozen=True)
class RouterConfig(ServiceSecurity):
    """How one router runs."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = setting(50052, kind=PORT)
    """Port to listen on; 0 picks a free one."""
    metrics: bool = setting(True, kind=BOOLEAN)
    """Serve Prometheus metrics over HTTP at /metrics (docs/observability.md, "Metrics")."""
    metrics_port: int = setting(0, kind=PORT)
    """HTTP port of /metrics, on `host`; 0 picks a free one (announced at start)."""
    registry: str | None = setting("127.0.0.1:50051", shared=True)
    """Registry address whose Watch feeds the view; empty (or None) leaves the view to the caller, as tests do."""
    etcd: str | None = setting(None, shared=True)
    """etcd endpoint for publishing load; empty (or None) turns load publishing off."""
    max_message_bytes: int = setting(DEFAULT_MAX_MESSAGE_BYTES, kind=COUNT, shared=True)
    """Largest message accepted from callers or agents (RESOURCE_EXHAUSTED above it)."""
    router_id: str = setting("", env="SUTRADHAR_ROUTER_ID")
    """This router's identity in load keys and stats; generated when empty."""
    load_period: timedelta = setting(timedelta(seconds=1), kind=POSITIVE_DURATION)
    """How often load is published."""
    membership_ttl: timedelta = setting(timedelta(seconds=10), kind=POSITIVE_DURATION)
    """Lease TTL of this router's member key (with etcd): a router that dies stops counting for shared rate
    limits at most this long after, and until then the others keep their smaller shares."""
    rate_limit_max_callers: int = setting(DEFAULT_MAX_CALLERS, kind=COUNT)
    """Per-caller rate-limit buckets one RateLimit keeps at most on this router (refilled, then least recently
    used ones are evicted past it)."""
    event_loop: str = setting("auto", kind=choice(*eventloop.CHOICES))
    """Event loop of `python -m sutradhar.services.router`: auto (uvloop when installed, about 8% less CPU
    per call), uvloop or asyncio."""
    log_level: str = log_level_setting("INFO")
    """Logging level of `python -m sutradhar.services.router`."""
    log_format: str = log_format_setting()
    """Log line format: text, or json (one object per line with time, level, service, logger, message and the call's
    request_id, trace_id, namespace, agent, instance where known; docs/observability.md)."""


#: RouterConfig's flags and variables: SUTRADHAR_ROUTER_<FIELD>, or SUTRADHAR_<FIELD> where shared.
SETTINGS = Settings(RouterConfig, env_prefix="ROUTER_")
